"""Peers: connections that never read their replies, or stall inside the ZMTP handshake, beside a
well-behaved client.

The daemon's `[configs]` table holds about 100 KB of values, so that every `configs` reply is ~100 KB.
Each peer misbehaves for `mode.peer_seconds` against a fresh daemon process (same store), so that one
peer's leftovers (memory the allocator keeps, a backlog) are not charged to the next:

- A: `configs` as fast as the daemon takes them, never reading: a raw ZMTP DEALER that never reads its
  TCP socket once past the handshake, a pyzmq DEALER with RCVHWM 1 and one with the default RCVHWM (1000
  replies, ~100 MB, buffered on our side before TCP pushes back);
- B: `stats` the same way (a raw ZMTP DEALER and a pyzmq DEALER);
- C: raw TCP connections that send half a ZMTP greeting and stall, and others that complete the handshake,
  then send a frame header promising 16 MiB (the daemon's hard limit) and 64 KiB of it, and stall
  (slowloris); one promises 2^63-1 bytes. Connections the daemon closes are opened again.

What must hold for each peer: the daemon's resident memory stays under 250 MB. The README measures 48 MB
idle and 79 MB after 700k events (target < 80 MB); a daemon that bounds what it queues for one peer (a
few hundred 100 KB replies at most, say) stays below 250 MB even with the three peers of A, while one that
queues without bound reaches gigabytes (each phase stops early at 1 GB to spare the shared machine). The
well-behaved client is never stalled while the peer misbehaves: its ack p99 stays under 250 ms (a stats
flood once cost it 2.9 s; a quiet machine measures ~13 ms, printed beside the client's figure alone first,
and a loaded 2-core machine some 60-100 ms: the bound is for stalls, the figures are for speed), a new
client is answered within 3 s once the peer has gone, and the daemon's log holds no traceback.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import msgpack
import zmq

from bridge.protocol import HARD_MAX_MESSAGE_BYTES
from tests.harness import Daemon
from tests.oracle.common import Mode, Report, no_tracebacks
from tests.oracle.probe import RssSampler, WellBehaved, answers_new_client, cpu_seconds, ms, percentile, summary

CONFIG_KEYS = 100
CONFIG_VALUE_CHARS = 1000  # 100 keys of 1000 chars: a ~100 KB `configs` reply
RSS_BOUND_MB = 250.0
RSS_CEILING_MB = 1024.0  # past this the phase stops at once: the check has failed, the machine is shared
P99_BOUND_S = 0.250  # a stall, not a slow machine (see the docstring)
NEWCOMER_TIMEOUT_S = 3.0
BASELINE_S = 1.0  # the well-behaved client alone, before the peer starts: the reference figure
PEER_JOIN_S = 5.0
BATCH = 64  # requests a flooder writes at once
HALF_GREETINGS = 64
SLOWLORIS = 16
SLOWLORIS_BODY = 64 * 1024
STALL_CHECK_S = 0.5


# --- ZMTP 3.0 by hand, for peers no ZeroMQ library would be -------------------------------------------

GREETING = b"\xff" + bytes(8) + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0") + b"\x00" + bytes(31)


def zmtp_ready(socket_type: bytes = b"DEALER") -> bytes:
    """The READY command of a NULL-mechanism handshake, with its Socket-Type property."""
    name = b"Socket-Type"
    body = b"\x05READY" + bytes([len(name)]) + name + len(socket_type).to_bytes(4, "big") + socket_type
    return bytes([0x04, len(body)]) + body


def zmtp_frame_header(size: int) -> bytes:
    """The header of a last (single) message frame of `size` bytes: short form up to 255, else long."""
    return bytes([0x00, size]) if size <= 255 else b"\x02" + size.to_bytes(8, "big")


def zmtp_message(payload: bytes) -> bytes:
    return zmtp_frame_header(len(payload)) + payload


def tcp_address(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    assert parts.scheme == "tcp" and parts.hostname and parts.port, endpoint
    return parts.hostname, parts.port


def zmtp_connect(endpoint: str) -> socket.socket:
    """A TCP connection past the ZMTP handshake: greeting, READY, and the daemon's greeting and READY read.
    (libzmq drops a connection whose first messages arrive in the same read as the end of its greeting and
    READY, so a client waits for the daemon's READY before it sends anything else.)"""
    conn = socket.create_connection(tcp_address(endpoint), timeout=2)
    try:
        conn.sendall(GREETING)
        _read_exactly(conn, len(GREETING))
        conn.sendall(zmtp_ready())
        flags = _read_exactly(conn, 1)[0]  # the daemon's READY: a command frame, short or long
        _read_exactly(conn, int.from_bytes(_read_exactly(conn, 8 if flags & 0x02 else 1), "big"))
    except OSError:
        conn.close()
        raise
    return conn


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the daemon closed the connection during the ZMTP handshake")
        data += chunk
    return data


def hello(device_id: str) -> bytes:
    return msgpack.packb({"type": "hello", "rid": 0, "protocol": 1, "engine": "custom", "binding": "oracle-peer",
                          "binding_version": "1.0.0", "game_build": "oracle", "device_id": device_id})


# --- the peers ----------------------------------------------------------------------------------------

class Peer:
    """A misbehaving connection (or a few) in a thread of its own; `got_in` counts what the daemon took."""

    label = "peer"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.got_in = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name=self.label, daemon=True)

    def run(self) -> None:
        raise NotImplementedError

    def tally(self) -> str:
        return f"{self.label}: {self.got_in}"


