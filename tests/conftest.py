"""Shared fixtures: a real daemon in its own process on free ports, and a client that has said hello."""

from __future__ import annotations

import sys
from pathlib import Path
from collections.abc import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.sandbox.server import SandboxServer  # noqa: E402
from bridge.sandbox.staq import StaqSandbox  # noqa: E402
from tests.harness import Client, Daemon  # noqa: E402
from tests.sandboxes import start_sandbox  # noqa: E402


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with Daemon(tmp_path, config='[configs]\ndifficulty = "normal"\nmax_lives = 3\n') as d:
        yield d


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    with Client(daemon.ingress, device_id="dev-1") as c:
        assert c.hello()["type"] == "welcome"
        yield c


@pytest.fixture
def staq_sandbox() -> Iterator[tuple[StaqSandbox, SandboxServer]]:
    """A staq sandbox on a free loopback port, for the staq provider's and the purchase lane's tests."""
    sb, server = start_sandbox("staq")
    yield sb, server
    server.stop()
