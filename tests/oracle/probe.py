"""What the fuzz and peers scenarios measure the daemon with, from outside.

- `WellBehaved`: a client that follows protocol.md to the letter, in its own process so that the load the
  scenario makes in this process (the fuzzer's loop, flooding peers) cannot slow its clock or its socket:
  the latency it records is the daemon's. It sends one event per message at a steady rate and records, per
  event, when it was sent and how long its `ack` took.
- `RssSampler`: the daemon's resident memory (VmRSS in /proc/<pid>/status) every half second, with a
  ceiling that tells a scenario to stop before a leak hurts the shared machine.
- `answers_new_client`: does a fresh connection still get `welcome` and `pong`?
- `stored_uids`: which events of a device the store holds, read from the SQLite file itself.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgpack
import zmq

from bridge.client import Client, NoReply
from bridge.protocol import PROTOCOL_VERSION
from tests.oracle.common import EXCEPTION_LINE

PROBE_RATE = 300.0  # events/s: steady traffic, small beside the daemon's ~50k/s, so it measures, not loads
READY_TIMEOUT_S = 15.0
RSS_EVERY_S = 0.5


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); inf stands for an answer that never came."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return "never" if math.isinf(seconds) else "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


@dataclass
class ProbeResult:
    """Per event the well-behaved client sent: its send time (time.monotonic, shared by every process on
    Linux) and its ack latency in seconds (inf: no ack came)."""

    device_id: str
    sent: list[float]
    latency: list[float]
    failures: list[str]  # replies that were not a clean ack of the event
    rehellos: int  # `hello_required` answers: the daemon forgot the connection (it restarted)

    def latencies(self, start: float = -math.inf, end: float = math.inf) -> list[float]:
        """Latencies of the events sent in [start, end)."""
        return [lat for sent, lat in zip(self.sent, self.latency) if start <= sent < end]

    def unanswered(self) -> int:
        return sum(math.isinf(lat) for lat in self.latency)

    def acked_ids(self) -> set[str]:
        return {event_id(self.device_id, i) for i, lat in enumerate(self.latency) if not math.isinf(lat)}

    def max_gap(self, end: float) -> float:
        """The longest time without any answer, from the first send until `end`: how long the daemon was
        unresponsive to a client that kept talking to it."""
        if not self.sent:
            return math.nan
        answers = sorted(s + lat for s, lat in zip(self.sent, self.latency) if not math.isinf(lat))
        points = [self.sent[0], *(a for a in answers if a < end), end]
        return max(b - a for a, b in zip(points, points[1:]))


def summary(latencies: list[float]) -> str:
    """p50/p99/max of some latencies, and how many never came."""
    missing = sum(math.isinf(lat) for lat in latencies)
    answered = [lat for lat in latencies if not math.isinf(lat)]
    return (f"p50 {ms(percentile(latencies, 50))}, p99 {ms(percentile(latencies, 99))}, "
            f"max {ms(max(answered, default=math.nan))} ({len(latencies)} events"
            + (f", {missing} never acked)" if missing else ")"))


def event_id(device_id: str, index: int) -> str:
    return f"{device_id}-{index}"


def _hello(device_id: str) -> dict[str, Any]:
    return {"type": "hello", "rid": 0, "protocol": PROTOCOL_VERSION, "engine": "custom",
            "binding": "oracle-probe", "binding_version": "1.0.0", "game_build": "oracle",
            "device_id": device_id}


def _event(device_id: str, index: int) -> dict[str, Any]:
    return {"type": "event", "rid": index + 1, "event": {
        "id": event_id(device_id, index), "category": "design", "ts": int(time.time() * 1000),
        "fields": {"event_id": "oracle:probe:tick", "value": index}}}


def _say_hello(sock: zmq.Socket, hello: bytes, deadline: float) -> bool:
    """Until a `welcome` comes (the daemon may still be starting)."""
    while time.monotonic() < deadline:
        sock.send(hello)
        if sock.poll(500) and msgpack.unpackb(sock.recv(), raw=False).get("type") == "welcome":
            return True
    return False


def _probe_main(endpoint: str, device_id: str, rate: float, drain_s: float, pipe: Connection,
                stop: Any) -> None:
    """The child process: hello, then one event every 1/rate s until `stop`, then wait up to drain_s for
    the acks still owed, and send everything measured back through `pipe`."""
    sock = zmq.Context().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    packb = msgpack.Packer(use_bin_type=True).pack
    sent: list[float] = []
    latency: list[float] = []
    sent_msgs: list[bytes] = []
    failures: list[str] = []
    rehellos = 0
    refused = 0  # events ZeroMQ would not even queue (the daemon stopped reading us): never acked
    welcomed = True  # False from a re-hello until its welcome: one hello answers every hello_required
    hello = packb(_hello(device_id))
    pipe.send(_say_hello(sock, hello, time.monotonic() + READY_TIMEOUT_S))

    def send(frame: bytes) -> bool:
        """Never block: a daemon that does not take what a client sends is part of what is measured."""
        try:
            sock.send(frame, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def on_reply(frame: bytes, now: float) -> None:
        nonlocal rehellos, welcomed
        try:
            reply = msgpack.unpackb(frame, raw=False)
            rid = reply.get("rid")
        except (ValueError, AttributeError, msgpack.UnpackException):
            failures.append(f"not a msgpack map: {frame[:100].hex()}")
            return
        if reply.get("type") == "welcome":
            welcomed = True
            return
        index = rid - 1 if type(rid) is int and 0 < rid <= len(sent) else None
        if index is not None and reply.get("code") == "hello_required":
            if welcomed:
                rehellos += 1
                welcomed = False
                send(hello)
            send(sent_msgs[index])
        elif index is not None and reply.get("type") == "ack" and reply.get("stored", 0) + reply.get(
                "duplicates", 0) == 1 and not reply.get("rejected"):
            if math.isinf(latency[index]):
                latency[index] = now - sent[index]
        else:
            failures.append(repr(reply)[:300])

    interval = 1.0 / rate
    next_at = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_at:
            msg = packb(_event(device_id, len(sent)))
            sent.append(now)
            latency.append(math.inf)
            sent_msgs.append(msg)
            if not send(msg):
                refused += 1
            next_at = max(next_at + interval, now - 0.05)  # steady: a stall of this process is not made up
        while sock.poll(math.ceil(max(0.0, next_at - time.monotonic()) * 1000)):
            on_reply(sock.recv(), time.monotonic())
    end = time.monotonic()
    drain_until = end + drain_s
    while any(math.isinf(lat) for lat in latency) and time.monotonic() < drain_until:
        if sock.poll(50):
            on_reply(sock.recv(), time.monotonic())
    if refused:
        failures.append(f"{refused} events could not be queued: the daemon did not read the connection")
    pipe.send({"end": end, "result": ProbeResult(device_id, sent, latency, failures, rehellos)})
    sock.close(0)


class WellBehaved:
    """The well-behaved client as a child process: `with WellBehaved(...) as probe: ...; probe.finish()`."""

    def __init__(self, endpoint: str, device_id: str, rate: float = PROBE_RATE, drain_s: float = 5.0) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that holds ZeroMQ sockets
        self._pipe, child_pipe = ctx.Pipe()
        self._stop = ctx.Event()
        self.device_id = device_id
        self.drain_s = drain_s
        self.end = math.nan  # when it stopped sending (time.monotonic)
        self.proc = ctx.Process(target=_probe_main, args=(endpoint, device_id, rate, drain_s, child_pipe, self._stop),
                                daemon=True, name=f"probe-{device_id}")

    def __enter__(self) -> WellBehaved:
        self.proc.start()
        if not (self._pipe.poll(READY_TIMEOUT_S + 10) and self._pipe.recv()):
            self.__exit__()
            raise RuntimeError("the well-behaved client got no welcome from the daemon")
        return self

    def finish(self) -> ProbeResult:
        """Stop sending, wait for the acks still owed (up to drain_s), and return what was measured (nothing,
        and a failure saying so, if the child did not report back)."""
        self._stop.set()
        if not self._pipe.poll(self.drain_s + 15):
            self.proc.kill()
            self.end = time.monotonic()
            return ProbeResult(self.device_id, [], [], ["the well-behaved client did not report back"], 0)
        report = self._pipe.recv()
        self.end = report["end"]
        self.proc.join(5)
        return report["result"]

    def __exit__(self, *exc: object) -> None:
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


class RssSampler:
    """A thread reading a process's VmRSS every half second; `exceeded` is set once it passes `ceiling_mb`."""

    def __init__(self, pid: int, ceiling_mb: float) -> None:
        self.pid = pid
        self.ceiling_mb = ceiling_mb
        self.samples: list[tuple[float, float]] = []  # (time.monotonic, MB)
        self.exceeded = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            mb = rss_mb(self.pid)
            if mb is None:
                return
            self.samples.append((time.monotonic(), mb))
            if mb > self.ceiling_mb:
                self.exceeded.set()
            self._stop.wait(RSS_EVERY_S)

    def max_mb(self) -> float:
        return max((mb for _, mb in self.samples), default=math.nan)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


