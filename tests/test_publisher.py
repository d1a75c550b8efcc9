"""The configs socket: late subscribers get the current value, changes are pushed, versions persist."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from bridge.client import recv_publication, subscribe
from tests.harness import Daemon
from tests.sandboxes import wait_until


def wait_for(sock, predicate, timeout_s: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pub = recv_publication(sock, 100)
        if pub is not None and predicate(pub):
            return pub
    raise AssertionError("no matching publication")


def test_late_subscriber_gets_the_current_value_at_once(daemon: Daemon) -> None:
    # The daemon published config/local at start, before its publisher thread ran; that thread sends it out in
    # its first turn, the earliest turn that can answer a subscription. So once a first subscriber got anything,
    # config/local has gone out (a new connection takes far longer than the rest of that turn), and a second
    # subscriber is late: only the cache can give it the value.
    first = subscribe(daemon.publish, "config/")
    try:
        assert wait_for(first, lambda p: True)["topic"] == "config/local"
    finally:
        first.close(0)
    sock = subscribe(daemon.publish, "config/")
    try:
        pub = recv_publication(sock, 3000)
        assert pub is not None
        assert pub["topic"] == "config/local" and pub["source"] == "local"
        assert pub["values"] == {"difficulty": "normal", "max_lives": 3}
        assert pub["version"] >= 1
    finally:
        sock.close(0)


def test_prefix_filters_the_snapshot(daemon: Daemon) -> None:
    """A subscription to purchase/ is answered with nothing: the one to config/local, made after it on the same
    connection, is answered after it, so the first publication to arrive is config/local's."""
    sock = subscribe(daemon.publish, "purchase/", "config/local")
    try:
        pub = recv_publication(sock, 3000)
        assert pub is not None and pub["topic"] == "config/local", pub
    finally:
        sock.close(0)


def test_file_change_reaches_subscribers_with_a_new_version(daemon: Daemon) -> None:
    sock = subscribe(daemon.publish, "config/local")
    try:
        first = wait_for(sock, lambda p: True)
        assert daemon.config_path is not None and daemon.proc is not None
        daemon.config_path.write_text('[configs]\ndifficulty = "hard"\nmax_lives = 3\n')
        daemon.proc.send_signal(signal.SIGHUP)
        pub = wait_for(sock, lambda p: p["version"] > first["version"], 3)
        assert pub["values"]["difficulty"] == "hard" and pub["version"] == first["version"] + 1
        # without a signal the watcher notices the file within about a second; it compares modification times,
        # which the kernel takes from a clock that moves by ticks (at most 10 ms): wait for the next tick
        written = daemon.config_path.stat().st_mtime
        wait_until(lambda: time.time() > written + 0.01, what="a new modification time")
        daemon.config_path.write_text('[configs]\ndifficulty = "nightmare"\n')
        pub = wait_for(sock, lambda p: p["values"].get("difficulty") == "nightmare", 5)
        assert pub["values"] == {"difficulty": "nightmare"}
    finally:
        sock.close(0)


def test_broken_file_keeps_last_good_values(daemon: Daemon) -> None:
    assert daemon.config_path is not None and daemon.proc is not None
    daemon.config_path.write_text("[configs\nthis is not toml")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "keeping the previous local configs" in daemon.log(), what="the reload refused")
    assert daemon.proc.poll() is None
    sock = subscribe(daemon.publish, "config/local")
    try:
        assert wait_for(sock, lambda p: True)["values"]["difficulty"] == "normal"
    finally:
        sock.close(0)
    assert "keeping the previous local configs" in daemon.log()


def test_versions_survive_a_restart(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, config='[configs]\na = 1\n').start()
    assert daemon.config_path is not None
    daemon.stop()
    daemon.config_path.write_text('[configs]\na = 2\n')
    daemon.start()
    sock = subscribe(daemon.publish, "config/local")
    try:
        pub = wait_for(sock, lambda p: True)
        assert pub["values"] == {"a": 2} and pub["version"] == 2
    finally:
        sock.close(0)
        daemon.stop()


# --- heartbeats (protocol.md section 1) -----------------------------------------------------------------

def _zmtp_sub(endpoint: str, minor: int) -> socket.socket:
    """A hand-written ZMTP 3.`minor` SUB past the handshake (the daemon's READY read), subscribed to nothing."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(b"\xff" + bytes(8) + b"\x7f" + bytes([3, minor]) + b"NULL".ljust(20, b"\0") + bytes(32))
    _read(sock, 64)
    body = b"\x05READY\x0bSocket-Type" + (3).to_bytes(4, "big") + b"SUB"
    sock.sendall(bytes([0x04, len(body)]) + body)
    _frame(sock)  # the daemon's READY
    return sock


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _frame(sock: socket.socket) -> tuple[int, bytes]:
    flags = _read(sock, 1)[0]
    size = int.from_bytes(_read(sock, 8), "big") if flags & 0x02 else _read(sock, 1)[0]
    return flags, _read(sock, size)


def test_every_peer_is_pinged_and_a_silent_one_dropped_15_to_20_s_after_it_last_spoke(daemon: Daemon) -> None:
    """ZMTP 3.0 peers are PINGed too (every 5 s, TTL 15 s); the daemon drops a peer 15 s after the first PING
    since it last heard it, 20 s for one silent from the handshake (protocol.md said 15 s), and keeps one that
    answers."""
    served = threading.Event()
    answering = _zmtp_sub(daemon.publish, 0)

    def answer() -> None:  # PONG every PING; note the publication the subscription below asks for
        try:
            while True:
                flags, body = _frame(answering)
                if body[:5] == b"\x04PING":
                    pong = b"\x04PONG" + body[7:]
                    answering.sendall(bytes([0x04, len(pong)]) + pong)
                elif body == b"config/local":
                    served.set()
        except (EOFError, OSError):
            return

    answerer = threading.Thread(target=answer)
    answerer.start()
    try:
        peers = {minor: (_zmtp_sub(daemon.publish, minor), time.monotonic()) for minor in (0, 1)}
        for minor, (sock, since) in peers.items():
            flags, body = _frame(sock)
            pinged = time.monotonic() - since
            assert flags & 0x04 and body[:5] == b"\x04PING", (minor, flags, body)
            assert int.from_bytes(body[5:7], "big") == 150, body  # the TTL, in tenths of a second
            assert 4.5 <= pinged <= 10, f"ZMTP 3.{minor}: first PING after {pinged:.1f} s"
        for minor, (sock, since) in peers.items():  # silent from here on: read until the daemon hangs up
            with pytest.raises((EOFError, ConnectionResetError)):
                while True:
                    flags, body = _frame(sock)
                    assert body[:5] == b"\x04PING", body
            dropped = time.monotonic() - since
            assert 19 <= dropped <= 30, f"ZMTP 3.{minor}: dropped {dropped:.1f} s after the handshake"
            sock.close()
        answering.sendall(bytes([0x00, 13]) + b"\x01config/local")  # still connected, and served
        assert served.wait(10), "the peer that answers its PINGs was dropped too"
    finally:
        answering.shutdown(socket.SHUT_RDWR)
        answering.close()
        answerer.join()
