"""The local GameRamp API over real HTTP on loopback: signatures, the time window, tokens, player configs,
the events route, faults, the admin routes, and `engine-bridge sandbox` (all three sandboxes) as a process.

Signatures are computed here with `hmac` from the docs' recipe (and checked once against a vector made
with `openssl`), never with the sandbox's code; the error bodies are the docs' text, written out here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.sandbox import GameRampSandbox, SandboxServer

REPO = Path(__file__).resolve().parents[2]
API_KEY = "test_tenant_4Dqms3ygG9FVC"
API_SECRET = "b815ebac-9744-43db-b5e6-89f90620297e-Wjl8qlWrJn2r4OEB7UXJ_L8iYOLTR8p10t83Wi_79Q"
TENANT_ID = "test_tenant_1752523421"
GAME_ID = "default_game"
INVALID = {"error": "Invalid authentication credentials"}
OUTSIDE = {"error": "Request timestamp is outside the acceptable time window"}
# The docs' example message signed with the docs' test secret, computed with openssl:
#   printf %s 'test_tenant_4Dqms3ygG9FVC|device-123|2025-07-15T19:44:26Z' |
#   openssl dgst -binary -sha256 -hmac "$API_SECRET" | base64
SEED_TIMESTAMP = "2025-07-15T19:44:26Z"
SEED_SIGNATURE = "r6h1ysIPw8QINgBWKGzxD1GM5WBqA94XUmhjiiGYcZg="
SEED_INSTANT = int(datetime(2025, 7, 15, 19, 44, 26, tzinfo=UTC).timestamp())
# The shapes the docs leave out default to the fact sheet's assumption: `playerConfig` in the status answer,
# a bare array of {eventType, timestamp, payload, metadata} on POST /v1/events.
DEFAULT_SETTINGS = {"expires_in": 3600, "rotate_refresh_tokens": True, "status_config_field": "playerConfig",
                    "events_route": "/v1/events", "events_envelope": "",
                    "event_fields": {"type": "eventType", "timestamp": "timestamp", "payload": "payload",
                                     "metadata": "metadata"}}


def sign(api_key: str, device_id: str, timestamp: str, secret: str = API_SECRET) -> str:
    message = f"{api_key}|{device_id}|{timestamp}".encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def stamp(epoch_s: float) -> str:
    return datetime.fromtimestamp(int(epoch_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Client:
    """A GameRamp client of the sandbox under test, written from the docs."""

    def __init__(self, sandbox: GameRampSandbox, url: str) -> None:
        self.sandbox = sandbox
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def login(self, device_id: str = "device-123", *, timestamp: str | None = None, api_key: str = API_KEY,
              secret: str = API_SECRET, signature: str | None = None, timeout: float = 10) -> httpx.Response:
        timestamp = stamp(time.time()) if timestamp is None else timestamp
        body = {"apiKey": api_key, "deviceId": device_id, "timestamp": timestamp,
                "signature": sign(api_key, device_id, timestamp, secret) if signature is None else signature}
        return self.http.post("/auth/login", json=body, timeout=timeout)

    def tokens(self, device_id: str = "device-123") -> dict[str, Any]:
        answer = self.login(device_id)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.http.post("/auth/refresh", json={"refreshToken": refresh_token})

    def status(self, access_token: str, tenant: str | None = TENANT_ID, game: str | None = GAME_ID,
               authorization: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {access_token}" if authorization is None else authorization}
        if tenant is not None:
            headers["X-Tenant-ID"] = tenant
        if game is not None:
            headers["X-Game-Id"] = game
        return self.http.get("/v1/player/status", headers=headers)

    def events(self, access_token: str, events: Any, route: str = "/v1/events") -> httpx.Response:
        return self.http.post(route, json=events, headers={
            "Authorization": f"Bearer {access_token}", "X-Tenant-ID": TENANT_ID, "X-Game-Id": GAME_ID})

    def admin(self, method: str, name: str, body: Any = None, /, **params: Any) -> httpx.Response:
        return self.http.request(method, f"/_sandbox/{name}", json=body, params=params or None)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(GameRampSandbox()) as srv:
        yield srv


@pytest.fixture
def gr(server: SandboxServer) -> Iterator[Client]:
    sandbox = server.emulator
    assert isinstance(sandbox, GameRampSandbox)
    sandbox.reset()
    client = Client(sandbox, server.url)
    yield client
    client.http.close()


@pytest.fixture
def frozen() -> Iterator[tuple[list[float], Client]]:
    """A sandbox whose clock stands still at the docs' example instant (plus a fraction of a second) until
    the test moves it, so the window's edges are tested to the second."""
    now = [SEED_INSTANT + 0.75]
    with SandboxServer(GameRampSandbox(clock=lambda: now[0])) as srv:
        client = Client(srv.emulator, srv.url)  # type: ignore[arg-type]
        yield now, client
        client.http.close()


