"""The daemon process: kill -9 in the middle of a stream, clean shutdown, restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bridge.client import NoReply
from tests.harness import Client, Daemon, make_event

WINDOW = 8
BATCH = 50


def stream(daemon: Daemon, acked: list[str], sent: list[dict], stop: threading.Event) -> None:
    """Send batches with a window in flight; record the ids of every acknowledged batch."""
    in_flight: dict[int, list[dict]] = {}
    with Client(daemon.ingress, timeout_ms=1000, device_id="crash-dev") as c:
        c.hello()
        try:
            while not stop.is_set():
                while len(in_flight) < WINDOW:
                    batch = [make_event("progression") for _ in range(BATCH)]
                    sent.extend(batch)
                    in_flight[c.send({"type": "events", "events": batch})] = batch
                reply = c.recv()
                batch = in_flight.pop(reply["rid"])
                assert reply["type"] == "ack" and reply["stored"] == BATCH
                acked.extend(e["id"] for e in batch)
        except NoReply:
            return  # the daemon is gone


def start_stream(daemon: Daemon, until_acked: int) -> tuple[list[str], list[dict], threading.Event,
                                                            threading.Thread]:
    """A loader thread streaming into the daemon, returned once `until_acked` events were acknowledged."""
    acked: list[str] = []
    sent: list[dict] = []
    stop = threading.Event()
    loader = threading.Thread(target=stream, args=(daemon, acked, sent, stop))
    loader.start()
    deadline = time.monotonic() + 10
    while len(acked) < until_acked and time.monotonic() < deadline:
        time.sleep(0.01)
    return acked, sent, stop, loader


def test_kill_9_mid_stream_loses_no_acknowledged_event(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path).start()
    acked, sent, stop, loader = start_stream(daemon, 5000)
    daemon.kill()  # SIGKILL while batches are in flight
    stop.set()
    loader.join(10)
    assert len(acked) >= 5000, "the stream never got going"
    assert len(sent) > len(acked), "nothing was in flight at the kill"
    daemon.start()
    stored = {e["uid"] for e in daemon.events()}
    missing = [i for i in acked if i not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost"
    # the client resends everything it sent; nothing is stored twice
    with Client(daemon.ingress, device_id="crash-dev") as c:
        c.hello()
        for start in range(0, len(sent), 500):
            c.request({"type": "events", "events": sent[start:start + 500]})
    uids = [e["uid"] for e in daemon.events() if e["category"] == "progression"]
    assert len(uids) == len(set(uids)) == len(sent)
    daemon.stop()


def test_clean_shutdown_within_two_seconds_keeps_everything(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path).start()
    acked, sent, stop, loader = start_stream(daemon, 2000)
    started = time.monotonic()
    assert daemon.stop(timeout=5) == 0
    took = time.monotonic() - started
    stop.set()
    loader.join(10)
    assert took < 2.0, f"shutdown took {took:.2f}s"
    stored = {e["uid"] for e in daemon.events()}
    assert all(i in stored for i in acked)
    assert "stopped" in daemon.log()


def test_sigint_stops_it_too(tmp_path: Path) -> None:
    import signal

    daemon = Daemon(tmp_path).start()
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGINT)
    assert daemon.proc.wait(3) == 0


def test_second_daemon_on_the_same_endpoints_says_why(tmp_path: Path) -> None:
    import subprocess
    import sys

    with Daemon(tmp_path / "a") as first:
        cmd = first.command()
        cmd[cmd.index("--data-dir") + 1] = str(tmp_path / "b")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=Path(__file__).parent.parent)
    assert out.returncode == 2
    assert "Is another engine-bridge running?" in out.stderr
    assert sys.executable
