"""A GameAnalytics sandbox on loopback for the dispatcher tests, and a daemon configured to deliver to it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from bridge.sandbox.gameanalytics import SANDBOX_GAME_KEY, SANDBOX_SECRET_KEY, GameAnalyticsSandbox
from bridge.sandbox.server import SandboxServer
from tests.harness import Daemon

FAST = {"interval": 0.1, "retry_base": 0.05, "retry_cap": 0.4, "paused_retry": 0.3, "timeout": 2.0,
        "remote_configs_refresh": 0.5}


def provider_table(name: str, url: str, **overrides: Any) -> str:
    settings = {"type": "gameanalytics", "endpoint": url, "game_key": SANDBOX_GAME_KEY,
                "secret_key": SANDBOX_SECRET_KEY, **FAST, **overrides}
    lines = [f"[providers.{name}]"]
    for key, value in settings.items():
        lines.append(f"{key} = {value!r}".replace("'", '"') if isinstance(value, str) else f"{key} = {value}")
    return "\n".join(lines) + "\n"


def ga_daemon(workdir: Path, url: str, extra: str = "", **overrides: Any) -> Daemon:
    return Daemon(workdir, config=provider_table("gameanalytics", url, **overrides) + extra)


def start_sandbox(**kwargs: Any) -> tuple[GameAnalyticsSandbox, SandboxServer]:
    sandbox = GameAnalyticsSandbox(**kwargs)
    return sandbox, SandboxServer(sandbox).start()


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
