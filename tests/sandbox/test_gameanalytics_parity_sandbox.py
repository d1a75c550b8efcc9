"""The GameAnalytics sandbox's rules for SDK parity (issue 12), over real HTTP on loopback.

Cases are written by hand from the official SDK sources (gameanalytics-sdk-cpp, GA-SDK-JAVASCRIPT,
GA-SDK-UNITY, GA-SDK-ROBLOX) and the fact sheet, never computed with the sandbox's own code, so a wrong rule
table fails here.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bridge.sandbox import GameAnalyticsSandbox, SandboxServer

GAME_KEY = "5c6bcb5402204249437fb5a7a80a4959"
SECRET = "16813a12f718bc5c620f56944e1abc3ea13ccbac"
DELETE = object()


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


class Collector:
    def __init__(self, sandbox: GameAnalyticsSandbox, url: str) -> None:
        self.sandbox = sandbox
        self.http = httpx.Client(base_url=url, timeout=10)

    def post(self, path: str, value: Any, params: dict[str, Any] | None = None) -> httpx.Response:
        body = gzip.compress(json.dumps(value).encode())
        return self.http.post(path, content=body, params=params, headers={
            "Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": sign(body)})

    def events(self, events: list[Any]) -> httpx.Response:
        return self.post(f"/v2/{GAME_KEY}/events", events)

    def remote_configs(self, user_id: str = "u1", vsn: int | None = 3) -> httpx.Response:
        params: dict[str, Any] = {"game_key": GAME_KEY, "interval_seconds": 0}
        if vsn is not None:
            params["config_vsn_supported"] = vsn
        return self.post("/remote_configs/v1/init", {"user_id": user_id, "platform": "ios", "os_version": "ios 8.1",
                                                     "sdk_version": "rest api v2", "random_salt": 1}, params)

    def admin(self, method: str, route: str, body: Any = None) -> httpx.Response:
        return self.http.request(method, f"/_sandbox/{route}", json=body)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(GameAnalyticsSandbox()) as srv:
        yield srv


@pytest.fixture
def ga(server: SandboxServer) -> Iterator[Collector]:
    sandbox = server.emulator
    assert isinstance(sandbox, GameAnalyticsSandbox)
    sandbox.reset()
    collector = Collector(sandbox, server.url)
    yield collector
    collector.http.close()


def annotations(**overrides: Any) -> dict[str, Any]:
    event = {"v": 2, "user_id": "user-1", "client_ts": int(time.time()), "sdk_version": "rest api v2",
             "os_version": "ios 8.1", "manufacturer": "apple", "device": "iPhone6,1", "platform": "ios",
             "session_id": str(uuid.uuid4()), "session_num": 1}
    event.update(overrides)
    return event


FIELDS: dict[str, dict[str, Any]] = {
    "design": {"event_id": "Guns:Pistol:Fire", "value": 1.5},
}


def event(kind: str, /, **changes: Any) -> dict[str, Any]:
    result = annotations(category=kind, **FIELDS[kind])
    for name, value in changes.items():
        if value is DELETE:
            result.pop(name, None)
        else:
            result[name] = value
    return result


# --- answers ----------------------------------------------------------------------------------------------

def test_a_valid_post_can_be_answered_204_with_no_body(ga: Collector) -> None:
    ga.sandbox.set_success_status(204)
    answer = ga.events([event("design")])
    assert answer.status_code == 204 and answer.content == b""
    assert len(ga.sandbox.accepted()) == 1
    assert ga.admin("PUT", "success_status", {"status": 201}).json() == {"status": 201}
    assert ga.events([event("design")]).status_code == 201
    assert ga.admin("PUT", "success_status", {"status": 302}).status_code == 400
    ga.sandbox.reset()
    assert ga.events([event("design")]).status_code == 200


def test_every_events_answer_carries_a_request_id(ga: Collector) -> None:
    ids = {ga.events([event("design")]).headers["X-Request-Id"],
           ga.events([event("design", value="x")]).headers["X-Request-Id"]}
    assert len(ids) == 2


def test_the_400_echo_can_leave_fields_out(ga: Collector) -> None:
    bad = event("design", value="x", custom_01="a")
    assert ga.admin("PUT", "echo", {"omit": ["custom_01", "client_ts"]}).json() == {"omit": ["client_ts", "custom_01"]}
    [entry] = ga.events([bad]).json()
    assert entry["event"] == {k: v for k, v in bad.items() if k not in ("custom_01", "client_ts")}
    assert ga.sandbox.rejected()[0]["event"] == bad  # the sandbox keeps what was sent