class ZmqFlooder(Peer):
    """A pyzmq DEALER that says hello, then sends one request again and again and never reads."""

    def __init__(self, endpoint: str, kind: str, rcvhwm: int | None) -> None:
        self.kind = kind
        self.rcvhwm = rcvhwm
        self.label = f"pyzmq DEALER, {kind}, RCVHWM {'default' if rcvhwm is None else rcvhwm}"
        super().__init__(endpoint)

    def run(self) -> None:
        sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        if self.rcvhwm is not None:
            sock.rcvhwm = self.rcvhwm
        sock.connect(self.endpoint)
        try:
            sock.send(hello(f"peer-{self.kind}-{self.rcvhwm}"))
            request = msgpack.packb({"type": self.kind, "rid": 1})
            while not self.stop.is_set():
                try:
                    sock.send(request, zmq.NOBLOCK)
                    self.got_in += 1
                except zmq.Again:  # our send queue is full: the daemon takes no faster
                    self.stop.wait(0.001)
        finally:
            sock.close(0)


class RawFlooder(Peer):
    """A ZMTP DEALER by hand that, past the handshake, writes requests as fast as TCP takes them and never
    reads its socket; when the daemon drops it, it connects again (`drops` counts those)."""

    def __init__(self, endpoint: str, kind: str) -> None:
        self.kind = kind
        self.label = f"raw ZMTP DEALER, {kind}"
        self.drops = 0
        super().__init__(endpoint)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._flood()
            except OSError:
                self.drops += 1
                self.stop.wait(0.1)

    def _flood(self) -> None:
        batch = zmtp_message(msgpack.packb({"type": self.kind, "rid": 1})) * BATCH
        with zmtp_connect(self.endpoint) as sock:
            sock.settimeout(0.2)
            pending = memoryview(zmtp_message(hello(f"peer-raw-{self.kind}")) + batch)
            while not self.stop.is_set():
                try:
                    pending = pending[sock.send(pending):]
                except TimeoutError:
                    continue  # TCP is full: the daemon is not reading either
                if not pending:
                    self.got_in += BATCH
                    pending = memoryview(batch)

    def tally(self) -> str:
        return f"{self.label}: {self.got_in}" + (f" (dropped by the daemon {self.drops} times)" if self.drops else "")


class Staller(Peer):
    """Raw TCP connections that each send `opening` (after the ZMTP handshake when `handshake`) and then
    stall; one the daemon closes is opened again. `got_in` counts the connections opened."""

    def __init__(self, endpoint: str, label: str, openings: list[bytes], handshake: bool) -> None:
        self.label = label
        self.openings = openings
        self.handshake = handshake
        super().__init__(endpoint)

    def run(self) -> None:
        conns: list[socket.socket | None] = [None] * len(self.openings)
        try:
            while not self.stop.is_set():
                for i, opening in enumerate(self.openings):
                    conn = conns[i]
                    if conn is not None and not _closed(conn):
                        continue
                    if conn is not None:
                        conn.close()
                    conns[i] = self._open(opening)
                self.stop.wait(STALL_CHECK_S)
        finally:
            for conn in conns:
                if conn is not None:
                    conn.close()

    def _open(self, opening: bytes) -> socket.socket | None:
        try:
            conn = zmtp_connect(self.endpoint) if self.handshake else socket.create_connection(
                tcp_address(self.endpoint), timeout=2)
            conn.sendall(opening)
        except OSError:
            return None
        conn.setblocking(False)  # from now on only looked at, by _closed
        self.got_in += 1
        return conn

    def tally(self) -> str:
        return (f"{self.label}: {len(self.openings)} connections, "
                f"{self.got_in - len(self.openings)} opened again after the daemon closed them")


def _closed(conn: socket.socket) -> bool:
    """Has the daemon closed this (non-blocking) connection? Reads what the daemon sent."""
    try:
        while conn.recv(65536, socket.MSG_DONTWAIT):
            pass  # the daemon's greeting and pings, read only to see where its stream ends
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True




@dataclass(frozen=True)
class Phase:
    name: str
    peers: Callable[[str], list[Peer]]


