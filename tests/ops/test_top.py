"""`engine-bridge top` in a real terminal (a pseudo-terminal, as SSH gives one): it draws the daemon's figures,
redraws them as they change, and quits on q."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

from tests.harness import REPO, make_event
from tests.ops.conftest import OpsDaemon
from tests.sandboxes import settled, wait_until

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")


class Terminal:
    """A child process on a pseudo-terminal of 140 x 40; `screen` is everything it wrote, escapes removed."""

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS="140", LINES="40")
        self.proc = subprocess.Popen([sys.executable, "-m", "bridge", *args], stdin=slave, stdout=slave,
                                     stderr=slave, cwd=REPO, env=env, close_fds=True)
        os.close(slave)
        self.raw = b""

    def read(self) -> str:
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            self.raw += chunk
        return ANSI.sub("", self.raw.decode(errors="replace"))

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)


def test_top_shows_the_daemon_live_and_quits_on_q(ops_daemon: OpsDaemon) -> None:
    terminal = Terminal("top", "--ingress", ops_daemon.daemon.ingress)
    try:
        wait_until(lambda: "gameanalytics" in terminal.read() and "q quits" in terminal.read(), timeout_s=20,
                   what="top's first screen")
        assert "0 stored" in terminal.read()
        with ops_daemon.game() as game:
            game.request({"type": "events", "events": [make_event("design") for _ in range(3)]})
            wait_until(lambda: settled(game, "gameanalytics"), what="delivered")
        # the next redraws show them: 3 stored, the provider's 4 delivered (with the session's start)
        wait_until(lambda: "3 stored" in terminal.read(), what="top redrawn with the new figures")
        wait_until(lambda: re.search(r"gameanalytics\s+│\s+ok\s+│\s+0\s+│\s+0\s+│\s+4\s+│", terminal.read()),
                   what="the provider's row redrawn")
        terminal.type(b"q")
        deadline = time.monotonic() + 5
        while terminal.proc.poll() is None and time.monotonic() < deadline:
            terminal.read()  # keep its output flowing while it leaves the alternate screen
            time.sleep(0.05)
        assert terminal.proc.returncode == 0
    finally:
        terminal.close()
