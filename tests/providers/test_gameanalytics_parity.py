"""GameAnalytics parity with the official SDKs (issue 12), each item against the local sandbox over real HTTP
into a real SQLite store. The provider runs in-process (tests/providers/inprocess.py): its lane, sender and
the publisher in the test process, the acks built by the ingress's own intake code; nothing here needs the
daemon process (the ingress's replies on a socket, kill -9 and the CLI are in test_gameanalytics.py). The
SDK evidence for each rule is cited where the provider implements it."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.sandbox.gameanalytics import GameAnalyticsSandbox
from tests.harness import make_event
from tests.providers.inprocess import InProcessBridge, provider_spec
from tests.sandboxes import GaSandbox, wait_until

HELLO = {"platform": "windows", "os_version": "windows 10", "device": "pc", "manufacturer": "acme"}
GA = "gameanalytics"


def in_process(tmp_path: Path, url: str, **overrides: Any) -> InProcessBridge:
    """The GameAnalytics provider's dispatcher in the test process, on a store in `tmp_path`."""
    return InProcessBridge(tmp_path, {GA: provider_spec(GA, url, **overrides)})


def accepted(sb: GameAnalyticsSandbox, category: str | None = None) -> list[dict[str, Any]]:
    return sb.accepted_events(category=category)


@pytest.fixture
def ga_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """What the provider logs (its logger, `bridge.providers.gameanalytics`), from INFO."""
    caplog.set_level(logging.INFO, logger=f"bridge.providers.{GA}")
    return caplog


# --- any 2xx is success ---------------------------------------------------------------------------------

