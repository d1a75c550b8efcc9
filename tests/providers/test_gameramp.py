"""The GameRamp provider against the local GameRamp sandbox: login, clock, tokens, player configs.

The provider is driven in-process (tests/providers/inprocess.py), its clock moved and its timers turned by
hand; the one daemon-level test follows a game's hello to its player config at a ZeroMQ subscriber."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.client import recv_publication, subscribe
from bridge.providers.gameramp import effective_config, login_signature, login_timestamp
from bridge.sandbox.api import Route
from bridge.sandbox.gameramp import DEV_API_KEY, DEV_API_SECRET, GameRampSandbox
from bridge.sandbox.server import Request, Response, SandboxServer
from tests.harness import Client, Daemon, make_event
from tests.providers.inprocess import InProcessBridge, ManualClock, provider_spec
from tests.providers.test_staq import big_events
from tests.sandboxes import CREDENTIALS, provider_table, start_sandbox, wait_until

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


def in_process(tmp_path: Path, url: str, clock: ManualClock | None = None, **overrides: Any) -> InProcessBridge:
    """The GameRamp provider's dispatcher in the test process, on a store in `tmp_path`."""
    return InProcessBridge(tmp_path, {"gameramp": provider_spec("gameramp", url, **overrides)}, clock)


REFRESH_S = CREDENTIALS["gameramp"]["refresh"]  # between player status fetches, on the provider's clock


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


# --- in-process: the provider's behaviour -------------------------------------------------------------

