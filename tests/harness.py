"""A real daemon in its own process, and a small real client, for the tests and benchmarks.

Nothing here fakes a part: `Daemon` runs `python -m bridge run` on free loopback ports with its own data
directory and SQLite file; `Client` (from `bridge.client`) speaks protocol v1 over a real DEALER socket.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgpack

from bridge.client import Client

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    def start(self, timeout: float = 15.0) -> Daemon:
        log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in self.python_path))
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        log.close()
        self.wait_ready(timeout)
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