PHASES = [
    Phase("A (configs, never read)", lambda e: [RawFlooder(e, "configs"), ZmqFlooder(e, "configs", 1),
                                                ZmqFlooder(e, "configs", None)]),
    Phase("B (stats, never read)", lambda e: [RawFlooder(e, "stats"), ZmqFlooder(e, "stats", None)]),
    Phase("C (stalled handshakes)", lambda e: [
        Staller(e, "half greetings", [GREETING[:11]] * HALF_GREETINGS, handshake=False),
        Staller(e, "slowloris, 16 MiB promised",
                [zmtp_frame_header(HARD_MAX_MESSAGE_BYTES) + bytes(SLOWLORIS_BODY)] * SLOWLORIS
                + [zmtp_frame_header(2**63 - 1) + bytes(16)], handshake=True)]),
]


def configs_table() -> str:
    """A [configs] table of ~100 KB: distinct values, so nothing along the way can shrink them."""
    lines = ["[configs]"]
    for i in range(CONFIG_KEYS):
        lines.append(f'value_{i:03d} = "{(f"{i:03d}" * CONFIG_VALUE_CHARS)[:CONFIG_VALUE_CHARS]}"')
    return "\n".join(lines) + "\n"


@contextmanager
def running(peers: list[Peer]) -> Iterator[None]:
    """The peers misbehave inside the block, and are stopped (their sockets closed) however it ends."""
    for peer in peers:
        peer.thread.start()
    try:
        yield
    finally:
        for peer in peers:
            peer.stop.set()
        for peer in peers:
            peer.thread.join(PEER_JOIN_S)


def run_phase(report: Report, daemon: Daemon, phase: Phase, seconds: float) -> None:
    """One peer against a fresh daemon process: its figures and its checks."""
    daemon.start()
    assert daemon.proc is not None
    tag = phase.name.split()[0]
    try:
        with RssSampler(daemon.proc.pid, RSS_CEILING_MB) as rss, \
                WellBehaved(daemon.ingress, f"oracle-wb-{tag}", drain_s=2.0) as probe:
            time.sleep(BASELINE_S)
            started = time.monotonic()
            cpu_started = (cpu_seconds(daemon.proc.pid), time.process_time())
            peers = phase.peers(daemon.ingress)
            with running(peers):
                stopped_early = rss.exceeded.wait(seconds)
            ended = time.monotonic()
            cpu = _cpu_share(cpu_started, (cpu_seconds(daemon.proc.pid), time.process_time()), ended - started)
            newcomer = answers_new_client(daemon.ingress, NEWCOMER_TIMEOUT_S)
            result = probe.finish()
    finally:
        daemon.kill()
    during = result.latencies(started, ended)
    peak = rss.max_mb()
    fig = report.figures
    fig[f"{tag} RSS max"] = f"{peak:.0f} MB" + (f" (stopped after {ended - started:.1f} s at the "
                                                 f"{RSS_CEILING_MB:.0f} MB ceiling)" if stopped_early else "")
    fig[f"{tag} well-behaved, alone first"] = summary(result.latencies(-math.inf, started))
    fig[f"{tag} well-behaved, during the peer"] = summary(during)
    fig[f"{tag} what the peer got in"] = "; ".join(p.tally() for p in peers)
    fig[f"{tag} CPU while the peer ran"] = cpu
    fig[f"{tag} new client answered after"] = ms(newcomer) if newcomer is not None else "no answer"
    report.check(f"{phase.name}: daemon RSS stays under {RSS_BOUND_MB:.0f} MB", peak < RSS_BOUND_MB,
                 f"reached {peak:.0f} MB" + (" (phase stopped early at the ceiling)" if stopped_early else ""))
    report.check(f"{phase.name}: well-behaved ack p99 < {P99_BOUND_S * 1000:.0f} ms meanwhile",
                 percentile(during, 99) < P99_BOUND_S, summary(during))
    report.check(f"{phase.name}: a new client is answered after the peer", newcomer is not None,
                 f"no welcome and pong within {NEWCOMER_TIMEOUT_S:.0f} s")


def _cpu_share(before: tuple[float | None, float], after: tuple[float | None, float], wall: float) -> str:
    """The daemon's and this process's (the peers') CPU over the phase, in % of one core: on a 2-core machine
    a peer that eats a core would slow any daemon, and this says whether that happened."""
    daemon = (f"{((after[0] - before[0]) / wall) * 100:.0f}%" if after[0] is not None and before[0] is not None
              else "n/a")
    return f"daemon {daemon} of a core, peers (this process) {(after[1] - before[1]) / wall * 100:.0f}%"


def run(mode: Mode, workdir: Path) -> Report:
    report = Report("peers")
    daemon = Daemon(workdir, config=configs_table())
    try:
        for phase in PHASES:
            run_phase(report, daemon, phase, mode.peer_seconds)
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill()
    no_tracebacks(report, daemon)
    return report
