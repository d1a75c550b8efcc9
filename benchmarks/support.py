"""What the benchmarks need around the code they measure: a real daemon in its own process, the GameAnalytics
sandbox in its own process, free ports, waiting on a condition, and running a benchmark module as a child.

Nothing here fakes a part. The client is the product's own (`bridge.client.Client`); the daemon is
`python -m bridge run` on free loopback ports with its own data directory and SQLite file.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from bridge.client import Client
from bridge.sandbox.gameanalytics import SANDBOX_GAME_KEY, SANDBOX_SECRET_KEY

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def child_env() -> dict[str, str]:
    """The environment of a child process: this checkout's `bridge` and `benchmarks` come first."""
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *([path] if path else [])]))


def module_command(module: str, *args: str) -> list[str]:
    """`python -m <module> args...` with this interpreter; run it with cwd=REPO and env=child_env()."""
    return [sys.executable, "-m", module, *args]


def wait_until(predicate: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.05) -> T:
    """The first truthy value of `predicate`, polled every `interval_s`; TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class Daemon:
    """`engine-bridge run` as a child process, ready once it answers a hello; a context manager that kills it."""

    def __init__(self, workdir: Path, config: str = "") -> None:
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ingress = f"tcp://127.0.0.1:{free_port()}"
        self.publish = f"tcp://127.0.0.1:{free_port()}"
        # Benchmarks talk to loopback only: without a [providers] table the embedded default would deliver
        # to GameAnalytics' real sandbox host.
        if "[providers" not in config:
            config += "\n[providers]\n"
        self.config_path = self.workdir / "bridge.toml"
        self.config_path.write_text(config)
        self.log_path = self.workdir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "bridge.sqlite3"

    @property
    def pid(self) -> int:
        assert self.proc is not None and self.proc.poll() is None, "the daemon is not running"
        return self.proc.pid

    def start(self, timeout_s: float = 15.0) -> Daemon:
        cmd = module_command("bridge", "run", "--data-dir", str(self.data_dir), "--ingress", self.ingress,
                             "--publish", self.publish, "--config", str(self.config_path))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO)
        wait_until(self._answers, timeout_s, f"the daemon on {self.ingress}\n{self.log()}")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with Client(self.ingress, timeout_ms=300, device_id="bench-probe") as client:
                client.hello(role="tool")  # a probe, not a player
            return True
        except TimeoutError:
            return False

    def stop(self, timeout_s: float = 5.0) -> int:
        """SIGTERM and wait: the clean shutdown."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def restart(self) -> Daemon:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def gameanalytics_table(url: str, **settings: Any) -> str:
    """A daemon configuration delivering to a GameAnalytics sandbox at `url` with its keys (plus `settings`)."""
    values = {"type": "gameanalytics", "endpoint": url, "game_key": SANDBOX_GAME_KEY,
              "secret_key": SANDBOX_SECRET_KEY, **settings}
    lines = ["[providers.gameanalytics]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]  # JSON scalars are TOML's too
    return "\n".join(lines) + "\n"


@contextmanager
def gameanalytics_sandbox() -> Iterator[str]:
    """The GameAnalytics sandbox in its own process on a free port (not logging every event); yields its URL."""
    proc = subprocess.Popen(module_command("bridge.sandbox.gameanalytics", "--port", "0", "--quiet"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env(), cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on " not in line:
            raise RuntimeError(f"the GameAnalytics sandbox did not start: {line!r}")
        yield line.rsplit("listening on ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def late_gameanalytics_sandbox(latency_ms: float) -> Iterator[str]:
    """`engine-bridge sandbox --latency-ms N --quiet` in its own process: the GameAnalytics collector answering
    every request `latency_ms` late (each on its own, side by side); yields its URL. The command also serves
    the GameRamp and staq sandboxes, unused here."""
    proc = subprocess.Popen(module_command("bridge", "sandbox", "--quiet", "--latency-ms", f"{latency_ms:g}"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env(), cwd=REPO)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:  # the start-up lines end with staq's
            if line.startswith("GameAnalytics sandbox listening on "):
                url = line.rsplit("listening on ", 1)[1].strip()
            if line.startswith("staq sandbox listening on "):
                break
        if url is None:
            raise RuntimeError(f"the sandboxes did not start (exit code {proc.poll()})")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def drained(client: Client, provider: str, timeout_s: float) -> dict[str, Any]:
    """Wait until nothing is queued or in flight for `provider`; its stats then."""
    def settled() -> dict[str, Any] | None:
        stats: dict[str, Any] = client.request({"type": "stats"})["providers"][provider]
        return stats if stats["queued"] == 0 and stats["in_flight"] == 0 else None

    return wait_until(settled, timeout_s, f"{provider}'s queue to drain", interval_s=0.1)
