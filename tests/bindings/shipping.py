"""One scenario for every binding: a game shipped with the bundled daemon (tests/bundle_build.py).

The game's install folder holds the game and, beside it, the bundle (`engine-bridge/engine-bridge`, a link to the
run's one build); the game is started from elsewhere and launches the daemon by that relative path. Each
binding's game program (C++ tests/ship_test.cpp, Unity Tests~/ShipGame.cs, Godot test_project/ship.gd) does
the same steps and prints the same lines:
- play: COUNT events stored (`ACKED`), the daemon killed under it and launched again, COUNT more stored
  (`RELAUNCHED`), then `PLAYING` until the test kills the game with SIGKILL; quit: the same, then a clean quit;
- missing: a daemon path with nothing there, or a file that may not be run, is reported as a failed launch
  (`LAUNCH FAILED`);
- wrong: another game's daemon at the endpoints refuses this game (`REFUSED`), which sends it nothing of the
  COUNT events it tracked (`STORED 0`) and keeps them queued, asking again; once this game's own daemon took
  the endpoints over, they reach it (`TAKEN OVER STORED COUNT`).
"""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import pytest

from tests.harness import Daemon
from tests.sandboxes import wait_until

DAEMON = "engine-bridge/engine-bridge"  # relative to the game's install folder
COUNT = 50
GONE_WITHIN_S = 3.0
PROGRAM_TIMEOUT_S = 120


@dataclass
class Install:
    """A game's install folder with the bundled daemon inside, and the player's folders (runtime, data)."""

    folder: Path
    home: Path
    game: str = field(default_factory=lambda: f"ship-{uuid.uuid4().hex[:8]}")

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, HOME=str(self.home), XDG_DATA_HOME=str(self.home / "data"),
                    XDG_RUNTIME_DIR=str(self.home / "run"))

    @property
    def data_dir(self) -> Path:
        return self.home / "data" / "engine-bridge" / "games" / self.game

    def stored(self) -> list[int]:
        """The `n` of every `ship` event in the game's store, in order of storing."""
        with sqlite3.connect(self.data_dir / "bridge.sqlite3") as db:
            rows = db.execute("SELECT fields FROM events WHERE category = 'custom' ORDER BY pk").fetchall()
        return [msgpack.unpackb(row[0])["n"] for row in rows if msgpack.unpackb(row[0]).get("name") == "ship"]

    def daemon_log(self) -> str:
        path = self.data_dir / "engine-bridge.log"
        return path.read_text(errors="replace") if path.exists() else ""


def make_install(tmp_path: Path, bundle: Path) -> Install:
    """The install folder; the player's home is short (a Unix socket's path has at most 107 bytes)."""
    folder = tmp_path / "game"
    folder.mkdir()
    (folder / "engine-bridge").symlink_to(bundle, target_is_directory=True)
    return Install(folder, Path(tempfile.mkdtemp(prefix="eb-", dir="/tmp")))


def gone(pid: int) -> bool:
    """The process has exited (a zombie that nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


class Game:
    """The game's process, its lines read as they come (by a thread: a game that hangs silent fails in time)."""

    def __init__(self, command: list[str], install: Install, cwd: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=install.env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     start_new_session=True)  # a stray kill(0) of the game's reaches no test
        self._incoming: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self._incoming.put(line.rstrip("\n"))
        except (OSError, ValueError):  # closed by close()
            pass
        self._incoming.put(None)  # the end of the output (the game and what it launched closed it)

    def wait_for(self, prefix: str) -> list[str]:
        """Lines until one starts with `prefix`; the words after it. Fails with the output if it never comes."""
        deadline = time.monotonic() + PROGRAM_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._incoming.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if line.startswith(prefix):
                return line[len(prefix):].split()
        self.proc.kill()
        pytest.fail(f"no {prefix!r} line from the game:\n" + "\n".join(self.lines))

    def output(self) -> list[str]:
        """Every line read so far, also those no wait_for has looked at (what the game's children wrote)."""
        while True:
            try:
                line = self._incoming.get_nowait()
            except queue.Empty:
                return self.lines
            if line is not None:
                self.lines.append(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def play(command: list[str], install: Install, cwd: Path, quit_cleanly: bool) -> None:
    """Launch from the relative path, events stored, the daemon killed and relaunched; then the game killed with
    SIGKILL (or quitting): its daemon gone within 3 s, stopped cleanly, every acknowledged event in the store."""
    game = Game(command, install, cwd)
    try:
        first = int(game.wait_for("ACKED")[2])
        second = int(game.wait_for("RELAUNCHED")[2])
        assert first != second and gone(first), game.lines
        if quit_cleanly:
            game.wait_for("QUIT")
            assert game.proc.wait(30) == 0
        else:
            game.wait_for("PLAYING")
            game.proc.send_signal(signal.SIGKILL)
        ended = time.monotonic()
        wait_until(lambda: gone(second), GONE_WITHIN_S, f"the daemon (pid {second}) gone after the game")
        took = time.monotonic() - ended
    finally:
        game.close()
    assert sorted(install.stored()) == list(range(2 * COUNT))  # every acknowledged event, once
    log = install.daemon_log()
    after_relaunch = log.rsplit("engine-bridge ready", 1)[1]
    assert "stopping" in after_relaunch and "stopped:" in after_relaunch, log  # a clean stop, not a kill
    assert took < GONE_WITHIN_S


NOT_EXECUTABLE = "engine-bridge-noexec/engine-bridge"  # relative to the install folder: a file without its x bit


def missing_and_wrong_game(missing: list[str], not_executable: list[str], wrong: list[str], install: Install,
                           cwd: Path, other: Daemon) -> None:
    """A daemon path with nothing there, or a file there that may not be run (NOT_EXECUTABLE, made here), is a
    failed launch; another game's daemon refuses this one and stores nothing of it; when this game's own daemon
    takes the endpoints over (the other stopped, this game's started on the same ones), the events the game kept
    queued reach it, each once."""
    for command, path in ((missing, "engine-bridge-missing"), (not_executable, NOT_EXECUTABLE)):
        if command is not_executable:
            noexec = install.folder / NOT_EXECUTABLE
            noexec.parent.mkdir(exist_ok=True)
            noexec.write_text("#!/bin/sh\nexit 0\n")
            noexec.chmod(0o644)
        game = Game(command, install, cwd)
        try:
            reason = " ".join(game.wait_for("LAUNCH FAILED"))
            assert path in reason, game.lines
            assert game.proc.wait(30) == 0
        finally:
            game.close()
    game = Game(wrong, install, cwd)
    own = Daemon(cwd / "own", extra_args=["--game", install.game])
    own.ingress, own.publish = other.ingress, other.publish
    try:
        reason = " ".join(game.wait_for("REFUSED"))
        assert "wrong_game" in reason and "other-game" in reason, game.lines
        assert game.wait_for("STORED") == ["0"]
        other.stop()  # this game's own daemon takes the endpoints over
        with own:
            assert game.wait_for("TAKEN OVER") == ["STORED", str(COUNT)], game.lines
            assert game.proc.wait(30) == 0
            events = [e for e in own.events() if e["category"] == "custom"]
    finally:
        game.close()
    assert sorted(e["fields"]["n"] for e in events if e["fields"].get("name") == "ship") == list(range(COUNT))
    assert len(events) == COUNT, events
    assert not [e for e in other.events() if e["category"] == "custom"]