def test_player_config_is_published_on_the_players_topic_and_follows_changes(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    h = in_process(tmp_path, server.url)
    h.hello(device_id="dev-g")
    sub = h.subscribe("config/gameramp/dev-g")
    with h:
        h.tick()  # the timer: the player logs in and its config is fetched
        first = sub.next(what="the player config")
        assert first["values"] == {"isPayer": True, "vipTrial": False, "storeConfig": {"activeSkus": ["gems_100"]}}
        assert first["source"] == "gameramp" and first["meta"]["playerConfig"] == CONFIG
        sb.set_player_config({"playerStatus": {"isPayer": {"value": False, "defaultValue": False,
                                                           "expiredAt": None}}}, device_id="dev-g")
        h.tick(REFRESH_S / 2)  # not due yet
        assert h.published("config/gameramp/dev-g") == first
        h.tick(REFRESH_S / 2)
        changed = sub.next(what="the changed config")
    assert changed["values"] == {"isPayer": False} and changed["version"] == first["version"] + 1
    assert len(sb.calls("login", device_id="dev-g")) == 1 and len(sb.calls("player_status", device_id="dev-g")) == 2


def test_an_entry_past_its_expiry_falls_back_to_its_default_as_the_clock_passes_it(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    clock = ManualClock()
    expires = datetime.fromtimestamp(clock.time() + 60).astimezone().isoformat()
    sb.set_player_config({"playerStatus": {"vipTrial": {"value": True, "defaultValue": False, "expiredAt": expires}}},
                         device_id="dev-x")
    h = in_process(tmp_path, server.url, clock=clock, refresh=3600.0)
    h.hello(device_id="dev-x")
    with h:
        h.tick()
        assert h.published("config/gameramp/dev-x")["values"] == {"vipTrial": True}
        h.tick(61)  # no fetch due: the kept config is published again as time passes its expiry
        assert h.published("config/gameramp/dev-x")["values"] == {"vipTrial": False}
    assert len(sb.calls("player_status", device_id="dev-x")) == 1


@pytest.mark.parametrize("skew", [3600, -3600])
def test_clock_skew_of_an_hour_is_corrected_from_the_date_header(tmp_path: Path, sandbox, skew: int) -> None:
    sb, server = sandbox
    sb.set_clock_offset(skew)
    h = in_process(tmp_path, server.url)
    h.hello(device_id="dev-c")
    with h:
        h.tick()
        assert sb.calls("login", device_id="dev-c", status=200)
        stats = h.figures("gameramp")
    statuses = [r["status"] for r in sb.calls("login")]
    assert statuses[:2] == [400, 200] and statuses.count(400) == 1  # the clock is learnt once
    assert abs(stats["clock_offset_s"] - skew) <= 2
    assert stats["login_failures"] == 0


def test_token_expiry_mid_stream_is_refreshed_ahead(tmp_path: Path) -> None:
    """The sandbox keeps the provider's clock: a token not refreshed in time would be refused there."""
    clock = ManualClock()
    sb = GameRampSandbox(expires_in=2, clock=clock.time)
    sb.set_player_config(CONFIG)
    with SandboxServer(sb) as server:
        h = in_process(tmp_path, server.url, clock=clock, refresh=0.3)
        h.hello(device_id="dev-t")
        with h:
            h.tick()  # login, then the status fetch
            for _ in range(8):  # 4 s of a token's 2 s life: fetched every half second
                h.tick(0.5)
            stats = h.figures("gameramp")
    assert len(sb.calls("login", device_id="dev-t")) == 1 and stats["login_failures"] == 0
    assert len(sb.calls("refresh", device_id="dev-t")) == 2 and stats["refreshes"] == 2  # at 2.0 s and at 4.0 s
    statuses = [r["status"] for r in sb.calls("player_status", device_id="dev-t")]
    assert statuses == [200] * 9  # refreshed before expiry, never caught out


def test_refused_refresh_falls_back_to_a_new_login(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    h = in_process(tmp_path, server.url)
    h.hello(device_id="dev-r")
    with h:
        h.tick()
        assert len(sb.calls("login", device_id="dev-r")) == 1
        sb.revoke_tokens("dev-r", refresh=True)  # access and refresh tokens both dead
        h.tick(REFRESH_S)  # the status fetch: 401, the refresh refused, a new login, the fetch again
        assert len(sb.calls("login", device_id="dev-r")) == 2
        assert h.published("config/gameramp/dev-r")["values"]["isPayer"] is True
    # a revoked refresh token names no device in the sandbox's records: look at them all
    assert [r["status"] for r in sb.calls("refresh")] == [401]
    assert [r["status"] for r in sb.calls("player_status")] == [200, 401, 200]


def test_wrong_secret_is_reported_with_the_documented_error(tmp_path: Path, sandbox,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, server = sandbox
    h = in_process(tmp_path, server.url, api_secret="not-the-secret")
    h.hello(device_id="dev-w")
    with h:
        h.tick()
        stats = h.figures("gameramp")
    assert stats["login_failures"] == 1
    assert "401" in stats["provider_error"] and "Invalid authentication credentials" in stats["provider_error"]
    assert "Invalid authentication credentials" in caplog.text
    assert "not-the-secret" not in caplog.text  # in no log line at all, DEBUG included (nothing to redact)


def test_tokens_survive_a_restart(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    h = in_process(tmp_path, server.url)
    h.hello(device_id="dev-k")
    with h:
        h.tick()
        assert sb.calls("player_status", device_id="dev-k")
        h.restart()  # new providers on the same store
        h.hello(device_id="dev-k")
        h.tick()
        assert len(sb.calls("player_status", device_id="dev-k")) == 2
        assert h.figures("gameramp")["logins"] == 0  # the kept tokens served the new provider
    assert len(sb.calls("login", device_id="dev-k")) == 1


def test_events_go_only_to_a_configured_route(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    h = in_process(tmp_path / "off", server.url)
    game = h.hello(device_id="dev-e")
    with h:
        game.event(make_event("design"))
        h.flush()
        stats = wait_until(lambda: h.settled("gameramp"), what="the batch finished without sending")
    assert sb.received_events() == [] and sb.calls("events") == []
    assert stats["delivered"] == 1  # its session start (which only refreshes the player's config)
    h = in_process(tmp_path / "on", server.url, events_route="/v1/events")
    game = h.hello(device_id="dev-e")
    with h:
        sent = [make_event("design"), make_event("custom")]
        game.events(sent)
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
    h = in_process(tmp_path, server.url, events_route="/v1/events")
    game = h.hello(device_id="server-1")
    sub = h.subscribe("config/gameramp/server-1/")
    with h:
        for player in ("p1", "p2"):
            game.session_start(user_id=player)
        sent = [{**make_event("design"), "user_id": p} for p in ("p1", "p2")]
        game.events(sent)
        records = wait_until(lambda: len(sb.events()) == 2 and sb.events(), what="both players' events")
        h.tick()
        topics = sub.collect(["config/gameramp/server-1/p1", "config/gameramp/server-1/p2"])
    assert set(topics) == {"config/gameramp/server-1/p1", "config/gameramp/server-1/p2"}
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
    h = in_process(tmp_path, server.url, events_route="/v1/events", interval=5.0)
    game = h.hello()
    for i in range(0, 12, 2):  # stored before the lane runs: no claim of it is under way while it is stored
        game.events(sent[i:i + 2])
    with h:
        h.flush()
        wait_until(lambda: len(sb.received_events()) == 12, 20, what="the split batch")
        sb.faults.fail("events", status=413, count=None)
        alone = make_event("custom", name="alone")
        game.event(alone)
        h.flush()
        stats = wait_until(lambda: (f := h.figures("gameramp"))["dead_lettered"] == 1 and f, what="the dead letter")
        [letter] = h.dead_letters("gameramp")
    assert sorted(e["metadata"]["eventId"] for e in sb.received_events()) == sorted(e["id"] for e in sent)
    assert all(call["count"] < 12 for call in sb.calls("events"))
    assert stats["queued"] == 0
    assert letter.code == "too_large" and letter.uid == alone["id"]


def test_event_timestamps_are_utc_to_the_millisecond_whatever_the_local_zone(tmp_path: Path, sandbox,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sb, server = sandbox
    ts = 1_752_608_621_123
    monkeypatch.setenv("TZ", "XYZ-05:45")  # this process's zone: UTC+05:45, no daylight saving
    time.tzset()
    try:
        assert time.strftime("%z", time.localtime(ts / 1000)) == "+0545"
        h = in_process(tmp_path, server.url, events_route="/v1/events")
        game = h.hello()
        with h:
            game.event({**make_event("design"), "ts": ts})
            [got] = wait_until(lambda: sb.received_events(), what="the event")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert got["timestamp"] == "2025-07-15T19:43:41.123Z"
    assert datetime.fromisoformat(got["timestamp"]).timestamp() * 1000 == ts


def test_the_status_answer_and_the_events_layout_are_settings(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    fields = {"type": "name", "timestamp": "at", "payload": "data", "metadata": "meta"}
    sb.configure(status_config_field="", events_route="/v2/analytics", events_envelope="events", event_fields=fields)
    sb.set_player_config(config_of(True), device_id="dev-s")
    h = in_process(tmp_path, server.url, status_config_field="", events_route="/v2/analytics",
                   events_envelope="events", event_fields=fields)
    game = h.hello(device_id="dev-s")
    with h:
        game.session_start()
        sent = make_event("design")
        game.event(sent)
        [got] = wait_until(lambda: sb.received_events(), what="the event in the configured layout")
        h.tick()
        published = h.published("config/gameramp/dev-s")
        h.tick(REFRESH_S)
    assert (got["name"], got["data"], got["meta"]["eventId"]) == ("design", sent["fields"], sent["id"])
    assert published is not None and published["values"] == {"isPayer": True}
    assert [r["status"] for r in sb.calls("player_status", device_id="dev-s")] == [200, 200]
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


def test_a_login_answer_without_tenant_or_game_is_refused_and_tried_again_never_sent_as_none(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    broken = NoIdsInLogin(broken=2)
    broken.set_player_config(config_of(True), device_id="dev-n")
    with SandboxServer(broken) as server:
        h = in_process(tmp_path, server.url)
        h.hello(device_id="dev-n")
        with h:
            h.tick()
            h.tick(REFRESH_S)
            assert h.published("config/gameramp/dev-n") is None  # two malformed logins: nothing yet
            h.tick(REFRESH_S)
            published = h.published("config/gameramp/dev-n")
            stats = h.figures("gameramp")
    assert published is not None and published["values"] == {"isPayer": True} and broken.broken == 0
    assert stats["login_failures"] == 2 and "tenantId" in caplog.text
    assert [r["status"] for r in broken.calls("player_status")] == [200]  # never X-Tenant-ID: None


# --- daemon level: a game's hello to its player config at a subscriber ----------------------------------

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
