"""The daemon process: kill -9 in the middle of a stream, clean shutdown, restart."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from bridge.client import NoReply
from bridge.daemon import Exit
from tests.harness import REPO, Client, Daemon, make_event

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
    assert daemon.proc.wait(15) == 0  # (a loaded machine may take seconds to schedule its stop)


def test_second_daemon_on_the_same_endpoints_says_why(tmp_path: Path) -> None:
    with Daemon(tmp_path / "a") as first:
        cmd = first.command()
        cmd[cmd.index("--data-dir") + 1] = str(tmp_path / "b")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=REPO)
    assert out.returncode == Exit.ENDPOINT
    assert "Is another engine-bridge running?" in out.stderr


# --- a store that cannot be used at start-up -------------------------------------------------------------

def one_line_failure(daemon: Daemon, *extra: str) -> subprocess.CompletedProcess[str]:
    """Start a daemon that must refuse to start: one clear line on stderr, never a traceback."""
    out = subprocess.run(daemon.command() + list(extra), capture_output=True, text=True, timeout=30, cwd=REPO)
    assert "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    return out


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real store with events in it, closed cleanly (its WAL checkpointed into it), as bytes: made once, each
    test damages its own copy."""
    daemon = Daemon(tmp_path_factory.mktemp("good-store"))
    with daemon, Client(daemon.ingress) as c:
        c.hello()
        assert c.request({"type": "events", "events": [make_event() for _ in range(300)]})["stored"] == 300
        assert daemon.stop() == Exit.OK
    return daemon.db_path.read_bytes()


def damage(data: bytes, how: str) -> bytes:
    if how == "not_a_database":
        return b"this is a text file, not SQLite\n" * 200
    if how == "truncated":
        return data[: len(data) // 3]
    if how == "truncated_in_first_page":  # SQLite alone would take this for an empty database
        return data[:1365]
    flipped = bytearray(data)  # malformed pages: every page after the first scribbled over
    for i in range(4096, len(flipped), 3):
        flipped[i] ^= 0x5A
    return bytes(flipped)


@pytest.mark.parametrize("how", ["not_a_database", "truncated", "truncated_in_first_page", "malformed"])
def test_a_damaged_store_is_one_clear_line_and_can_be_moved_aside(tmp_path: Path, good_store: bytes,
                                                                   how: str) -> None:
    daemon = Daemon(tmp_path)
    damaged = damage(good_store, how)
    daemon.db_path.write_bytes(damaged)
    for suffix in ("-wal", "-shm"):
        Path(f"{daemon.db_path}{suffix}").unlink(missing_ok=True)
    out = one_line_failure(daemon)
    assert out.returncode == Exit.CORRUPT, out.stderr
    assert "damaged" in out.stderr and "--on-corrupt-store=move-aside" in out.stderr
    daemon.extra_args += ["--on-corrupt-store", "move-aside"]
    with daemon, Client(daemon.ingress) as c:
        c.hello()
        assert c.request({"type": "event", "event": make_event()})["stored"] == 1
    [aside] = [p for p in daemon.data_dir.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert aside.read_bytes() == damaged  # kept as it was, for inspection
    assert "moved to" in daemon.log() and "Traceback" not in daemon.log()


def test_a_data_dir_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    out = one_line_failure(daemon, "--data-dir", str(blocker / "inner"))
    assert out.returncode == Exit.STORE and "data directory" in out.stderr


def test_a_read_only_data_dir_is_one_clear_line(tmp_path: Path) -> None:
    """A read-only file system (root ignores permission bits, so a read-only mount is the honest test)."""
    daemon = Daemon(tmp_path)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(readonly)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"this test mounts a read-only tmpfs (needs root): {mounted.stderr}"
    try:
        out = one_line_failure(daemon, "--data-dir", str(readonly))
    finally:
        subprocess.run(["umount", str(readonly)], check=True)
    assert out.returncode == Exit.STORE and "cannot open the store" in out.stderr, out.stderr
