"""A real daemon in its own process, and a small real client, for the tests and benchmarks.

Nothing here fakes a part: `Daemon` runs `python -m bridge run` on free loopback ports with its own data
directory and SQLite file; `Client` (from `bridge.client`) speaks protocol v1 over a real DEALER socket.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from bridge.client import Client

REPO = Path(__file__).resolve().parent.parent


# Ports 10000-31999, below Linux's ephemeral range, in blocks: one per pytest-xdist worker (gw0 to gw15), a few
# for processes that say which they use (PORT_SLOT_ENV: the oracle's concurrent scenarios), the last for any other.
PORTS_BASE, PORTS_PER_PROCESS, PORT_SLOTS = 10_000, 1_000, 22
XDIST_SLOTS = 16
PORT_SLOT_ENV = "EB_TEST_PORT_SLOT"


def _port_sequence() -> Iterator[int]:
    """This process's own block of ports, from a random place in it, round and round.

    A port is handed out some time before the daemon binds it. A port the kernel picked (bind to 0) could be
    picked again meanwhile by another pytest-xdist worker, or taken by any process's outgoing connection (those
    come from the ephemeral range too). Ports below that range the kernel never hands out by itself, and each
    worker has a block of its own; the random start keeps two concurrent runs of the suite apart."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if os.environ.get(PORT_SLOT_ENV):
        slot = int(os.environ[PORT_SLOT_ENV]) % PORT_SLOTS
    elif worker.startswith("gw"):
        slot = int(worker[2:]) % XDIST_SLOTS
    else:
        slot = PORT_SLOTS - 1
    first = PORTS_BASE + slot * PORTS_PER_PROCESS
    start = random.randrange(PORTS_PER_PROCESS)
    while True:
        for i in range(PORTS_PER_PROCESS):
            yield first + (start + i) % PORTS_PER_PROCESS


_ports = _port_sequence()
_ports_lock = threading.Lock()


@contextlib.contextmanager
def priority(nice: int) -> Iterator[None]:
    """This thread (and the processes it starts) at `nice` if allowed (root), else as it is."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        yield
        return
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


def free_port() -> int:
    """A TCP port of this process's block that nobody uses right now (never the same twice in a row)."""
    with _ports_lock:
        for _ in range(PORTS_PER_PROCESS):
            port = next(_ports)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))  # no SO_REUSEADDR: a port in TIME_WAIT is passed over too
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no free port left in {PORTS_PER_PROCESS} of this process's block")


class Daemon:
    """`engine-bridge run` as a child process; start, stop (SIGTERM), kill (SIGKILL), restart."""

    def __init__(self, workdir: Path, config: str | None = None, store_url: str | None = None,
                 extra_args: list[str] | None = None, python_path: list[Path] | None = None) -> None:
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ingress = f"tcp://127.0.0.1:{free_port()}"
        self.publish = f"tcp://127.0.0.1:{free_port()}"
        self.store_url = store_url
        # Tests talk to loopback only: with no [providers] of its own, a test daemon gets none at all
        # (the embedded default would deliver to GameAnalytics' real sandbox host).
        config = config or ""
        if "[providers" not in config:
            config += "\n[providers]\n"
        self.config_path = self.workdir / "bridge.toml"
        self.config_path.write_text(config)
        self.extra_args = list(extra_args or [])
        self.python_path = [REPO, *(python_path or [])]  # e.g. a folder holding a third-party provider
        self.log_path = self.workdir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "bridge.sqlite3"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "bridge", "run", "--data-dir", str(self.data_dir),
               "--ingress", self.ingress, "--publish", self.publish, "--config", str(self.config_path)]
        if self.store_url is not None:
            cmd += ["--store", self.store_url]
        return cmd + self.extra_args

    def prepare(self) -> None:
        """Start the daemon's process as far as `bridge run`: the interpreter and the imports, most of a start's
        time. It runs `bridge run` (the same code as `python -m bridge run`, in the same process) when `start()`
        tells it to: a test that keeps the daemon away for a given time starts the next one meanwhile, so that
        the time it is away is that time, however busy the machine, and not that plus a start."""
        assert self.proc is None or self.proc.poll() is not None, "the daemon is running"
        self.proc = self._spawn([sys.executable, "-c", PREPARED, *self.command()[3:]], stdin=subprocess.PIPE)

    def _spawn(self, cmd: list[str], **popen: Any) -> subprocess.Popen[bytes]:
        log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in self.python_path))
        try:
            return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, **popen)
        finally:
            log.close()

    def start(self, timeout: float = 30.0) -> Daemon:
        """Start it (or let the prepared process run) and wait until it answers (on a busy machine a start
        under coverage can take seconds); one that does not answer in time is killed, not left running."""
        if self.proc is not None and self.proc.poll() is None and self.proc.stdin is not None:  # prepared
            self.proc.stdin.write(b"run\n")
            self.proc.stdin.close()
        else:
            self.proc = self._spawn(self.command())
        try:
            self.wait_ready(timeout)
        except BaseException:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with Client(self.ingress, timeout_ms=300, device_id="harness") as c:
                    c.hello(role="tool")  # a probe, not a player
                    return
            except TimeoutError:
                continue
        raise TimeoutError(f"daemon not ready after {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM and wait: the clean shutdown path."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: the crash path."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)

    def restart(self) -> Daemon:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, oldest first, with `fields` decoded (SQLite stores only)."""
        with sqlite3.connect(self.db_path) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM events ORDER BY pk").fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["fields"] = msgpack.unpackb(item["fields"])
            out.append(item)
        return out

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# What `Daemon.prepare()` runs: the imports of `bridge run` (its providers too), then, told "run", `python -m
# bridge` with the arguments it was given.
PREPARED = """
import runpy, sys
import bridge.cli, bridge.daemon, bridge.logs, bridge.store
import bridge.providers.gameanalytics.provider, bridge.providers.gameramp, bridge.providers.staq
if sys.stdin.readline() == "run\\n":
    sys.argv[0] = "bridge"
    runpy.run_module("bridge", run_name="__main__", alter_sys=True)
"""


def make_event(category: str = "design", **fields: Any) -> dict[str, Any]:
    """A valid event of a category, with a fresh id; keyword arguments replace its fields."""
    defaults: dict[str, dict[str, Any]] = {
        "design": {"event_id": "ui:click:play", "value": 1.5},
        "business": {"event_id": "gems:pack_small", "amount": 99, "currency": "USD"},
        "progression": {"event_id": "Complete:world01:level01", "attempt_num": 1, "score": 100},
        "resource": {"event_id": "Source:gold:reward:daily", "amount": 50},
        "error": {"severity": "error", "message": "NullReference in Player.Update"},
        "ads": {"ad_action": "show", "ad_type": "rewarded_video", "ad_sdk_name": "admob",
                "ad_placement": "end_of_level"},
        "impression": {"ad_network_name": "max", "ad_network_version": "11.4.2",
                       "impression_data": {"revenue": 0.0125, "currency": "USD", "network_name": "AppLovin"}},
        "custom": {"name": "tutorial_skipped", "step": 3},
    }
    body = dict(defaults[category])
    body.update(fields)
    return {"id": str(uuid.uuid4()), "category": category, "ts": int(time.time() * 1000), "fields": body}
