"""A daemon that lives and dies with the game that launched it, however the game ends (quit, crash, kill -9).

Two ways, both checked from threads of their own, both ending in the daemon's clean shutdown:
- `--parent-pipe`: the game keeps the write end of a pipe to the daemon's standard input and never writes. When
  the game's process ends, the operating system closes it and the daemon reads end of file: on every desktop OS,
  within milliseconds, and with no process id to be reused. A launcher stops the daemon by closing it too.
- `--parent-pid PID`: for engines that cannot give a child a pipe (Godot's `OS.execute`/`create_process`): the
  daemon looks every quarter of a second whether that process is still there.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

PID_POLL_S = 0.25


def watch_pipe(fd: int, stop: Callable[[str], None]) -> threading.Thread:
    """Reads `fd` (standard input) to its end on a thread of its own, then calls `stop`."""

    def run() -> None:
        try:
            while os.read(fd, 4096):
                pass  # the game writes nothing; whatever comes is ignored
        except OSError as exc:
            log.debug("parent pipe: %s", exc)
        stop("the game's pipe closed (it quit, crashed or was killed)")

    thread = threading.Thread(target=run, name="parent-pipe", daemon=True)
    thread.start()
    return thread


def process_alive(pid: int) -> Callable[[], bool]:
    """A check of whether process `pid` still runs. POSIX: while it is this process's parent, the parent's id
    changing says it is gone (a reused id cannot fool that); otherwise a signal 0 asks."""
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x00100000, False, pid)  # SYNCHRONIZE: held, its id cannot be reused
        return lambda: bool(handle) and kernel32.WaitForSingleObject(handle, 0) != 0  # 0: WAIT_OBJECT_0, it ended
    if os.getppid() == pid:
        return lambda: os.getppid() == pid

    def signal_zero() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, as another user
        return True

    return signal_zero


def watch_pid(pid: int, stop: Callable[[str], None], done: threading.Event) -> threading.Thread:
    """Calls `stop` once process `pid` has gone; ends by itself when `done` is set."""
    alive = process_alive(pid)

    def run() -> None:
        while not done.wait(PID_POLL_S):
            if not alive():
                stop(f"the game (pid {pid}) is gone")
                return

    thread = threading.Thread(target=run, name="parent-pid", daemon=True)
    thread.start()
    return thread