def test_a_204_counts_as_delivered_and_is_never_sent_again(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    sb.set_success_status(204)
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        game.events([make_event("design", event_id=f"nc:{i}") for i in range(3)])
        stats = wait_until(lambda: h.settled(GA), what="the batch settled")
        # a later event of the same player delivered: a player's batches go one after another, so a batch
        # taken for failed would have gone out again before it
        game.event(make_event("design", event_id="nc:later"))
        h.flush()
        wait_until(lambda: any(e["event_id"] == "nc:later" for e in accepted(sb, "design")) and h.settled(GA),
                   what="the later event delivered")
        design = accepted(sb, "design")
    assert sorted(e["event_id"] for e in design) == ["nc:0", "nc:1", "nc:2", "nc:later"]
    assert stats["dead_lettered"] == 0 and stats["last_error"] is None
    routes = sb.counts()["routes"]["events"]
    assert set(routes) == {"204"}


# --- annotations: engine_version, event_uuid, connection_type, configurations_v3 --------------------------

def test_events_carry_engine_version_a_stable_event_uuid_connection_type_and_configurations(
        tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    sb.set_remote_configs([{"key": "gravity", "value": "80", "id": "cfg-1", "vsn": 2},
                           {"key": "later", "value": "1", "id": "cfg-2", "vsn": 1,
                            "start_ts": int(time.time()) + 3600}])
    h = in_process(tmp_path, server.url, timeout=1.0)
    game = h.hello(engine="unity", engine_version="2022.3.10f1", **HELLO)
    with h:
        game.session_start()  # the player's configs are asked as its session starts
        wait_until(lambda: h.published("config/gameanalytics/cli"), what="remote configs")
        wait_until(lambda: accepted(sb, "user"), what="the session start, before the events route is slowed")
        sb.faults.slow("events", delay_s=1.5)  # over the provider's 1 s time-out: served late, and sent again
        sent = [make_event("design", event_id="ann:one", connection_type="wifi"), make_event("design", event_id="ann:two")]
        game.events(sent)
        got = wait_until(lambda: len(accepted(sb, "design")) >= 4 and accepted(sb, "design"), 15,
                         what="both copies of both events")
    by_id: dict[str, list[dict[str, Any]]] = {}
    for e in got:
        by_id.setdefault(e["event_id"], []).append(e)
    assert {k: len(v) for k, v in by_id.items()} == {"ann:one": 2, "ann:two": 2}
    one, two = by_id["ann:one"], by_id["ann:two"]
    assert one[0]["event_uuid"] == one[1]["event_uuid"] != two[0]["event_uuid"] == two[1]["event_uuid"]
    for e in got:
        assert e["engine_version"] == "unity 2022.3.10"
        assert e["configurations_v3"] == [{"key": "gravity", "id": "cfg-1", "vsn": 2}]  # the live one only
    assert one[0]["connection_type"] == "wifi" and "connection_type" not in two[0]
    assert sb.rejected() == []


def test_an_engine_the_sdks_do_not_name_sends_no_engine_version(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(engine="custom", engine_version="1.0", **HELLO)
    with h:
        game.event(make_event("design"))
        [got] = wait_until(lambda: accepted(sb, "design"), what="the design event")
    assert "engine_version" not in got and got["event_uuid"]


# --- a 400's listed events are found by event_uuid ------------------------------------------------------

def test_a_400_whose_echo_differs_dead_letters_the_listed_event_found_by_its_uuid(tmp_path: Path,
                                                                               ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    sb.set_lists(custom_dimensions_01=["paid", "free"])  # the provider is not told the list: only the sandbox refuses
    sb.set_echo(omit=["client_ts"])
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        bad = make_event("design", event_id="echo:bad", custom_01="vip")
        batch = [make_event("design", event_id=f"echo:{i}", custom_01="paid") for i in range(3)] + [bad]
        ack = game.events(batch)
        assert ack["invalid"] == []
        wait_until(lambda: sb.rejected(), what="the collector's 400")
        stats = wait_until(lambda: h.settled(GA), what="the batch finished")
        [letter] = h.dead_letters(GA)
    assert sorted(e["event_id"] for e in accepted(sb, "design")) == ["echo:0", "echo:1", "echo:2"]
    assert stats["dead_lettered"] == 1 and stats["queued"] == 0
    assert sb.counts()["routes"]["events"].get("400", 0) == 1  # never resent
    assert letter.uid == bad["id"] and letter.code == "rejected"


def test_a_400_entry_that_matches_no_event_is_logged_with_the_request_id(tmp_path: Path, ga_sandbox: GaSandbox,
                                                                         ga_log: pytest.LogCaptureFixture) -> None:
    sb, server = ga_sandbox
    sb.set_lists(custom_dimensions_01=["paid"])
    sb.set_echo(omit=["event_uuid"])
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        game.events([make_event("design", custom_01="vip"), make_event("design")])
        [record] = wait_until(lambda: sb.rejected(), what="the collector's 400")
        stats = wait_until(lambda: h.settled(GA), what="the batch finished")
        log = wait_until(lambda: record["request_id"] in ga_log.text and ga_log.text, what="the logged entry")
    assert "matches none sent by its event_uuid" in log
    assert stats["dead_lettered"] == 0


# --- the clock offset from the remote-configs init ------------------------------------------------------

def test_the_clock_offset_comes_from_the_remote_configs_init_when_the_v2_init_is_gone(
        tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    sb.set_clock_offset(3600)
    sb.faults.fail("init", status=404, count=None)  # current SDKs never call /v2/<key>/init
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        ev = make_event("design")
        game.event(ev)
        [got] = wait_until(lambda: accepted(sb, "design"), what="the design event")
        offset = h.figures(GA)["clock_offset_s"]
        behind = time.time() - h.clock.time()  # the providers' clock stands still; the collector's goes on
    assert 3600 - 1 <= offset <= 3600 + behind + 1
    assert abs(got["client_ts"] - (ev["ts"] // 1000 + offset)) <= 1
    assert sb.faults.fired().get("init", 0) >= 1


# --- progression attempts --------------------------------------------------------------------------------

def progression(event_id: str, user_id: str | None = None, **fields: Any) -> dict[str, Any]:
    ev = make_event("progression", event_id=event_id)
    del ev["fields"]["attempt_num"], ev["fields"]["score"]
    ev["fields"].update(fields)
    if user_id:
        ev["user_id"] = user_id
    return ev


def test_attempts_are_counted_per_player_and_progression_and_survive_a_restart(tmp_path: Path,
                                                                                ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(device_id="server", **HELLO)
    with h:
        first = [progression("Start:w1:l1", "p1"), progression("Fail:w1:l1", "p1"),
                 progression("Fail:w1:l1", "p2"), progression("Fail:w1:l2", "p1"), progression("Fail:w1:l1", "p1")]
        ack = game.events(first)
        assert ack["invalid"] == [] and ack["stored"] == 5  # a Fail without attempt_num is valid
        # delivered and counted so: a batch still in flight at the stop would be sent again after it
        wait_until(lambda: len(accepted(sb, "progression")) == 5 and h.settled(GA), what="the first events")
        h.restart()  # new providers on the same store, as a daemon restart gives them
        game = h.hello(device_id="server", **HELLO)
        game.events([
            progression("Complete:w1:l1", "p1"), progression("Complete:w1:l1", "p2"),
            progression("Fail:w1:l1", "p1"), progression("Complete:w1:l1", "p1"),
            progression("Complete:w1:l2", "p1", attempt_num=7)])
        got = wait_until(lambda: len(accepted(sb, "progression")) == 10 and accepted(sb, "progression"),
                         what="the later events")
        stats = h.figures(GA)
    sent: dict[str, list[tuple[str, int | None]]] = {}
    for e in got:  # one request per player: the order holds within a player
        sent.setdefault(e["user_id"], []).append((e["event_id"], e.get("attempt_num")))
    assert sent["p1"] == [
        ("Start:w1:l1", None), ("Fail:w1:l1", None), ("Fail:w1:l2", None), ("Fail:w1:l1", None),
        ("Complete:w1:l1", 3),  # two Fails, then this try: counted across the restart
        ("Fail:w1:l1", None),
        ("Complete:w1:l1", 2),  # a Complete starts the count again
        ("Complete:w1:l2", 7),  # the engine's own number wins
    ]
    assert sent["p2"] == [("Fail:w1:l1", None), ("Complete:w1:l1", 2)]  # each player counts for itself
    assert stats["dead_lettered"] == 0 and sb.rejected() == []


def test_a_resent_complete_keeps_its_attempt_number(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        game.events([progression("Fail:w2"), progression("Fail:w2")])
        wait_until(lambda: len(accepted(sb, "progression")) == 2, what="the fails")
        sb.faults.fail("events", status=503, count=3)
        game.event(progression("Complete:w2"))
        [done] = wait_until(lambda: accepted(sb, "progression")[2:], what="the complete after the outage")
    assert done["attempt_num"] == 3
    assert sb.faults.fired()["events"] == 3  # it was sent, refused and resent: its number was built again


# --- ads ---------------------------------------------------------------------------------------------------

def ad(action: str, ad_type: str, **fields: Any) -> dict[str, Any]:
    return make_event("ads", ad_action=action, ad_type=ad_type, ad_placement=f"{action}-{ad_type}", **fields)


def test_ads_as_the_sdks_send_them(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        sent = [ad("show", "app_open"), ad("request", "interstitial"), ad("loaded", "playable"),
                ad("failed_show", "banner", ad_fail_show_reason="no_fill"),
                ad("failed_show", "offer_wall", ad_fb_error="offline"),  # a v1 client's name for the reason
                ad("reward_received", "rewarded_video", ad_duration=30000),
                ad("show", "banner", ad_duration=500, ad_fail_show_reason="unknown")]
        bad = ad("failed_show", "video", ad_fail_show_reason="timeout")
        ack = game.events([*sent, bad])
        assert [(i["index"], i["provider"]) for i in ack["invalid"]] == [(7, GA)]
        assert "ad_fail_show_reason" in ack["invalid"][0]["message"]
        got = wait_until(lambda: len(accepted(sb, "ads")) == 7 and accepted(sb, "ads"), what="the ad events")
        stats = wait_until(lambda: h.settled(GA), what="the batch settled")
    by = {e["ad_placement"]: e for e in got}
    assert by["failed_show-banner"]["ad_fail_show_reason"] == "no_fill"
    assert by["failed_show-offer_wall"]["ad_fail_show_reason"] == "offline"
    assert all("ad_fb_error" not in e and "ad_fb_error" not in e.get("custom_fields", {}) for e in got)
    assert by["reward_received-rewarded_video"]["ad_duration"] == 30000
    banner = by["show-banner"]  # no reason but on failed_show, no duration but for video: kept as custom fields
    assert "ad_duration" not in banner and "ad_fail_show_reason" not in banner
    assert banner["custom_fields"] == {"ad_duration": 500, "ad_fail_show_reason": "unknown"}
    assert by["show-app_open"]["ad_type"] == "app_open"
    assert stats["dead_lettered"] == 1 and sb.rejected() == []


# --- limits and lists --------------------------------------------------------------------------------------

LISTS = {"custom_dimensions_01": ["paid", "free"], "resource_currencies": ["gold", "gems"],
         "resource_item_types": ["shop", "reward"]}


def test_limits_and_lists_as_the_sdks_apply_them(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    sb.set_lists(**LISTS)  # the collector, as the sandbox assumes it, knows the game's lists too
    h = in_process(tmp_path, server.url, **LISTS)
    game = h.hello(device_id="server", **HELLO)
    with h:
        good = [make_event("design", event_id="lim:ok", custom_01="paid", custom_02="d" * 32),
                make_event("resource", event_id="Sink:gems:shop:sword"),
                {**make_event("design", event_id="lim:user"), "user_id": "u" * 64}]
        bad = [make_event("design", custom_01="vip"),  # not in custom_dimensions_01
               make_event("design", custom_02="d" * 33),  # a dimension is at most 32 characters
               make_event("resource", event_id="Source:coins:shop:x"),  # currency not in the list
               make_event("resource", event_id="Source:gold:quest:x"),  # item type not in the list
               {**make_event("design"), "user_id": "u" * 65}]  # the SDKs refuse a user id over 64
        ack = game.events(good + bad)
        assert ack["stored"] == 8
        assert [i["index"] for i in ack["invalid"]] == [3, 4, 5, 6, 7]
        assert [i["message"].split(":")[0] for i in ack["invalid"]] == ["custom_01", "custom_02", "event_id",
                                                                         "event_id", "user_id"]
        got = wait_until(lambda: len(accepted(sb, "design")) + len(accepted(sb, "resource")) == 3 and accepted(sb),
                         what="the valid events")
        # the five, and the session start of the user whose id is too long
        stats = wait_until(lambda: (s := h.settled(GA)) and s["dead_lettered"] == 6 and s,
                           what="the dead letters")
    assert {e.get("event_id") for e in got if e["category"] not in ("user", "sdk_error")} == {
        "lim:ok", "Sink:gems:shop:sword", "lim:user"}
    reports = [(e["error_action"], e["error_parameter"]) for e in accepted(sb, "sdk_error")]
    assert sorted(reports) == [("not_found_in_available_currencies", "currency"),
                               ("not_found_in_available_item_types", "item_type")]  # the SDKs report these two
    assert sb.rejected() == [] and stats["queued"] == 0


def test_custom_fields_are_cleaned_as_the_sdks_clean_them(tmp_path: Path, ga_sandbox: GaSandbox,
                                                         ga_log: pytest.LogCaptureFixture) -> None:
    sb, server = ga_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        fields = {"kept_int": 1, "kept_float": 2.5, "kept_flag": True, "kept_text": "t" * 256, "bad key": 1,
                  "too_long": "x" * 257, "empty": "", "nested": {"a": 1}, "listed": [1], "nothing": None,
                  "dash-key": 1, "blob": b"\x00"}
        fields.update({f"more_{i:02d}": i for i in range(50)})  # 62 entries: the protocol's limit is 64
        ev = make_event("design", custom_fields=fields, engine_extra="rides along")
        ack = game.event(ev)
        assert ack["invalid"] == []  # cleaned, not refused
        [got] = wait_until(lambda: accepted(sb, "design"), what="the design event")
        log = ga_log.text
    kept = got["custom_fields"]
    assert len(kept) == 50
    assert list(kept)[:4] == ["kept_int", "kept_float", "kept_flag", "kept_text"]
    assert kept["kept_text"] == "t" * 256 and kept["kept_flag"] is True
    assert list(kept)[4:] == [f"more_{i:02d}" for i in range(46)]  # the first 50 good ones
    assert "engine_extra" not in kept  # over the 50: the engine's other fields count too
    assert "custom fields left out" in log and "bad key" in log
    assert sb.rejected() == []


def test_settings_lists_are_checked_at_start_up() -> None:
    from bridge.providers.gameanalytics.settings import GameAnalyticsSettings
    from bridge.providers.settings import SettingsError, parse_settings

    base = {"game_key": "k", "secret_key": "s"}
    assert parse_settings("ga", GameAnalyticsSettings, {**base, **LISTS}).resource_currencies == ("gold", "gems")
    for bad in ({"custom_dimensions_02": ["x"] * 21}, {"custom_dimensions_03": ["d" * 33]},
                {"resource_currencies": ["gold1"]}, {"resource_item_types": ["a:b"]},
                {"resource_item_types": "shop"}):
        with pytest.raises(SettingsError, match="providers.ga."):
            parse_settings("ga", GameAnalyticsSettings, {**base, **bad})


# --- sdk_error: the provider's refusals reported as the SDKs report theirs ---------------------------------

def test_refused_events_are_reported_as_sdk_errors_at_most_ten_per_type_and_session(
        tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(engine="godot", engine_version="4.2.1.stable", **HELLO)
    with h:
        game.session_start()
        refused = [make_event("business", currency="usd") for _ in range(12)]
        refused += [make_event("design", event_id="bad$id"), make_event("ads", ad_type="native"),
                    make_event("resource", event_id="Gain:gold:shop:x")]
        ack = game.events(refused)
        assert len(ack["invalid"]) == 15
        first = wait_until(lambda: len(accepted(sb, "sdk_error")) == 12 and accepted(sb, "sdk_error"),
                           what="the first session's reports")
        game.session_start()  # a new session counts again
        game.event(make_event("business", currency="eur"))
        later = wait_until(lambda: len(accepted(sb, "sdk_error")) == 13 and accepted(sb, "sdk_error")[12:],
                           what="the second session's report")
        stats = wait_until(lambda: h.settled(GA), what="everything settled")
    kinds = [(e["error_area"], e["error_action"], e.get("error_parameter")) for e in first]
    assert kinds.count(("business", "invalid_currency", "currency")) == 10
    assert ("design", "invalid_event_id_characters", "event_id") in kinds
    assert ("resource", "invalid_flow_type", "flow_type") in kinds
    assert all(e["error_category"] == "event_validation" for e in first)  # and none for the ad: no SDK sends one
    report = first[0]
    assert report["reason"].startswith("currency:") and len(report["reason"]) <= 256
    assert (report["platform"], report["os_version"], report["engine_version"]) == ("windows", "windows 10",
                                                                                    "godot 4.2.1")
    assert "user_id" not in report and "session_id" not in report  # as the SDKs send it
    assert [(e["error_area"], e["error_action"]) for e in later] == [("business", "invalid_currency")]
    assert stats["dead_lettered"] == 16 and stats["sdk_errors_sent"] == 13
    assert sb.rejected() == []


# --- impression, and the error event's function and line -----------------------------------------------

def impression(**fields: Any) -> dict[str, Any]:
    ev = make_event("design")
    ev["category"] = "impression"
    ev["fields"] = {"ad_network_name": "max", "ad_network_version": "11.4.2",
                    "impression_data": {"revenue": 0.0012, "currency": "USD", "placement": {"name": "end"}},
                    **fields}
    return ev


def test_impressions_and_error_locations_are_delivered(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        sent = [impression(), impression(ad_network_name="admob", custom_01="x"),
                make_event("error", function_name="f" * 300, line_number=42),
                make_event("error", line_number=7)]  # a line without a function: the SDKs send neither
        ack = game.events([*sent, impression(ad_network_version="")])
        assert ack["stored"] == 5 and [i["index"] for i in ack["invalid"]] == [4]
        got = wait_until(lambda: len(accepted(sb, "impression")) == 2 and len(accepted(sb, "error")) == 2
                         and accepted(sb), what="the impressions and errors")
    impressions = [e for e in got if e["category"] == "impression"]
    assert impressions[0]["impression_data"] == {"revenue": 0.0012, "currency": "USD", "placement": {"name": "end"}}
    assert {e["ad_network_name"] for e in impressions} == {"max", "admob"}
    errors = [e for e in got if e["category"] == "error"]
    assert errors[0]["function_name"] == "f" * 256 and errors[0]["line_number"] == 42
    assert "line_number" not in errors[1] and errors[1]["custom_fields"] == {"line_number": 7}
    assert sb.rejected() == []


# --- the provider's rules and the sandbox's agree on every parity rule ----------------------------------

ANNOTATIONS = {"v": 2, "user_id": "u1", "client_ts": 1795600000, "sdk_version": "rest api v2",
               "os_version": "windows 10", "manufacturer": "acme", "device": "pc", "platform": "windows",
               "session_id": "1c2c5d8e-95d4-4a7c-9a3e-0b7e1c2d3e4f", "session_num": 1, "build": "1.0",
               "event_uuid": "0f6b1c9e-2d3a-4b5c-8d7e-1f2a3b4c5d6e"}
AGREE: list[tuple[dict[str, Any], bool]] = [
    ({"category": "progression", "event_id": "Fail:w1"}, True),
    ({"category": "progression", "event_id": "Complete:w1"}, False),
    ({"category": "design", "event_id": "a", "engine_version": "unity 2022.3.10"}, True),
    ({"category": "design", "event_id": "a", "engine_version": "custom 1.0"}, False),
    ({"category": "design", "event_id": "a", "event_uuid": "not-a-uuid"}, False),
    ({"category": "design", "event_id": "a", "configurations_v3": [{"key": "k", "id": "i", "vsn": 1}]}, True),
    ({"category": "design", "event_id": "a", "configurations_v3": [{"id": "i"}]}, False),
    ({"category": "design", "event_id": "a", "user_id": "u" * 64}, True),
    ({"category": "design", "event_id": "a", "user_id": "u" * 65}, False),
    ({"category": "design", "event_id": "a", "custom_01": "c" * 32}, True),
    ({"category": "design", "event_id": "a", "custom_01": "c" * 33}, False),
    ({"category": "design", "event_id": "a", "custom_fields": {"k_1": 1, "t": "x" * 256, "f": True}}, True),
    ({"category": "business", "event_id": "a:b", "amount": -1, "currency": "USD", "transaction_num": 1}, False),
    ({"category": "ads", "ad_action": "show", "ad_type": "app_open", "ad_sdk_name": "max", "ad_placement": "p"},
     True),
    ({"category": "ads", "ad_action": "failed_show", "ad_type": "video", "ad_sdk_name": "max", "ad_placement": "p",
      "ad_fail_show_reason": "no_fill"}, True),
    ({"category": "ads", "ad_action": "failed_show", "ad_type": "video", "ad_sdk_name": "max", "ad_placement": "p",
      "ad_fail_show_reason": "timeout"}, False),
    ({"category": "impression", "ad_network_name": "max", "ad_network_version": "1", "impression_data": {}}, True),
    ({"category": "impression", "ad_network_name": "max", "ad_network_version": "1"}, False),
    ({"category": "error", "severity": "info", "message": "m", "function_name": "f", "line_number": 3}, True),
    ({"category": "error", "severity": "info", "message": "m", "line_number": -3}, False),
]


@pytest.mark.parametrize("event,valid", AGREE, ids=[str(i) for i in range(len(AGREE))])
def test_provider_and_sandbox_agree_on_the_parity_rules(event: dict[str, Any], valid: bool) -> None:
    from bridge.providers.gameanalytics import events as ga_events
    from bridge.sandbox import ga_rules

    full = {**ANNOTATIONS, **event}
    assert (ga_events.check(full) is None) == valid, ga_events.check(full)
    assert (not ga_rules.validate_event(full)) == valid, ga_rules.validate_event(full)


def test_provider_and_sandbox_agree_on_the_game_lists() -> None:
    from bridge.providers.gameanalytics import events as ga_events
    from bridge.sandbox import ga_rules

    lists = ga_events.Lists((("paid",), (), ()), ("gold",), ("shop",))
    sandbox_lists = {"custom_dimensions_01": ("paid",), "resource_currencies": ("gold",),
                     "resource_item_types": ("shop",)}
    for event, valid in [({"category": "design", "event_id": "a", "custom_01": "paid", "custom_02": "any"}, True),
                         ({"category": "design", "event_id": "a", "custom_01": "vip"}, False),
                         ({"category": "resource", "event_id": "Source:gold:shop:x", "amount": 1}, True),
                         ({"category": "resource", "event_id": "Source:gems:shop:x", "amount": 1}, False),
                         ({"category": "resource", "event_id": "Source:gold:quest:x", "amount": 1}, False)]:
        full = {**ANNOTATIONS, **event}
        assert (ga_events.check(full, lists) is None) == valid, event
        assert (not ga_rules.validate_lists(full, sandbox_lists)) == valid, event