def server_date(answer: httpx.Response) -> float:
    return parsedate_to_datetime(answer.headers["Date"]).timestamp()


# ---- login: signature -----------------------------------------------------------------------------------

def test_the_docs_example_signs_and_logs_in(frozen: tuple[list[float], Client]) -> None:
    _, gr = frozen
    assert sign(API_KEY, "device-123", SEED_TIMESTAMP) == SEED_SIGNATURE
    answer = gr.login("device-123", timestamp=SEED_TIMESTAMP, signature=SEED_SIGNATURE)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert list(body) == ["accessToken", "refreshToken", "tokenType", "expiresIn", "userId", "deviceId", "gameId",
                          "tenantId", "playerConfig"]
    assert (body["tokenType"], body["expiresIn"], body["deviceId"], body["gameId"], body["tenantId"]) == (
        "Bearer", 3600, "device-123", GAME_ID, TENANT_ID)
    assert body["playerConfig"] == {"playerStatus": {"isPayer": {"value": False, "defaultValue": False,
                                                                 "expiredAt": None}},
                                    "storeConfig": {"activeSkus": []}}
    assert body["accessToken"] != body["refreshToken"]
    # JWT-shaped: three base64url parts, the payload naming the device and expiring expiresIn after now.
    header, payload, _ = body["accessToken"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["typ"] == "JWT"
    assert claims["deviceId"] == "device-123" and claims["exp"] == SEED_INSTANT + 3600


def test_user_ids_are_stable_per_device(gr: Client) -> None:
    first, again, other = gr.tokens("dev-a"), gr.tokens("dev-a"), gr.tokens("dev-b")
    assert first["userId"] == again["userId"] and first["userId"].startswith("dev-a_")
    assert other["userId"] != first["userId"]
    assert first["accessToken"] != again["accessToken"] and first["refreshToken"] != again["refreshToken"]


def test_a_wrong_signature_answers_401_with_the_documented_body(gr: Client) -> None:
    ts = stamp(time.time())
    good = sign(API_KEY, "dev", ts)
    changed = ("A" if good[0] != "A" else "B") + good[1:]
    digest = hmac.new(API_SECRET.encode(), f"{API_KEY}|dev|{ts}".encode(), hashlib.sha256).digest()
    wrong = {
        "one character changed": changed,
        "hex instead of base64": digest.hex(),
        "base64 without padding": good.rstrip("="),
        "fields in another order": sign("dev", API_KEY, ts),
        "comma instead of pipe": base64.b64encode(hmac.new(API_SECRET.encode(), f"{API_KEY},dev,{ts}".encode(),
                                                           hashlib.sha256).digest()).decode(),
        "another secret": sign(API_KEY, "dev", ts, "your-api-secret"),
        "empty": "",
    }
    if "+" in good or "/" in good:
        wrong["url-safe base64"] = base64.urlsafe_b64encode(digest).decode()
    for case, signature in wrong.items():
        answer = gr.login("dev", timestamp=ts, signature=signature)
        if case == "empty":
            assert answer.status_code == 400, case  # an empty string is a malformed body
            continue
        assert (answer.status_code, answer.json()) == (401, INVALID), case
    answer = gr.login("dev", api_key="unknown_key", secret=API_SECRET)
    assert (answer.status_code, answer.json()) == (401, INVALID)
    assert gr.login("dev", timestamp=ts, signature=good).status_code == 200
    reasons = [c["error"] for c in gr.sandbox.calls("login") if c["status"] == 401]
    assert any("HMAC" in r for r in reasons) and any("unknown apiKey" in r for r in reasons)


# ---- login: the time window -----------------------------------------------------------------------------

def test_the_window_is_five_minutes_either_side_to_the_second(frozen: tuple[list[float], Client]) -> None:
    _, gr = frozen
    for offset in (-300, -299, 0, 299, 300):
        answer = gr.login("dev", timestamp=stamp(SEED_INSTANT + offset))
        assert answer.status_code == 200, (offset, answer.text)
    for offset in (-301, 301, -3600, 86400):
        answer = gr.login("dev", timestamp=stamp(SEED_INSTANT + offset))
        assert (answer.status_code, answer.json()) == (400, OUTSIDE), offset
    assert "+301 s" in [c["error"] for c in frozen[1].sandbox.calls("login") if c["status"] == 400][1]


def test_the_window_follows_the_shifted_clock_and_the_date_header_tells_it(gr: Client) -> None:
    assert gr.admin("PUT", "clock", {"offset_seconds": 7200}).status_code == 200
    local = gr.login("dev")  # signed with this machine's clock, two hours behind the server's
    assert (local.status_code, local.json()) == (400, OUTSIDE)
    server_now = server_date(local)
    assert abs(server_now - (time.time() + 7200)) < 5
    # What a client does: take the server's time from Date, sign with it.
    assert gr.login("dev", timestamp=stamp(server_now)).status_code == 200
    assert gr.login("dev", timestamp=stamp(time.time() + 7200 - 290)).status_code == 200
    assert gr.login("dev", timestamp=stamp(time.time() + 7200 + 310)).status_code == 400
    gr.sandbox.set_clock_offset(-7200)
    assert abs(server_date(gr.admin("GET", "counts")) - (time.time() - 7200)) < 5


def test_every_answer_carries_the_sandbox_clock_in_date(gr: Client) -> None:
    gr.sandbox.set_clock_offset(-86400)
    gr.sandbox.faults.fail("player_status", 503)
    answers = [gr.login("dev", timestamp="2025-01-01T00:00:00Z"), gr.refresh("nope"), gr.status("x"),
               gr.http.get("/no/such/route")]
    for answer in answers:
        assert abs(server_date(answer) - (time.time() - 86400)) < 5, answer.status_code


def test_malformed_logins_answer_400_with_a_reason(gr: Client) -> None:
    ts = stamp(time.time())
    good = {"apiKey": API_KEY, "deviceId": "dev", "timestamp": ts, "signature": sign(API_KEY, "dev", ts)}
    bodies: list[Any] = [
        {k: v for k, v in good.items() if k != "signature"},
        {**good, "extra": 1},
        {**good, "deviceId": 123},
        {**good, "deviceId": ""},
        [good],
        "login",
    ]
    for body in bodies:
        answer = gr.http.post("/auth/login", json=body)
        assert answer.status_code == 400, body
        assert answer.json()["error"] and answer.json() != OUTSIDE
    for raw in (b"", b"{", b'{"apiKey": NaN}'):
        answer = gr.http.post("/auth/login", content=raw)
        assert answer.status_code == 400 and "JSON" in answer.json()["error"], raw
    now = datetime.now(UTC)
    for timestamp in (now.strftime("%Y-%m-%dT%H:%M:%S.000Z"), now.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                      now.strftime("%Y-%m-%d %H:%M:%SZ"), now.strftime("%Y-%m-%dT%H:%M:%S"),
                      now.strftime("%Y-%m-%dt%H:%M:%Sz"), "2025-13-15T19:44:26Z", str(int(time.time())),
                      now.strftime("%Y-%m-%dT%H:%M:%SZ").replace("0", "\u0660")):
        answer = gr.login("dev", timestamp=timestamp)  # rightly signed, wrong form
        assert answer.status_code == 400, timestamp
        assert "YYYY-MM-DDThh:mm:ssZ" in answer.json()["error"], timestamp


# ---- tokens --------------------------------------------------------------------------------------------

def test_an_access_token_expires_after_expires_in_and_a_refresh_gives_new_tokens(gr: Client) -> None:
    gr.admin("PUT", "settings", {"expires_in": 60})
    first = gr.tokens("dev")
    assert first["expiresIn"] == 60
    assert gr.status(first["accessToken"]).status_code == 200
    gr.sandbox.set_clock_offset(59)
    assert gr.status(first["accessToken"]).status_code == 200
    gr.sandbox.set_clock_offset(61)
    expired = gr.status(first["accessToken"])
    assert (expired.status_code, expired.json()) == (401, INVALID)
    assert "expired" in gr.sandbox.calls("player_status")[-1]["error"]

    refreshed = gr.refresh(first["refreshToken"])
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert list(second) == list(first)
    assert second["accessToken"] != first["accessToken"] and second["refreshToken"] != first["refreshToken"]
    assert (second["userId"], second["deviceId"], second["tenantId"]) == (first["userId"], "dev", TENANT_ID)
    assert gr.status(second["accessToken"]).status_code == 200
    # The refresh token was spent: a second use is refused.
    again = gr.refresh(first["refreshToken"])
    assert (again.status_code, again.json()) == (401, INVALID)
    assert gr.refresh(second["refreshToken"]).status_code == 200


def test_tokens_expire_in_real_time_too(gr: Client) -> None:
    gr.sandbox.configure(expires_in=1)
    tokens = gr.tokens("dev")
    assert tokens["expiresIn"] == 1
    time.sleep(1.05)
    assert gr.status(tokens["accessToken"]).status_code == 401
    assert "expired" in gr.sandbox.calls("player_status")[-1]["error"]
    assert gr.status(gr.refresh(tokens["refreshToken"]).json()["accessToken"]).status_code == 200


def test_without_rotation_a_refresh_token_serves_again(gr: Client) -> None:
    assert gr.admin("PUT", "settings", {"rotate_refresh_tokens": False}).json() == {
        **DEFAULT_SETTINGS, "rotate_refresh_tokens": False}
    tokens = gr.tokens("dev")
    assert [gr.refresh(tokens["refreshToken"]).status_code for _ in range(2)] == [200, 200]


def test_revoking_forces_a_refresh_then_a_new_login(gr: Client) -> None:
    mine, theirs = gr.tokens("dev-1"), gr.tokens("dev-2")
    assert gr.admin("POST", "revoke", {"device_id": "dev-1"}).json() == {"revoked": 1}
    assert gr.status(mine["accessToken"]).json() == INVALID
    assert gr.status(theirs["accessToken"]).status_code == 200
    refreshed = gr.refresh(mine["refreshToken"]).json()
    assert gr.status(refreshed["accessToken"]).status_code == 200

    assert gr.sandbox.revoke_tokens("dev-1", refresh=True) == 2
    assert gr.status(refreshed["accessToken"]).status_code == 401
    refused = gr.refresh(refreshed["refreshToken"])
    assert (refused.status_code, refused.json()) == (401, INVALID)
    assert gr.status(gr.tokens("dev-1")["accessToken"]).status_code == 200
    assert gr.admin("POST", "revoke", {"refresh": True}).json()["revoked"] == 4  # everyone's
    assert gr.status(theirs["accessToken"]).status_code == 401
    assert gr.admin("POST", "revoke", {"refresh": "yes"}).status_code == 400


def test_refresh_bodies_are_checked(gr: Client) -> None:
    for body in ({}, {"refreshToken": 5}, {"refreshToken": "x", "deviceId": "d"}, ["x"]):
        assert gr.http.post("/auth/refresh", json=body).status_code == 400, body
    assert gr.refresh("never-issued").json() == INVALID
    access = gr.tokens("dev")["accessToken"]
    assert gr.refresh(access).status_code == 401  # an access token is not a refresh token


# ---- authenticated routes ------------------------------------------------------------------------------

def test_player_status_checks_the_bearer_token_and_both_headers(gr: Client) -> None:
    token = gr.tokens("dev")["accessToken"]
    answer = gr.status(token)
    assert answer.status_code == 200
    body = answer.json()
    assert body["deviceId"] == "dev" and body["tenantId"] == TENANT_ID and body["gameId"] == GAME_ID
    assert body["userId"].startswith("dev_") and "playerConfig" in body

    for authorization in ("", f"Basic {token}", "Bearer", f"Bearer {token}x", token):
        refused = gr.status(token, authorization=authorization)
        assert (refused.status_code, refused.json()) == (401, INVALID), authorization
    assert gr.status(token, authorization=f"bearer {token}").status_code == 200  # the scheme is case-blind
    assert gr.status(token, tenant=None).status_code == 400
    assert gr.status(token, game=None).status_code == 400
    wrong_tenant = gr.status(token, tenant="other_tenant")
    assert wrong_tenant.status_code == 403 and "X-Tenant-ID" in wrong_tenant.json()["error"]
    assert gr.status(token, tenant=API_KEY).status_code == 403  # the tenant id, not the api key
    assert gr.status(token, game="other_game").status_code == 403
    lower = gr.http.get("/v1/player/status", headers={"authorization": f"Bearer {token}",
                                                      "x-tenant-id": TENANT_ID, "x-game-id": GAME_ID})
    assert lower.status_code == 200  # HTTP header names are case-insensitive


def test_a_tenant_of_its_own_gets_its_own_ids(gr: Client) -> None:
    assert gr.admin("PUT", "tenants", {"api_key": "key2", "api_secret": "s2", "game_id": "g2"}).status_code == 201
    tenants = gr.admin("GET", "tenants").json()["tenants"]
    assert {"api_key": "key2", "tenant_id": "key2", "game_id": "g2"} in tenants
    assert "s2" not in json.dumps(tenants) and API_SECRET not in json.dumps(tenants)
    assert gr.login("dev", api_key="key2", secret=API_SECRET).status_code == 401
    tokens = gr.login("dev", api_key="key2", secret="s2").json()
    assert (tokens["tenantId"], tokens["gameId"]) == ("key2", "g2")
    assert gr.status(tokens["accessToken"]).status_code == 403
    assert gr.status(tokens["accessToken"], tenant="key2", game="g2").status_code == 200
    assert gr.admin("PUT", "tenants", {"api_key": "key3"}).status_code == 400


def test_player_configs_per_device_with_a_default(gr: Client) -> None:
    payer = {"playerStatus": {"isPayer": {"value": True, "defaultValue": False, "expiredAt": "2030-01-01T00:00:00Z"},
                              "vip": {"value": 3, "defaultValue": 0, "expiredAt": None}},
             "storeConfig": {"activeSkus": ["gems_100", "gems_500"]}}
    default = {"playerStatus": {"isPayer": {"value": False, "defaultValue": False, "expiredAt": None}},
               "storeConfig": {"activeSkus": ["starter"]}}
    assert gr.admin("PUT", "player-configs", {"device_id": "whale", "playerConfig": payer}).status_code == 200
    gr.sandbox.set_player_config(default)
    whale = gr.tokens("whale")
    assert whale["playerConfig"] == payer
    assert gr.tokens("minnow")["playerConfig"] == default
    assert gr.status(whale["accessToken"]).json()["playerConfig"] == payer
    assert gr.admin("GET", "player-configs", device_id="whale").json() == {"device_id": "whale",
                                                                          "playerConfig": payer}
    assert gr.admin("GET", "player-configs").json()["playerConfig"] == default

    # A change shows at the next status call; removing the device's own brings back the default.
    gr.sandbox.set_player_config({**payer, "storeConfig": {"activeSkus": []}}, "whale")
    assert gr.status(whale["accessToken"]).json()["playerConfig"]["storeConfig"] == {"activeSkus": []}
    assert gr.admin("PUT", "player-configs", {"device_id": "whale", "playerConfig": None}).status_code == 200
    assert gr.status(whale["accessToken"]).json()["playerConfig"] == default


@pytest.mark.parametrize("config", [
    [],
    {"playerStatus": []},
    {"playerStatus": {"isPayer": {"value": True, "defaultValue": False}}},
    {"playerStatus": {"isPayer": {"value": True, "defaultValue": False, "expiredAt": None, "extra": 1}}},
    {"playerStatus": {"isPayer": {"value": True, "defaultValue": False, "expiredAt": "tomorrow"}}},
    {"playerStatus": {"isPayer": {"value": True, "defaultValue": False, "expiredAt": "2030-01-01T00:00:00"}}},
    {"playerStatus": {"isPayer": {"value": True, "defaultValue": False, "expiredAt": "2030-01-01"}}},
    {"playerStatus": {"isPayer": {"value": True, "defaultValue": False, "expiredAt": 1893456000}}},
])
def test_bad_player_configs_are_refused_with_a_reason(gr: Client, config: Any) -> None:
    answer = gr.admin("PUT", "player-configs", {"device_id": "d", "playerConfig": config})
    assert answer.status_code == 400 and answer.json()["error"]
    with pytest.raises(ValueError):
        gr.sandbox.set_player_config(config, "d")
    assert gr.sandbox.player_config("d") == gr.sandbox.player_config()


def test_events_are_recorded_and_bad_batches_refused_whole(gr: Client) -> None:
    tokens = gr.tokens("dev")
    batch = [{"eventType": "level_up", "timestamp": "2025-07-15T19:44:26Z", "payload": {"level": 3},
              "metadata": {"build": "1.0"}},
             {"eventType": "purchase", "timestamp": "2025-07-15T19:44:27.125+02:00", "payload": {"sku": "gems"}}]
    answer = gr.events(tokens["accessToken"], batch)
    assert (answer.status_code, answer.json()) == (200, {"accepted": 2})
    assert gr.sandbox.received_events() == batch
    [record, _] = gr.sandbox.events(device_id="dev")
    assert record["user_id"] == tokens["userId"] and record["tenant_id"] == TENANT_ID
    assert gr.admin("GET", "events", device_id="other").json() == {"events": [], "next": 2}

    bad = [batch[0], {"eventType": "", "timestamp": "yesterday"},
           {"eventType": "x", "timestamp": "2025-07-15T19:44:26"}, "not an event",
           {"eventType": "x", "timestamp": "2025-07-15T19:44:26Z", "payload": [1]}]
    refused = gr.events(tokens["accessToken"], bad)
    assert refused.status_code == 400
    assert [item["index"] for item in refused.json()["invalid"]] == [1, 2, 3, 4]
    assert "eventType" in refused.json()["invalid"][0]["errors"][0]
    assert gr.events(tokens["accessToken"], {"eventType": "x"}).status_code == 400
    assert gr.events("not-a-token", batch).json() == INVALID
    assert gr.sandbox.counts()["events"] == 2


def test_the_shapes_the_docs_leave_out_are_settings(gr: Client) -> None:
    tokens = gr.tokens("dev")
    settings = {"status_config_field": "", "events_route": "/v2/analytics", "events_envelope": "events",
                "event_fields": {"type": "name", "timestamp": "at", "payload": "data", "metadata": "meta"}}
    assert gr.admin("PUT", "settings", settings).json() == {**DEFAULT_SETTINGS, **settings}
    status = gr.status(tokens["accessToken"])
    assert status.status_code == 200 and status.json() == gr.sandbox.player_config("dev")  # the config itself
    event = {"name": "level_up", "at": "2025-07-15T19:44:26.250Z", "data": {"level": 3}, "meta": {"build": "1"}}
    assert gr.events(tokens["accessToken"], {"events": [event]}, route="/v2/analytics").json() == {"accepted": 1}
    assert gr.sandbox.received_events() == [event]
    bare = gr.events(tokens["accessToken"], [event], route="/v2/analytics")
    assert bare.status_code == 400 and "under 'events'" in bare.json()["error"]
    old_layout = gr.events(tokens["accessToken"], {"events": [{"eventType": "x", "timestamp": event["at"]}]},
                           route="/v2/analytics")
    assert old_layout.status_code == 400 and "name must be a non-empty string" in old_layout.text
    assert gr.events(tokens["accessToken"], [event]).status_code == 404  # /v1/events is no route now
    for bad in ({"events_route": "/auth/login"}, {"event_fields": {"type": "t"}}, {"status_config_field": 1},
                {"unknown": 1}):
        assert gr.admin("PUT", "settings", bad).status_code == 400, bad
    gr.sandbox.reset()
    assert gr.sandbox.settings() == DEFAULT_SETTINGS


def test_wrong_methods_and_paths(gr: Client) -> None:
    answer = gr.http.get("/auth/login")
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert gr.http.post("/v1/player/status").status_code == 405
    assert gr.http.post("/auth/logout", json={}).status_code == 404
    assert gr.admin("GET", "nothing").status_code == 404


def test_an_oversized_body_is_refused(gr: Client) -> None:
    answer = gr.http.post("/auth/login", content=b" " * 1_000_001)
    assert answer.status_code == 413


# ---- faults --------------------------------------------------------------------------------------------

def test_faults_fail_delay_and_drop_calls(gr: Client) -> None:
    gr.sandbox.faults.fail("login", 503, count=2)
    assert [gr.login("dev").status_code for _ in range(3)] == [503, 503, 200]
    assert gr.sandbox.counts()["faults_fired"] == {"login": 2}

    tokens = gr.tokens("dev")
    assert gr.admin("POST", "faults", {"kind": "delay", "route": "refresh", "delay_s": 0.5}).status_code == 201
    started = time.monotonic()
    assert gr.refresh(tokens["refreshToken"]).status_code == 200
    assert time.monotonic() - started >= 0.5

    gr.admin("POST", "faults", {"kind": "drop", "route": "player_status"})
    with pytest.raises(httpx.RemoteProtocolError):
        gr.status(tokens["accessToken"])
    gr.admin("POST", "faults", {"kind": "status", "route": "*", "status": 429, "count": None})
    assert gr.admin("GET", "faults").json()["faults"][0]["remaining"] is None
    assert gr.events(tokens["accessToken"], []).status_code == 429
    assert gr.admin("DELETE", "faults").json() == {"faults": []}
    assert gr.events(tokens["accessToken"], []).status_code == 200
    assert gr.admin("POST", "faults", {"kind": "explode"}).status_code == 400


def test_a_client_that_gives_up_on_a_slow_login_still_had_it_served(gr: Client) -> None:
    gr.sandbox.faults.slow("login", delay_s=0.8)
    with pytest.raises(httpx.ReadTimeout):
        gr.login("dev", timeout=0.2)
    deadline = time.monotonic() + 5
    while not gr.sandbox.calls("login") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c["status"] for c in gr.sandbox.calls("login")] == [200]