def rss_mb(pid: int) -> float | None:
    """VmRSS of a process in MB, None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used, from /proc/<pid>/stat; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # from field 3 on: the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def answers_new_client(endpoint: str, timeout_s: float) -> float | None:
    """Seconds a fresh connection takes to get `welcome` then `pong`; None when it got no answer in time."""
    started = time.monotonic()
    try:
        with Client(endpoint, timeout_ms=int(timeout_s * 1000), device_id="oracle-newcomer") as client:
            if client.hello().get("type") != "welcome" or client.request({"type": "ping"}).get("type") != "pong":
                return None
    except NoReply:
        return None
    return time.monotonic() - started


OWN_FRAME = re.compile(r'^\s*File ".*/bridge/.*", line \d+, in \w+')


def exceptions_in(log: str) -> list[str]:
    """Each distinct exception a log's tracebacks end with, after the last daemon frame it went through."""
    found: dict[str, None] = {}
    where = ""
    for line in log.splitlines():
        if OWN_FRAME.match(line):
            where = line.strip()
        elif EXCEPTION_LINE.match(line):
            found[f"{line.strip()[:200]} (at {where})" if where else line.strip()[:200]] = None
            where = ""
    return list(found)


def stored_uids(db_path: Path, device_id: str) -> set[str]:
    """The ids of a device's events in the store, read from the SQLite file (read-only, beside the daemon)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        return {uid for (uid,) in db.execute("SELECT uid FROM events WHERE device_id = ?", (device_id,))}
