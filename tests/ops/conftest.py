"""A real daemon with its HTTP endpoints on, delivering to a GameAnalytics sandbox in this process (whose faults
the tests set), and the ways a test reads it: HTTP, the `stats` request, a game client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.sandbox.gameanalytics import GameAnalyticsSandbox
from bridge.client import Client
from tests.harness import Daemon, free_port
from tests.sandboxes import GaSandbox, provider_table


@dataclass
class OpsDaemon:
    daemon: Daemon
    sandbox: GameAnalyticsSandbox
    http: str  # host:port, as [daemon] http has it

    @property
    def url(self) -> str:
        return f"http://{self.http}/"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path.lstrip("/"), timeout=10, **kwargs)

    def stats(self) -> dict[str, Any]:
        with Client(self.daemon.ingress, device_id="ops-tests") as tool:
            tool.hello(role="tool")
            return tool.request({"type": "stats"})

    def game(self, device_id: str = "dev-ops") -> Client:
        client = Client(self.daemon.ingress, device_id=device_id)
        assert client.hello()["type"] == "welcome"
        return client


def ops_config(url: str, http: str, local: str = 'difficulty = "normal"') -> str:
    return (provider_table("gameanalytics", url, remote_configs=False) + f'\n[daemon]\nhttp = "{http}"\n'
            f"\n[configs]\n{local}\n")


def ops_daemon_of(workdir: Path, ga: GaSandbox) -> OpsDaemon:
    """Not started yet: `with ops.daemon:` starts it, and kills it after."""
    sandbox, server = ga
    http = f"127.0.0.1:{free_port()}"
    return OpsDaemon(Daemon(workdir, config=ops_config(server.url, http)), sandbox, http)


@pytest.fixture
def ops_daemon(tmp_path: Path, ga_sandbox: GaSandbox) -> Iterator[OpsDaemon]:
    ops = ops_daemon_of(tmp_path, ga_sandbox)
    with ops.daemon:
        yield ops