# ---- admin routes, the Python API, the log -------------------------------------------------------------

def test_calls_are_recorded_filtered_paged_and_reset(gr: Client) -> None:
    gr.tokens("a")
    gr.login("b", secret="wrong")
    gr.tokens("a")
    calls = gr.admin("GET", "calls").json()
    assert [(c["route"], c["status"], c["device_id"]) for c in calls["calls"]] == [
        ("login", 200, "a"), ("login", 401, "b"), ("login", 200, "a")]
    assert calls["next"] == 3 and [c["index"] for c in calls["calls"]] == [0, 1, 2]
    page = gr.admin("GET", "calls", device_id="a", limit=1).json()
    assert [c["index"] for c in page["calls"]] == [0] and page["next"] == 1
    assert [c["index"] for c in gr.admin("GET", "calls", device_id="a", since=1).json()["calls"]] == [2]
    assert gr.admin("GET", "calls", since=-1).status_code == 400
    counts = gr.admin("GET", "counts").json()
    assert counts["routes"] == {"login": {"200": 2, "401": 1}} and counts["tokens"] == {"access": 2, "refresh": 2}

    gr.sandbox.set_clock_offset(100)
    gr.sandbox.configure(expires_in=5)
    assert gr.admin("POST", "reset").status_code == 200
    assert gr.admin("GET", "calls").json() == {"calls": [], "next": 0}
    assert gr.sandbox.settings() == DEFAULT_SETTINGS
    assert abs(gr.sandbox.now() - time.time()) < 2
    assert gr.sandbox.counts()["tokens"] == {"access": 0, "refresh": 0}
    assert any(t["api_key"] == API_KEY for t in gr.sandbox.tenants())  # tenants stay


