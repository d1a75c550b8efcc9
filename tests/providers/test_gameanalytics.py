"""The GameAnalytics provider against the local sandbox, over real HTTP into a real SQLite store.

Most tests drive the provider in-process (tests/providers/inprocess.py): its lane, sender and the publisher
in the test process, its clock and timers moved by hand. The daemon-level tests at the end keep what needs
the daemon process: the whole path from an engine's connection, the ingress's early word in its acks and
its session timer, the CLI, kill -9, and remote configs reaching a ZeroMQ subscriber."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.client import recv_publication, subscribe
from bridge.providers.gameanalytics import events as ga_events
from bridge.providers.gameanalytics.signing import encode_body, sign
from bridge.sandbox import ga_rules
from bridge.sandbox.gameanalytics import SANDBOX_SECRET_KEY, GameAnalyticsSandbox
from bridge.sandbox.server import SandboxServer
from tests.harness import Client, make_event
from tests.providers.inprocess import InProcessBridge, ManualClock, provider_spec
from tests.sandboxes import CREDENTIALS, ga_daemon, start_sandbox, wait_until

HELLO = {"platform": "windows", "os_version": "windows 10", "device": "pc", "manufacturer": "acme"}


@pytest.fixture
def sandbox() -> Iterator[tuple[GameAnalyticsSandbox, SandboxServer]]:
    sb, server = start_sandbox()
    yield sb, server
    server.stop()


def accepted(sb: GameAnalyticsSandbox, category: str | None = None) -> list[dict]:
    return sb.accepted_events(category=category)


def in_process(tmp_path: Path, url: str, clock: ManualClock | None = None, **overrides: Any) -> InProcessBridge:
    """The GameAnalytics provider's dispatcher in the test process, on a store in `tmp_path`."""
    return InProcessBridge(tmp_path, {"gameanalytics": provider_spec("gameanalytics", url, **overrides)}, clock)


REFRESH_S = CREDENTIALS["gameanalytics"]["remote_configs_refresh"]


# --- signing, against the docs' recipe ------------------------------------------------------------------

def test_signature_is_hmac_sha256_of_the_exact_gzipped_bytes() -> None:
    body = encode_body([{"category": "user"}])
    assert gzip.decompress(body) == b'[{"category":"user"}]'
    expected = base64.b64encode(hmac.new(SANDBOX_SECRET_KEY.encode(), body, hashlib.sha256).digest()).decode()
    assert sign(body, SANDBOX_SECRET_KEY) == expected


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_signature_matches_openssl() -> None:
    body = encode_body([{"category": "design", "event_id": "a:b"}])
    out = subprocess.run(f"openssl dgst -binary -sha256 -hmac {SANDBOX_SECRET_KEY} | base64", shell=True,
                         input=body, capture_output=True, check=True)
    assert out.stdout.decode().strip() == sign(body, SANDBOX_SECRET_KEY)


# --- the two validators agree ---------------------------------------------------------------------------

ANNOTATIONS = {"v": 2, "user_id": "u1", "client_ts": 1795600000, "sdk_version": "rest api v2",
               "os_version": "windows 10", "manufacturer": "acme", "device": "pc", "platform": "windows",
               "session_id": "1c2c5d8e-95d4-4a7c-9a3e-0b7e1c2d3e4f", "session_num": 1, "build": "1.0"}
