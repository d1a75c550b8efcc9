"""The daemon's counters, and the reporter thread that answers the requests that read the whole store.

Counters are written by the ingress thread only; other threads read plain ints, which is safe under the GIL.
`stats` and `flush` replies count rows in the store: the `Reporter` builds them on its own thread and hands
the packed reply back to the ingress over an inproc socket, so a flood of them never delays an ack.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import msgpack
import zmq
from sqlalchemy.exc import SQLAlchemyError

from .protocol import Code, ProtocolError
from .store import error_text

log = logging.getLogger(__name__)

REPLIES = "inproc://engine-bridge-replies"  # the ingress binds it and forwards what arrives to its ROUTER
MAX_PENDING = 10_000  # requests waiting for the reporter; beyond this they are answered `unavailable`
MIN_GAP_S = 0.2  # under a flood, one round of store counts per gap serves every request that waited

RATE_WINDOW_S = 10.0
MAX_LAST_ERRORS = 10


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
    last_errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_LAST_ERRORS))
    _stored_marks: deque[tuple[float, int]] = field(default_factory=deque)

    def note_stored(self, stored: int, duplicates: int) -> None:
        """Once per burst: what its acks reported."""
        if not stored and not duplicates:
            return
        self.stored += stored
        self.duplicates += duplicates
        now = time.monotonic()
        self._stored_marks.append((now, stored))
        self._trim(now)

    def note_error(self, code: str, message: str) -> None:
        self.errors += 1
        self.last_errors.append({"at": int(time.time() * 1000), "code": code, "message": message})

    def _trim(self, now: float) -> None:
        while self._stored_marks and now - self._stored_marks[0][0] > RATE_WINDOW_S:
            self._stored_marks.popleft()

    def rate(self) -> float:
        """Events stored per second over the last ten seconds."""
        self._trim(time.monotonic())
        return sum(n for _, n in self._stored_marks) / RATE_WINDOW_S

    def uptime(self) -> float:
        return time.monotonic() - self.started


Build = Callable[[], dict[str, Any]]


class Reporter:
    """Builds slow replies off the ingress thread: each round takes every request waiting, builds each
    distinct reply once (keyed: one `stats` build serves every `stats` of the round), and pushes them back."""

    def __init__(self, ctx: zmq.Context) -> None:
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
        packb = msgpack.Packer(use_bin_type=True).pack
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
                built: dict[Hashable, dict[str, Any]] = {}
                for envelope, rid, key, build in jobs:
                    if key not in built:
                        built[key] = self._build(build)
                    out.send_multipart([*envelope, packb({**built[key], "rid": rid})])
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
