"""The GameRamp provider against the local GameRamp sandbox: login, clock, tokens, player configs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from bridge.client import recv_publication, subscribe
from bridge.providers.gameramp import effective_config, login_signature, login_timestamp
from bridge.sandbox.gameramp import DEV_API_KEY, DEV_API_SECRET, GameRampSandbox
from bridge.sandbox.server import SandboxServer
from tests.harness import Client, Daemon, make_event
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