CASES = [
    ({"category": "user"}, True),
    ({"category": "session_end", "length": 30}, True),
    ({"category": "session_end", "length": -1}, False),
    ({"category": "design", "event_id": "a:b:c:d:e", "value": 1.5}, True),
    ({"category": "design", "event_id": "a:b:c:d:e:f"}, False),
    ({"category": "design", "event_id": "bad/char"}, False),
    ({"category": "business", "event_id": "gems:pack", "amount": 99, "currency": "USD", "transaction_num": 1}, True),
    ({"category": "business", "event_id": "gems:pack", "amount": 99, "currency": "usd", "transaction_num": 1}, False),
    ({"category": "business", "event_id": "gems", "amount": 99, "currency": "USD", "transaction_num": 1}, False),
    ({"category": "business", "event_id": "gems:pack", "amount": 9.5, "currency": "USD", "transaction_num": 1}, False),
    ({"category": "progression", "event_id": "Start:w1"}, True),
    ({"category": "progression", "event_id": "Complete:w1:l1:s1", "attempt_num": 2, "score": 10}, True),
    ({"category": "progression", "event_id": "Finish:w1", "attempt_num": 1}, False),
    ({"category": "progression", "event_id": "Complete:w1"}, False),
    ({"category": "resource", "event_id": "Source:gold:reward:daily", "amount": 5}, True),
    ({"category": "resource", "event_id": "Sink:gold:shop:sword", "amount": -5}, True),
    ({"category": "resource", "event_id": "Sink:gold:shop:sword", "amount": 5}, False),
    ({"category": "resource", "event_id": "Source:gold:reward", "amount": 5}, False),
    ({"category": "error", "severity": "critical", "message": "boom"}, True),
    ({"category": "error", "severity": "fatal", "message": "boom"}, False),
    ({"category": "error", "severity": "info", "message": "m" * 8193}, False),
    ({"category": "ads", "ad_action": "show", "ad_type": "banner", "ad_sdk_name": "admob", "ad_placement": "p"}, True),
    ({"category": "ads", "ad_action": "view", "ad_type": "banner", "ad_sdk_name": "admob", "ad_placement": "p"}, False),
    ({"category": "ads", "ad_action": "show", "ad_type": "banner", "ad_sdk_name": "AdMob", "ad_placement": "p"}, False),
]


@pytest.mark.parametrize("event,valid", CASES, ids=[f"{c['category']}-{i}" for i, (c, _) in enumerate(CASES)])
def test_dispatcher_and_sandbox_validators_agree(event: dict, valid: bool) -> None:
    full = {**event, **ANNOTATIONS}
    ours = ga_events.check(full)
    theirs = ga_rules.validate_event(full)
    assert (ours is None) == valid, ours
    assert (not theirs) == valid, theirs


@pytest.mark.parametrize("field,value", [("session_id", "1C2C5D8E-95D4-4A7C-9A3E-0B7E1C2D3E4F"),
                                         ("platform", "Windows"), ("os_version", "windows"),
                                         ("session_num", 0), ("sdk_version", "unity 1.0")])
def test_bad_annotations_are_refused_by_both(field: str, value: object) -> None:
    full = {"category": "user", **ANNOTATIONS, field: value}
    assert ga_events.check(full) is not None
    assert ga_rules.validate_event(full)


# --- in-process: the provider's behaviour -------------------------------------------------------------

