"""Provider sandboxes on loopback for the dispatcher and provider tests, and daemons configured to use them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

from bridge.sandbox import gameramp, staq
from bridge.sandbox.gameanalytics import SANDBOX_GAME_KEY, SANDBOX_SECRET_KEY, GameAnalyticsSandbox
from bridge.sandbox.gameramp import GameRampSandbox
from bridge.sandbox.server import SandboxServer
from bridge.sandbox.staq import StaqSandbox
from tests.harness import Daemon

GaSandbox = tuple[GameAnalyticsSandbox, SandboxServer]  # the ga_sandbox fixture (tests/conftest.py)
FAST = {"interval": 0.1, "retry_base": 0.05, "retry_cap": 0.4, "paused_retry": 0.3, "timeout": 2.0}
CREDENTIALS: dict[str, dict[str, Any]] = {
    "gameanalytics": {"game_key": SANDBOX_GAME_KEY, "secret_key": SANDBOX_SECRET_KEY,
                      "remote_configs_refresh": 0.5},
    "gameramp": {"api_key": gameramp.DEV_API_KEY, "api_secret": gameramp.DEV_API_SECRET, "refresh": 0.5},
    "staq": {"app_id": staq.DEFAULT_APP_ID, "app_secret": staq.DEFAULT_APP_SECRET},
}
EMULATORS: dict[str, Callable[..., Any]] = {"gameanalytics": GameAnalyticsSandbox, "gameramp": GameRampSandbox,
                                           "staq": StaqSandbox}


def provider_table(name: str, url: str, kind: str = "gameanalytics", **overrides: Any) -> str:
    """A `[providers.<name>]` table for a sandbox of `kind`, with fast timers for tests."""
    settings = {"type": kind, "endpoint": url, **CREDENTIALS[kind], **FAST, **overrides}
    lines = [f"[providers.{name}]"]
    for key, value in settings.items():
        lines.append(f"{key} = {json.dumps(value)}")  # JSON's strings, numbers and booleans are TOML's too
    return "\n".join(lines) + "\n"


def ga_daemon(workdir: Path, url: str, extra: str = "", **overrides: Any) -> Daemon:
    return Daemon(workdir, config=provider_table("gameanalytics", url, **overrides) + extra)


def start_sandbox(kind: str = "gameanalytics", **kwargs: Any) -> tuple[Any, SandboxServer]:
    """An emulator of `kind` served on a free loopback port."""
    sandbox = EMULATORS[kind](**kwargs)
    return sandbox, SandboxServer(sandbox).start()


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def settled(client: Any, provider: str) -> dict[str, Any] | None:
    """`provider`'s stats once nothing is queued or in flight for it, else None (for wait_until)."""
    stats: dict[str, Any] = client.request({"type": "stats"})["providers"][provider]
    return stats if stats["queued"] == 0 and stats["in_flight"] == 0 else None
