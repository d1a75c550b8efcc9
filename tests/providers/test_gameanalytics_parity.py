"""GameAnalytics parity with the official SDKs (issue 12), each item against the local sandbox: a real daemon,
real HTTP, real SQLite. The SDK evidence for each rule is cited where the provider implements it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.sandbox.gameanalytics import GameAnalyticsSandbox
from bridge.sandbox.server import SandboxServer
from tests.harness import Client, make_event
from tests.sandboxes import ga_daemon, settled, start_sandbox, wait_until

HELLO = {"platform": "windows", "os_version": "windows 10", "device": "pc", "manufacturer": "acme"}


@pytest.fixture
def sandbox() -> Iterator[tuple[GameAnalyticsSandbox, SandboxServer]]:
    sb, server = start_sandbox()
    yield sb, server
    server.stop()


def accepted(sb: GameAnalyticsSandbox, category: str | None = None) -> list[dict[str, Any]]:
    return sb.accepted_events(category=category)


def ga_stats(c: Client) -> dict[str, Any]:
    stats: dict[str, Any] = c.request({"type": "stats"})["providers"]["gameanalytics"]
    return stats


# --- any 2xx is success ---------------------------------------------------------------------------------

def test_a_204_counts_as_delivered_and_is_never_sent_again(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    sb.set_success_status(204)
    with ga_daemon(tmp_path, server.url) as daemon, Client(daemon.ingress) as c:
        c.hello(**HELLO)
        c.request({"type": "events", "events": [make_event("design", event_id=f"nc:{i}") for i in range(3)]})
        stats = wait_until(lambda: settled(c, "gameanalytics"), what="the batch settled")
        time.sleep(0.5)  # several send intervals: a batch taken for failed would have gone out again
        design = accepted(sb, "design")
    assert sorted(e["event_id"] for e in design) == ["nc:0", "nc:1", "nc:2"]
    assert stats["dead_lettered"] == 0 and stats["last_error"] is None
    routes = sb.counts()["routes"]["events"]
    assert set(routes) == {"204"}
