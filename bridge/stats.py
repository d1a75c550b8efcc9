"""The daemon's counters, and the reporter thread that answers the requests that read the whole store.

Counters are written by the ingress thread only; other threads read plain ints, which is safe under the GIL.
`stats` and `flush` replies count rows in the store: the `Reporter` builds them on its own thread and hands
the packed reply back to the ingress over an inproc socket, so a flood of them never delays an ack.
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq
from sqlalchemy.exc import SQLAlchemyError

from .protocol import CATEGORIES, Code, ProtocolError
from .store import error_text

log = logging.getLogger(__name__)

REPLIES = "inproc://engine-bridge-replies"  # the ingress binds it and forwards what arrives to its ROUTER
MAX_PENDING = 1000  # requests waiting for the reporter; beyond this they are answered `unavailable`
MIN_GAP_S = 0.2  # under a flood, one round of store counts per gap serves every request that waited

RATE_WINDOW_S = 10.0
MAX_LAST_ERRORS = 10
# Ack latency buckets, seconds (Prometheus' `le`): the README's targets are p99 < 5 ms, an ack's budget 250 ms.
ACK_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# A refused event whose category is missing or none of CATEGORIES is counted under this one.
UNKNOWN_CATEGORY = "unknown"
COUNTED_CATEGORIES = (*CATEGORIES, UNKNOWN_CATEGORY)


@dataclass
class Histogram:
    """Observations counted per bucket by one writer thread with no lock: a bisect and two adds, cheap enough
    for the ingress's loop. Readers take a `snapshot`, whose count is its buckets' own sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def snapshot(self) -> tuple[list[tuple[float, int]], int, float]:
        """Cumulative counts per upper bound (the last +Inf), the count and the sum of the observations."""
        counts, total = list(self.counts), self.total
        cumulative, running = [], 0
        for bound, count in zip([*self.bounds, float("inf")], counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return cumulative, running, total


@dataclass(slots=True)
class CategoryCounts:
    """One category's events since start, as the acks told them: `invalid` counts the events an ack listed
    in `invalid` (a provider's rule broken; stored or duplicate all the same)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    invalid: int = 0

    def to_wire(self) -> dict[str, int]:
        return {"received": self.received, "stored": self.stored, "duplicates": self.duplicates,
                "rejected": self.rejected, "invalid": self.invalid}


def _every_category() -> dict[str, CategoryCounts]:
    """Made whole at start and never resized, so the reporter thread iterates it while the ingress counts."""
    return {category: CategoryCounts() for category in COUNTED_CATEGORIES}


@dataclass
class Counters:
    started: float = field(default_factory=time.monotonic)
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: int = 0
    clients: int = 0  # connections open now, as the ingress's socket monitor last told
    replies_dropped: int = 0  # replies to peers that did not read them (their queue was full) or had left
    requests_dropped: int = 0  # requests of such peers, dropped unread while they do not read
    # From a burst's start to its acks sent: what the clients of that burst waited at most, one per burst.
    ack_latency: Histogram = field(default_factory=lambda: Histogram(ACK_BUCKETS_S))
    categories: dict[str, CategoryCounts] = field(default_factory=_every_category)
    _last_errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_LAST_ERRORS))
    _stored_marks: deque[tuple[float, int]] = field(default_factory=deque)
    # The deques are read on the reporter thread while the ingress appends: iterating one then would raise.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note_stored(self, stored: int, duplicates: int, began: float | None = None) -> None:
        """Once per burst, its replies sent: what its acks reported; `began` is when the burst began
        (time.monotonic())."""
        if not stored and not duplicates:
            return
        if began is not None:
            self.ack_latency.observe(time.monotonic() - began)
        self.stored += stored
        self.duplicates += duplicates
        now = time.monotonic()
        with self._lock:
            self._stored_marks.append((now, stored))
            self._trim(now)

    def note_error(self, code: str, message: str) -> None:
        self.errors += 1
        with self._lock:
            self._last_errors.append({"at": int(time.time() * 1000), "code": code, "message": message})

    def last_errors(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._last_errors)

    def _trim(self, now: float) -> None:
        while self._stored_marks and now - self._stored_marks[0][0] > RATE_WINDOW_S:
            self._stored_marks.popleft()

    def rate(self) -> float:
        """Events stored per second over the last ten seconds."""
        with self._lock:
            self._trim(time.monotonic())
            return sum(n for _, n in self._stored_marks) / RATE_WINDOW_S

    def categories_wire(self) -> dict[str, dict[str, int]]:
        """`stats`'s `categories`: the categories that saw an event since start."""
        return {name: counts.to_wire() for name, counts in self.categories.items() if counts.received}

    def uptime(self) -> float:
        return time.monotonic() - self.started


Build = Callable[[], dict[str, Any]]


class Reporter:
    """Builds slow replies off the ingress thread: each round takes every request waiting, builds each
    distinct reply once (keyed: one `stats` build serves every `stats` of the round), and pushes them back."""

    def __init__(self, ctx: zmq.Context[Any]) -> None:
        self.ctx = ctx
        self._jobs: queue.Queue[tuple[list[bytes], int, Hashable, Build]] = queue.Queue(MAX_PENDING)

    def ask(self, envelope: list[bytes], rid: int, key: Hashable, build: Build) -> None:
        """From the ingress thread: queue a reply; ProtocolError(unavailable) when too many wait already."""
        try:
            self._jobs.put_nowait((envelope, rid, key, build))
        except queue.Full:
            raise ProtocolError(Code.UNAVAILABLE, f"more than {MAX_PENDING} stats and flush requests are "
                                "waiting; read your replies, then ask again") from None

    def run(self, stop: threading.Event) -> None:
        out = self.ctx.socket(zmq.PUSH)
        out.linger = 0
        out.connect(REPLIES)
        try:
            while not stop.is_set():
                try:
                    jobs = [self._jobs.get(timeout=0.25)]
                except queue.Empty:
                    continue
                started = time.monotonic()
                while True:
                    try:
                        jobs.append(self._jobs.get_nowait())
                    except queue.Empty:
                        break
                built: dict[Hashable, tuple[int, bytes]] = {}
                for envelope, rid, key, build in jobs:
                    if key not in built:
                        built[key] = _packed_entries(self._build(build))
                    _send_unless_stopping(out, [*envelope, _with_rid(*built[key], rid)], stop)
                stop.wait(max(0.0, MIN_GAP_S - (time.monotonic() - started)))
        finally:
            out.close(0)

    @staticmethod
    def _build(build: Build) -> dict[str, Any]:
        try:
            return build()
        except SQLAlchemyError as exc:  # the store is away (disk full, database down): say so, keep serving
            log.error("could not read the store for a reply: %s", error_text(exc))
            return ProtocolError(Code.UNAVAILABLE, f"the store could not be read ({error_text(exc)}); ask "
                                 "again later").reply(None)
        except Exception:  # a bug costs this reply, never the thread that answers every later one
            log.exception("building a reply failed")
            return ProtocolError(Code.INTERNAL, "internal error building the reply").reply(None)


def _packed_entries(reply: dict[str, Any]) -> tuple[int, bytes]:
    """A reply's map entries packed once, without `rid`: every request of a round shares them."""
    entries = {k: v for k, v in reply.items() if k != "rid"}
    packed = msgpack.packb(entries, use_bin_type=True)
    return len(entries), packed[len(_map_header(len(entries))):]


def _with_rid(count: int, entries: bytes, rid: int) -> bytes:
    """The packed reply map: a header for one more entry, `rid` first, then the shared entries."""
    rid_entry: bytes = msgpack.packb("rid") + msgpack.packb(rid)
    return _map_header(count + 1) + rid_entry + entries


def _map_header(count: int) -> bytes:
    """msgpack's map header: fixmap up to 15 entries, else map 16 (a reply never holds 65536)."""
    return bytes([0x80 | count]) if count < 16 else b"\xde" + count.to_bytes(2, "big")


def _send_unless_stopping(out: zmq.Socket[bytes], frames: list[bytes], stop: threading.Event) -> None:
    """A reply to the ingress, waiting while its queue is full, but never past the daemon's stop: at shutdown
    the ingress is gone, and a blocking send would hold the process from exiting for good."""
    while not stop.is_set():
        try:
            out.send_multipart(frames, zmq.NOBLOCK)
            return
        except zmq.Again:
            stop.wait(0.05)