def test_clock_offset_from_init_is_applied(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    sb.set_clock_offset(3600)
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        ev = make_event("design")
        game.event(ev)
        [got] = wait_until(lambda: accepted(sb, "design"), what="the design event")
        offset = h.figures("gameanalytics")["clock_offset_s"]
        behind = time.time() - h.clock.time()  # the providers' clock stands still; the collector's goes on
        assert 3600 - 1 <= offset <= 3600 + behind + 1
    assert abs(got["client_ts"] - (ev["ts"] // 1000 + offset)) <= 1


def test_an_invalid_event_is_dead_lettered_and_never_sent(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        bad = make_event("business", currency="usd")
        ack = game.events([bad, make_event("design")])
        assert ack["stored"] == 2 and [(i["index"], i["provider"]) for i in ack["invalid"]] == [(0, "gameanalytics")]
        wait_until(lambda: accepted(sb, "design"), what="the good event")
        stats = wait_until(lambda: h.settled("gameanalytics"), what="the batch finished")
        [letter] = h.dead_letters("gameanalytics")
    assert stats["dead_lettered"] == 1 and stats["delivered"] >= 2  # the user event and the design event
    assert letter.code == "invalid" and "currency" in letter.reason and letter.uid == bad["id"]
    assert not accepted(sb, "business") and sb.rejected() == []  # refused by us, never sent


def test_400_dead_letters_only_the_listed_events_and_never_resends(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    # the game's custom_01 values as its GameAnalytics account lists them; the provider is not told the
    # list (no custom_dimensions_01 in its settings), so only the collector refuses a value outside it
    sb.set_lists(custom_dimensions_01=["paid", "free"])
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        odd = make_event("design", custom_01="vip")
        batch = [make_event("design", event_id=f"mix:{i}", custom_01="paid") for i in range(5)] + [odd]
        assert game.events(batch)["invalid"] == []  # no early word: the 400 is what refuses it
        wait_until(lambda: sb.rejected(), what="the collector's 400")
        stats = wait_until(lambda: h.settled("gameanalytics"), what="the batch finished")
        [letter] = h.dead_letters("gameanalytics")
    design = accepted(sb, "design")
    assert sorted(e["event_id"] for e in design) == [f"mix:{i}" for i in range(5)]  # stored once, never resent
    assert stats["dead_lettered"] == 1 and stats["queued"] == 0
    assert letter.code == "rejected" and letter.uid == odd["id"]
    assert sb.counts()["routes"]["events"].get("400", 0) == 1


def test_401_reinits_then_delivers(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        game.event(make_event("design"))
        wait_until(lambda: accepted(sb, "design"), what="a first delivery")
        inits = sb.counts()["routes"]["init"]["200"]
        sb.faults.fail("events", status=401, count=1)
        game.event(make_event("design", event_id="after:401"))
        wait_until(lambda: len(accepted(sb, "design")) == 2, what="delivery after re-init")
        stats = h.figures("gameanalytics")
    assert stats["auth_failures"] == 1
    assert sb.counts()["routes"]["init"]["200"] == inits + 1  # the 401 was answered by a fresh init


def test_wrong_keys_stop_sending_keep_storing_and_say_so(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    h = in_process(tmp_path, server.url, secret_key="0" * 40)
    game = h.hello(**HELLO)
    with h:
        game.events([make_event("design") for _ in range(3)])
        ga = wait_until(lambda: (f := h.figures("gameanalytics")).get("paused") and f, what="the provider to pause")
    assert "401" in ga["paused"] and ga["queued"] >= 3 and ga["delivered"] == 0
    assert not accepted(sb)
    assert len([e for e in h.events() if e["category"] == "design"]) == 3


def test_enabled_false_pauses_until_enabled(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    sb.set_enabled(False)
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        game.event(make_event("design"))
        wait_until(lambda: h.figures("gameanalytics").get("paused"), what="the pause")
        assert not accepted(sb)
        sb.set_enabled(True)
        wait_until(lambda: accepted(sb, "design"), what="delivery once enabled")
        assert "paused" not in h.figures("gameanalytics")


def test_413_splits_and_delivers_everything(tmp_path: Path) -> None:
    sb, server = start_sandbox(max_body_bytes=6000)
    try:
        h = in_process(tmp_path, server.url)
        game = h.hello(**HELLO)
        with h:
            sent = [make_event("design", event_id=f"big:{i}", custom_02=uuid.uuid4().hex) for i in range(300)]
            game.events(sent)
            wait_until(lambda: len(accepted(sb, "design")) == 300, 20, what="all 300 events")
            stats = wait_until(lambda: h.settled("gameanalytics"), what="the batch finished")
        assert sb.counts()["routes"]["events"].get("413", 0) >= 1
        assert sorted(e["event_id"] for e in accepted(sb, "design")) == sorted(f"big:{i}" for i in range(300))
        assert stats["dead_lettered"] == 0
    finally:
        server.stop()


def test_outage_then_recovery_loses_nothing_and_doubles_nothing(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    sb.faults.fail("events", status=503, count=3)
    sb.faults.drop("events", count=2)
    sb.faults.fail("events", status=500, count=2)
    h = in_process(tmp_path, server.url, retry_base=0.01, retry_cap=0.05)  # what is proven is not the backoff
    game = h.hello(**HELLO)
    with h:
        for k in range(4):
            game.events([make_event("design", event_id=f"o:{k}:{i}") for i in range(50)])
        wait_until(lambda: len(accepted(sb, "design")) >= 200, 30, what="everything after the outage")
        stats = wait_until(lambda: h.settled("gameanalytics"), what="the queue empty")
    ids = [e["event_id"] for e in accepted(sb, "design")]
    assert len(ids) == len(set(ids)) == 200
    assert stats["queued"] == 0 and stats["dead_lettered"] == 0
    assert stats["last_error"] is not None  # the outage was seen and reported
    assert sb.faults.fired()["events"] == 7  # every fault was met, and retried past


def test_remote_configs_201_then_200_and_changes_reach_subscribers(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    sb.set_remote_configs([{"key": "gravity", "value": "80"}], ab_id="exp1", variants={"a": [{"key": "gravity",
                                                                                             "value": "90"}]})
    h = in_process(tmp_path, server.url)
    h.hello(**HELLO).session_start()  # configs are asked for the players who played lately: the device's own
    own = "config/gameanalytics/cli"  # the device's player (a v1 client reads config/gameanalytics, the same)
    sub = h.subscribe(own)
    with h:  # the provider's start asks for them
        first = sub.next(what="the first remote configs")
        assert first["source"] == "gameanalytics" and "gravity" in first["values"]
        assert first["meta"]["configs_hash"]
        h.tick(REFRESH_S)
        h.tick(REFRESH_S)  # two refreshes: both answered 200, nothing republished
        assert h.published(own) == first and sub.pending() is None
        sb.set_remote_configs([{"key": "gravity", "value": "70"}, {"key": "speed", "value": "3"}])
        h.tick(REFRESH_S / 2)  # not yet due
        assert h.published(own) == first
        h.tick(REFRESH_S / 2)
        changed = sub.next(what="the changed configs")
        assert changed["values"] == {"gravity": "70", "speed": "3"}
        assert changed["version"] == first["version"] + 1
        legacy = h.published("config/gameanalytics")
        assert legacy is not None and (legacy["values"], legacy["meta"]) == (changed["values"], changed["meta"])
    counts = sb.counts()["routes"]["remote_configs"]
    assert counts == {"201": 2, "200": 2}


def test_ab_ids_are_added_to_events(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    sb.set_remote_configs([{"key": "k", "value": "v"}], ab_id="exp7", variants={"b": [{"key": "k", "value": "w"}]})
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        game.event(make_event("design"))  # opens a session: the player is asked before its events are built
        [ev] = wait_until(lambda: accepted(sb, "design"), what="the design event")
        assert h.published("config/gameanalytics")
    assert ev["ab_id"] == "exp7" and ev["ab_variant_id"]


def test_a_paused_provider_tries_init_again_on_its_timer(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    sb.set_enabled(False)
    h = in_process(tmp_path, server.url, paused_retry=3600.0, clock=ManualClock())
    h.hello(**HELLO)
    with h:
        assert "enabled: false" in h.figures("gameanalytics")["paused"]
        inits = sb.counts()["routes"]["init"]["200"]
        sb.set_enabled(True)
        h.tick(299)
        assert sb.counts()["routes"]["init"]["200"] == inits  # not before REINIT_EVERY_S
        h.tick(2)
        assert sb.counts()["routes"]["init"]["200"] == inits + 1
        assert "paused" not in h.figures("gameanalytics")


def test_server_mode_one_request_per_user_with_forwarded_ip(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    h = in_process(tmp_path, server.url, interval=5.0)
    game = h.hello(device_id="server", **HELLO)
    for user, ip in (("p1", "203.0.113.1"), ("p2", "203.0.113.2")):
        game.session_start(user_id=user, user_ip=ip)
    batch = []
    for i in range(6):
        ev = make_event("design", event_id=f"srv:{i}")
        ev["user_id"] = "p1" if i % 2 else "p2"
        batch.append(ev)
    game.events(batch)  # stored before the lane runs, to go in one batch: sessions and events
    with h:
        h.flush()
        wait_until(lambda: len(accepted(sb, "design")) == 6, what="both users' events")
    assert sb.counts()["routes"]["events"]["200"] == 2  # one request per user
    forwarded = {r["event"]["user_id"]: r.get("forwarded_for") for r in sb.accepted(category="design")}
    assert forwarded == {"p1": "203.0.113.1", "p2": "203.0.113.2"}


# --- daemon level: what needs the daemon process --------------------------------------------------------

def test_every_category_is_delivered_with_annotations_and_sessions(tmp_path: Path, sandbox) -> None:
    """From an engine's connection to the collector, and remote configs back to a ZeroMQ subscriber."""
    sb, server = sandbox
    sb.set_remote_configs([{"key": "gravity", "value": "80"}])
    with ga_daemon(tmp_path, server.url) as daemon, Client(daemon.ingress, device_id="dev-ga") as c:
        sub = subscribe(daemon.publish, "config/gameanalytics")
        try:
            c.hello(user_id="player-1", game_build="2.0.1", **HELLO)
            session = c.request({"type": "session_start"})
            sent = [make_event(cat) for cat in ("design", "business", "progression", "resource", "error", "ads")]
            sent[3]["fields"]["event_id"] = "Sink:gold:shop:sword"  # sent positive, delivered negative
            ack = c.request({"type": "events", "events": sent})
            assert ack["stored"] == 6 and ack["invalid"] == []
            c.request({"type": "session_end", "ts": session["started_at"] + 1500})  # 1.5 s of play
            c.request({"type": "flush"})
            got = wait_until(lambda: len(accepted(sb)) >= 8 and accepted(sb), what="8 events at the sandbox")
            configs = wait_until(lambda: recv_publication(sub, 100), what="the remote configs")
        finally:
            sub.close(0)
    categories = [e["category"] for e in got]
    assert categories[0] == "user" and categories[-1] == "session_end"
    assert sorted(categories[1:-1]) == sorted(["design", "business", "progression", "resource", "error", "ads"])
    for e in got:
        assert e["session_id"] == session["session_id"] and e["session_num"] == 1
        assert (e["user_id"], e["build"], e["platform"], e["os_version"]) == ("player-1", "2.0.1", "windows",
                                                                             "windows 10")
        assert e["sdk_version"] == "rest api v2" and e["v"] == 2
    assert got[-1]["length"] == 1
    by_cat = {e["category"]: e for e in got}
    assert by_cat["resource"]["amount"] == -50
    assert by_cat["business"]["transaction_num"] == 1
    assert sb.rejected() == []
    assert configs["source"] == "gameanalytics" and configs["values"] == {"gravity": "80"}


def test_invalid_event_is_told_in_the_ack_and_dead_lettered(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    with ga_daemon(tmp_path, server.url) as daemon, Client(daemon.ingress) as c:
        c.hello(**HELLO)
        bad = make_event("business", currency="usd")
        good = make_event("design")
        ack = c.request({"type": "events", "events": [bad, good]})
        assert ack["stored"] == 2
        assert [(i["index"], i["provider"]) for i in ack["invalid"]] == [(0, "gameanalytics")]
        assert "currency" in ack["invalid"][0]["message"]
        wait_until(lambda: accepted(sb, "design"), what="the good event")
        # the collector holds the design event before the daemon has counted its answer: wait for both
        # figures, then check the dead letter is the only one (the user and design events were delivered)
        stats = wait_until(lambda: (ga := c.request({"type": "stats"})["providers"]["gameanalytics"])[
            "dead_lettered"] >= 1 and ga["delivered"] >= 2 and ga, what="a dead letter and two deliveries")
        assert stats["dead_lettered"] == 1
        out = subprocess.run([daemon.command()[0], "-m", "bridge", "dead-letters", "--data-dir", str(daemon.data_dir)],
                             capture_output=True, text=True, timeout=20, cwd=Path(__file__).parents[2])
    assert "currency" in out.stdout and bad["id"] in out.stdout
    assert not accepted(sb, "business")


def test_restart_mid_outage_delivers_after_restart(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    sb.faults.fail("events", status=503, count=None)
    daemon = ga_daemon(tmp_path, server.url).start()
    with Client(daemon.ingress) as c:
        c.hello(**HELLO)
        c.request({"type": "events", "events": [make_event("design", event_id=f"r:{i}") for i in range(20)]})
    wait_until(lambda: sb.faults.fired().get("events", 0) >= 2, what="the batch sent and retried mid-outage")
    daemon.kill()
    sb.faults.clear()
    daemon.start()
    wait_until(lambda: len(accepted(sb, "design")) == 20, what="delivery after the restart")
    daemon.stop()


def test_session_timeout_sends_session_end(tmp_path: Path, sandbox) -> None:
    sb, server = sandbox
    extra = "[daemon]\nsession_timeout = 1\n"
    with ga_daemon(tmp_path, server.url, extra=extra) as daemon, Client(daemon.ingress) as c:
        c.hello(**HELLO)
        c.request({"type": "event", "event": make_event("design")})
        [end] = wait_until(lambda: accepted(sb, "session_end"), 15, what="the timed-out session's end")
    assert end["length"] >= 0


def test_an_events_uuid_is_a_v4_uuid_of_what_makes_it_the_same_event() -> None:
    first = ga_events.event_uuid("device-1", 1_700_000_000_123, "abc")
    parsed = uuid.UUID(first)
    assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, first)  # shaped as the SDKs' own
    assert ga_events.event_uuid("device-1", 1_700_000_000_123, "abc") == first  # a resend carries the same
    others = {ga_events.event_uuid(*key) for key in (("device-2", 1_700_000_000_123, "abc"),
                                                     ("device-1", 1_700_000_000_124, "abc"),
                                                     ("device-1", 1_700_000_000_123, "abd"))}
    assert first not in others and len(others) == 3
    # the bits as uuid.UUID(bytes=..., version=4) sets them on the same digest
    digest = hashlib.sha256(b"device-1\x001700000000123\x00abc").digest()
    assert first == str(uuid.UUID(bytes=digest[:16], version=4))