def test_python_api_refuses_bad_arguments_clearly() -> None:
    with pytest.raises(ValueError, match="expires_in"):
        GameRampSandbox(expires_in=0)
    with pytest.raises(ValueError, match="clock"):
        GameRampSandbox(clock=5)  # type: ignore[arg-type]
    sandbox = GameRampSandbox()
    with pytest.raises(ValueError, match="api_secret"):
        sandbox.register_tenant("key", "")
    with pytest.raises(ValueError, match="offset_seconds"):
        sandbox.set_clock_offset(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rotate_refresh_tokens"):
        sandbox.configure(rotate_refresh_tokens="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default"):
        sandbox.set_player_config(None)
    with pytest.raises(ValueError, match="device_id"):
        sandbox.revoke_tokens(7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="since"):
        sandbox.calls(since=-2)


def test_the_live_log_has_one_line_per_call_with_the_reason(gr: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bridge.sandbox.gameramp"):
        gr.tokens("dev-log")
        gr.login("dev-log", secret="wrong")
        gr.events(gr.tokens("dev-log")["accessToken"],
                  [{"eventType": "boss_killed", "timestamp": "2025-07-15T19:44:26Z"}])
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.sandbox.gameramp"]
    assert any(line.startswith("login") and " 200 dev-log" in line for line in lines)
    assert any(" 401 dev-log: signature is not" in line for line in lines)
    assert any(line.startswith("events") and "boss_killed" in line for line in lines)
    assert API_SECRET not in "\n".join(lines)


def test_concurrent_logins_all_get_distinct_working_tokens(gr: Client) -> None:
    tokens: list[str] = []

    def log_in(n: int) -> None:
        with httpx.Client(base_url=gr.url, timeout=10) as http:
            for i in range(5):
                ts = stamp(time.time())
                answer = http.post("/auth/login", json={"apiKey": API_KEY, "deviceId": f"d{n}-{i}", "timestamp": ts,
                                                        "signature": sign(API_KEY, f"d{n}-{i}", ts)})
                tokens.append(answer.json()["accessToken"])

    threads = [threading.Thread(target=log_in, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(set(tokens)) == 20
    assert all(gr.status(token).status_code == 200 for token in tokens[::5])


# ---- processes -----------------------------------------------------------------------------------------

def read_lines(proc: subprocess.Popen[str], count: int, timeout: float = 20) -> list[str]:
    """The first `count` lines of the process's stdout, waiting at most `timeout` seconds."""
    lines: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(stdout.readline() for _ in range(count)), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then the process must exit 0 within the timeout; answers its stderr."""
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    return stderr


def test_engine_bridge_sandbox_serves_all_three_and_stops_on_sigterm() -> None:
    proc = start("bridge.sandbox.run", "--quiet")
    try:
        lines = read_lines(proc, 7)
        assert len(lines) == 7, lines
        urls = {line.split(" sandbox listening on ")[0]: line.split(" listening on ")[1].strip()
                for line in lines if " sandbox listening on http://127.0.0.1:" in line}
        assert set(urls) == {"GameAnalytics", "GameRamp", "staq"}, lines
        assert len(set(urls.values())) == 3
        assert any(API_KEY in line and API_SECRET in line for line in lines)
        with httpx.Client(timeout=10) as http:
            ts = stamp(time.time())
            answer = http.post(urls["GameRamp"] + "/auth/login", json={
                "apiKey": API_KEY, "deviceId": "d", "timestamp": ts, "signature": sign(API_KEY, "d", ts)})
            assert answer.status_code == 200
            staq_line = next(line for line in lines if line.strip().startswith("appId"))
            app_id, secret = staq_line.split()[1], staq_line.split()[3]
            answer = http.post(f"{urls['staq']}/apps/{app_id}/auth/device", json={"deviceId": "d"},
                               headers={"AppSecret": secret})
            assert answer.status_code == 200
            assert http.get(urls["GameAnalytics"] + "/_sandbox/counts").status_code == 200
            refused = http.post(urls["GameRamp"] + "/auth/login", json={
                "apiKey": API_KEY, "deviceId": "d", "timestamp": ts, "signature": sign(API_KEY, "d", ts, "wrong")})
            assert refused.status_code == 401
        stderr = stop(proc)  # --quiet: only the refused call is logged
        assert "401 d: signature is not" in stderr and " 200 " not in stderr
        with httpx.Client(timeout=2) as http, pytest.raises(httpx.TransportError):
            http.get(urls["GameRamp"] + "/_sandbox/counts")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


def test_the_gameramp_sandbox_alone_takes_tenants_and_player_configs(tmp_path: Path) -> None:
    configs = tmp_path / "players.json"
    vip = {"playerStatus": {"isPayer": {"value": True, "defaultValue": False, "expiredAt": None}}}
    configs.write_text(json.dumps({"devices": {"vip-device": vip}}))
    proc = start("bridge.sandbox.gameramp", "--tenant", "k2:s2", "--expires-in", "30",
                 "--player-configs", str(configs))
    try:
        [line] = read_lines(proc, 1)
        assert line.startswith("GameRamp sandbox listening on http://127.0.0.1:"), line
        url = line.split(" listening on ")[1].strip()
        ts = stamp(time.time())
        answer = httpx.post(url + "/auth/login", timeout=10, json={
            "apiKey": "k2", "deviceId": "vip-device", "timestamp": ts, "signature": sign("k2", "vip-device", ts, "s2")})
        assert answer.status_code == 200
        assert (answer.json()["expiresIn"], answer.json()["playerConfig"]) == (30, vip)
        stderr = stop(proc)
        assert "login" in stderr and "200 vip-device" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    bad = subprocess.run([sys.executable, "-m", "bridge.sandbox.gameramp", "--player-configs", str(tmp_path / "x")],
                         cwd=REPO, capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert bad.returncode == 2 and "No such file" in bad.stderr
