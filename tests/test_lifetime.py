"""A daemon tied to its game: end of file on the game's pipe, or the game's process gone, stops it cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from bridge import lifetime
from tests.harness import Client, Daemon, make_event
from tests.sandboxes import wait_until


def test_end_of_file_on_the_pipe_stops_once() -> None:
    read, write = os.pipe()
    reasons: list[str] = []
    thread = lifetime.watch_pipe(read, reasons.append)
    os.write(write, b"anything the game writes is ignored")
    os.close(write)
    thread.join(5)
    os.close(read)
    assert reasons == ["the game's pipe closed (it quit, crashed or was killed)"]


def test_a_parent_that_is_gone_stops_the_watcher_and_a_live_one_does_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    reasons: list[str] = []
    done = threading.Event()
    watcher = lifetime.watch_pid(child.pid, reasons.append, done)
    assert lifetime.process_alive(child.pid)()
    assert child.stdin is not None
    child.stdin.close()
    child.wait(10)
    watcher.join(5)
    assert reasons == [f"the game (pid {child.pid}) is gone"]
    assert not lifetime.process_alive(child.pid)()
    # One still there: the watcher ends with the daemon, having said nothing.
    quiet: list[str] = []
    done = threading.Event()
    mine = lifetime.watch_pid(os.getpid(), quiet.append, done)
    done.set()
    mine.join(5)
    assert not mine.is_alive() and quiet == []


def test_the_daemon_stops_cleanly_when_its_game_closes_the_pipe(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, extra_args=["--parent-pipe"])
    daemon.proc = daemon._spawn(daemon.command(), stdin=subprocess.PIPE)
    daemon.wait_ready(30)
    with Client(daemon.ingress, device_id="piped") as client:
        client.hello()
        assert client.request({"type": "event", "event": make_event()})["stored"] == 1
    assert daemon.proc.stdin is not None
    daemon.proc.stdin.close()  # what the OS does when the game ends, however it ends
    assert daemon.proc.wait(10) == 0
    wait_until(lambda: "the game's pipe closed" in daemon.log(), 5, "the reason in the log")
    assert "stopped: 1 events stored this run" in daemon.log()
