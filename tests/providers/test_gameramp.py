"""The GameRamp provider against the local GameRamp sandbox: login, clock, tokens, player configs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path
from collections.abc import Iterator

import pytest

from bridge.client import recv_publication, subscribe
from bridge.providers.gameramp import effective_config, login_signature, login_timestamp
from bridge.sandbox.api import Route
from bridge.sandbox.gameramp import DEV_API_KEY, DEV_API_SECRET, GameRampSandbox
from bridge.sandbox.server import Request, Response, SandboxServer
from tests.harness import Client, Daemon, make_event
from tests.providers.test_staq import big_events
from tests.sandboxes import provider_table, start_sandbox, wait_until

DOCS_MESSAGE = "test_tenant_4Dqms3ygG9FVC|device-123|2025-07-15T19:43:41Z"  # the docs' example
CONFIG = {"playerStatus": {"isPayer": {"value": True, "defaultValue": False, "expiredAt": None},
                           "vipTrial": {"value": True, "defaultValue": False, "expiredAt": "2020-01-01T00:00:00Z"}},
          "storeConfig": {"activeSkus": ["gems_100"]}}


@pytest.fixture
def sandbox() -> Iterator[tuple[GameRampSandbox, SandboxServer]]:
    sb, server = start_sandbox("gameramp")
    sb.set_player_config(CONFIG)
    yield sb, server
    server.stop()


def gameramp_daemon(workdir: Path, url: str, **overrides: object) -> Daemon:
    return Daemon(workdir, config=provider_table("gameramp", url, kind="gameramp", **overrides))


def figures(c: Client) -> dict:
    return c.request({"type": "stats"})["providers"]["gameramp"]


# --- signature -------------------------------------------------------------------------------------------

def test_signature_of_the_docs_example() -> None:
    expected = base64.b64encode(hmac.new(DEV_API_SECRET.encode(), DOCS_MESSAGE.encode(), hashlib.sha256)
                                .digest()).decode()
    assert login_signature(DEV_API_KEY, "device-123", "2025-07-15T19:43:41Z", DEV_API_SECRET) == expected
    assert login_timestamp(1752608621) == "2025-07-15T19:43:41Z"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_signature_matches_openssl() -> None:
    out = subprocess.run(["openssl", "dgst", "-binary", "-sha256", "-hmac", DEV_API_SECRET], input=DOCS_MESSAGE.encode(),
                         capture_output=True, check=True)
    assert base64.b64encode(out.stdout).decode() == login_signature(DEV_API_KEY, "device-123",
                                                                    "2025-07-15T19:43:41Z", DEV_API_SECRET)


def test_expired_entries_fall_back_to_their_default() -> None:
    values = effective_config(CONFIG, time.time())
    assert values == {"isPayer": True, "vipTrial": False, "storeConfig": {"activeSkus": ["gems_100"]}}
    assert effective_config(CONFIG, 1_500_000_000)["vipTrial"] is True  # before its expiry


# --- end to end ------------------------------------------------------------------------------------------

def test_player_config_reaches_the_client(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    with gameramp_daemon(tmp_path, server.url) as daemon, Client(daemon.ingress, device_id="dev-g") as c:
        sub = subscribe(daemon.publish, "config/gameramp/dev-g")
        try:
            c.hello()
            first = wait_until(lambda: recv_publication(sub, 100), what="the player config")
            assert first["values"] == {"isPayer": True, "vipTrial": False, "storeConfig": {"activeSkus": ["gems_100"]}}
            assert first["source"] == "gameramp" and first["meta"]["playerConfig"] == CONFIG
            sb.set_player_config({"playerStatus": {"isPayer": {"value": False, "defaultValue": False,
                                                               "expiredAt": None}}}, device_id="dev-g")
            changed = wait_until(lambda: recv_publication(sub, 100), what="the changed config")
        finally:
            sub.close(0)
    assert changed["values"] == {"isPayer": False} and changed["version"] == first["version"] + 1


@pytest.mark.parametrize("skew", [3600, -3600])
def test_clock_skew_of_an_hour_is_corrected_from_the_date_header(tmp_path: Path, sandbox, skew: int) -> None:
    sb, server = sandbox
    sb.set_clock_offset(skew)
    with gameramp_daemon(tmp_path, server.url) as daemon, Client(daemon.ingress, device_id="dev-c") as c:
        c.hello()
        wait_until(lambda: sb.calls("login", device_id="dev-c", status=200), what="a login")
        stats = figures(c)
    statuses = [r["status"] for r in sb.calls("login")]  # the harness's probe device logs in first
    assert statuses[:2] == [400, 200] and statuses.count(400) == 1  # the clock is learnt once
    assert abs(stats["clock_offset_s"] - skew) <= 2
    assert stats["login_failures"] == 0


def test_token_expiry_mid_stream_is_refreshed_ahead(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    sb.configure(expires_in=2)
    with gameramp_daemon(tmp_path, server.url, refresh=0.3) as daemon, Client(daemon.ingress, device_id="dev-t") as c:
        c.hello()
        wait_until(lambda: len(sb.calls("refresh", device_id="dev-t")) >= 2, 10, what="two refreshes")
        stats = figures(c)
    assert len(sb.calls("login", device_id="dev-t")) == 1 and stats["login_failures"] == 0
    statuses = [r["status"] for r in sb.calls("player_status", device_id="dev-t")]
    assert statuses and 401 not in statuses  # refreshed before expiry, never caught out


def test_refused_refresh_falls_back_to_a_new_login(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    with gameramp_daemon(tmp_path, server.url, refresh=0.3) as daemon, Client(daemon.ingress, device_id="dev-r") as c:
        c.hello()
        wait_until(lambda: sb.calls("login", device_id="dev-r"), what="the first login")
        sb.revoke_tokens("dev-r", refresh=True)  # access and refresh tokens both dead
        wait_until(lambda: len(sb.calls("login", device_id="dev-r")) == 2, 10, what="a second login")
    # a revoked refresh token names no device in the sandbox's records: look at them all
    assert 401 in [r["status"] for r in sb.calls("refresh")]


def test_wrong_secret_is_reported_with_the_documented_error(tmp_path: Path, sandbox) -> None:
    _, server = sandbox
    with gameramp_daemon(tmp_path, server.url, api_secret="not-the-secret") as daemon, \
            Client(daemon.ingress, device_id="dev-w") as c:
        c.hello()
        stats = wait_until(lambda: (f := figures(c))["login_failures"] >= 1 and f, what="a refused login")
    assert "401" in stats["provider_error"] and "Invalid authentication credentials" in stats["provider_error"]
    assert "not-the-secret" not in daemon.log()


def test_tokens_survive_a_restart(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    daemon = gameramp_daemon(tmp_path, server.url).start()
    with Client(daemon.ingress, device_id="dev-k") as c:
        c.hello()
        wait_until(lambda: sb.calls("player_status", device_id="dev-k"), what="a status fetch")
    daemon.stop()
    daemon.start()
    with Client(daemon.ingress, device_id="dev-k") as c:
        c.hello()
        wait_until(lambda: len(sb.calls("player_status", device_id="dev-k")) >= 2,
                   what="a status fetch after the restart")
    daemon.stop()
    assert len(sb.calls("login", device_id="dev-k")) == 1


def test_events_go_only_to_a_configured_route(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    with gameramp_daemon(tmp_path / "off", server.url) as daemon, Client(daemon.ingress, device_id="dev-e") as c:
        c.hello()
        c.request({"type": "event", "event": make_event("design")})
        time.sleep(0.8)
    assert sb.received_events() == []
    with gameramp_daemon(tmp_path / "on", server.url, events_route="/v1/events") as daemon, \
            Client(daemon.ingress, device_id="dev-e") as c:
        c.hello()
        sent = [make_event("design"), make_event("custom")]
        c.request({"type": "events", "events": sent})
        got = wait_until(lambda: sb.received_events(), what="forwarded events")
    assert [e["eventType"] for e in got] == ["design", "custom"]
    assert [e["metadata"]["eventId"] for e in got] == [e["id"] for e in sent]


# --- players, limits, and what the document leaves out ---------------------------------------------------

def config_of(paying: bool) -> dict:
    return {"playerStatus": {"isPayer": {"value": paying, "defaultValue": False, "expiredAt": None}}}


def test_a_dedicated_servers_players_log_in_and_get_their_config_each_on_its_own_topic(tmp_path: Path,
                                                                                         sandbox) -> None:
    sb, server = sandbox
    sb.set_player_config(config_of(True), device_id="p1")
    sb.set_player_config(config_of(False), device_id="p2")
    with gameramp_daemon(tmp_path, server.url, events_route="/v1/events") as daemon, \
            Client(daemon.ingress, device_id="server-1") as c:
        sub = subscribe(daemon.publish, "config/gameramp/server-1/")
        try:
            c.hello()
            for player in ("p1", "p2"):
                c.request({"type": "session_start", "user_id": player})
            sent = [{**make_event("design"), "user_id": p} for p in ("p1", "p2")]
            c.request({"type": "events", "events": sent})
            topics: dict[str, dict] = {}
            wait_until(lambda: (pub := recv_publication(sub, 100)) and topics.setdefault(pub["topic"], pub)
                       and len(topics) == 2, what="both players' configs")
            records = wait_until(lambda: len(sb.events()) == 2 and sb.events(), what="both players' events")
        finally:
            sub.close(0)
    assert topics["config/gameramp/server-1/p1"]["values"] == {"isPayer": True}
    assert topics["config/gameramp/server-1/p2"]["values"] == {"isPayer": False}
    assert {r["device_id"] for r in sb.calls("login", status=200)} >= {"p1", "p2"}
    # each event under its own player's login (the sandbox records the login's deviceId and GameRamp userId)
    assert {r["event"]["metadata"]["eventId"]: r["device_id"] for r in records} == {e["id"]: e["user_id"] for e in sent}
    assert all(r["user_id"].startswith(r["device_id"] + "_") for r in records)


def test_a_batch_over_the_body_limit_is_split_and_an_event_too_large_alone_dead_lettered(tmp_path: Path,
                                                                                          sandbox) -> None:
    sb, server = sandbox
    sent = big_events(12)
    with gameramp_daemon(tmp_path, server.url, events_route="/v1/events", interval=5.0) as daemon, \
            Client(daemon.ingress) as c:
        c.hello()
        for i in range(0, 12, 2):
            c.request({"type": "events", "events": sent[i:i + 2]})
        c.request({"type": "flush"})
        wait_until(lambda: len(sb.received_events()) == 12, 20, what="the split batch")
        sb.faults.fail("events", status=413, count=None)
        c.request({"type": "event", "event": make_event("custom", name="alone")})
        c.request({"type": "flush"})
        stats = wait_until(lambda: (f := figures(c))["dead_lettered"] == 1 and f, what="the dead letter")
    assert sorted(e["metadata"]["eventId"] for e in sb.received_events()) == sorted(e["id"] for e in sent)
    assert all(call["count"] < 12 for call in sb.calls("events"))
    assert stats["queued"] == 0


def test_event_timestamps_are_utc_to_the_millisecond_whatever_the_local_zone(tmp_path: Path, sandbox,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sb, server = sandbox
    monkeypatch.setenv("TZ", "XYZ-05:45")  # the daemon's zone: UTC+05:45, no daylight saving
    ts = 1_752_608_621_123
    with gameramp_daemon(tmp_path, server.url, events_route="/v1/events") as daemon, Client(daemon.ingress) as c:
        c.hello()
        c.request({"type": "event", "event": {**make_event("design"), "ts": ts}})
        [got] = wait_until(lambda: sb.received_events(), what="the event")
    assert got["timestamp"] == "2025-07-15T19:43:41.123Z"
    assert datetime.fromisoformat(got["timestamp"]).timestamp() * 1000 == ts


def test_the_status_answer_and_the_events_layout_are_settings(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    fields = {"type": "name", "timestamp": "at", "payload": "data", "metadata": "meta"}
    sb.configure(status_config_field="", events_route="/v2/analytics", events_envelope="events", event_fields=fields)
    sb.set_player_config(config_of(True), device_id="dev-s")
    config = provider_table("gameramp", server.url, kind="gameramp", status_config_field="",
                            events_route="/v2/analytics", events_envelope="events")
    config += 'event_fields = { type = "name", timestamp = "at", payload = "data", metadata = "meta" }\n'
    with Daemon(tmp_path, config=config) as daemon, Client(daemon.ingress, device_id="dev-s") as c:
        sub = subscribe(daemon.publish, "config/gameramp/dev-s")
        try:
            c.hello()
            c.request({"type": "session_start"})
            sent = make_event("design")
            c.request({"type": "event", "event": sent})
            [got] = wait_until(lambda: sb.received_events(), what="the event in the configured layout")
            published = wait_until(lambda: recv_publication(sub, 100), what="the config from the bare answer")
            wait_until(lambda: len(sb.calls("player_status", device_id="dev-s")) >= 2, what="a status fetch")
        finally:
            sub.close(0)
    assert (got["name"], got["data"], got["meta"]["eventId"]) == ("design", sent["fields"], sent["id"])
    assert published["values"] == {"isPayer": True}
    assert {r["status"] for r in sb.calls("player_status")} == {200}


class NoIdsInLogin(GameRampSandbox):
    """A GameRamp whose first login answers lack tenantId and gameId."""

    def __init__(self, broken: int) -> None:
        super().__init__()
        self.broken = broken

    def serve_route(self, route: Route, request: Request, call: dict) -> Response:
        answer = super().serve_route(route, request, call)
        if route.name != "login" or not self.broken:
            return answer
        self.broken -= 1
        body = {k: v for k, v in json.loads(answer.body).items() if k not in ("tenantId", "gameId")}
        return Response.json(200, body)


def test_a_login_answer_without_tenant_or_game_is_refused_and_tried_again_never_sent_as_none(tmp_path: Path) -> None:
    broken = NoIdsInLogin(broken=2)
    broken.set_player_config(config_of(True), device_id="dev-n")
    server = SandboxServer(broken).start()
    try:
        with gameramp_daemon(tmp_path, server.url) as daemon, Client(daemon.ingress, device_id="dev-n") as c:
            sub = subscribe(daemon.publish, "config/gameramp/dev-n")
            try:
                c.hello()
                published = wait_until(lambda: recv_publication(sub, 100), what="the config after a whole login")
            finally:
                sub.close(0)
            stats = figures(c)
    finally:
        server.stop()
    assert published["values"] == {"isPayer": True} and broken.broken == 0
    assert stats["login_failures"] >= 2 and "tenantId" in daemon.log()
    assert {r["status"] for r in broken.calls("player_status")} == {200}  # never X-Tenant-ID: None
