"""The local GameAnalytics collector over real HTTP on loopback: signatures, sizes, every event rule, init,
remote configs, faults, the admin routes and the command-line entry.

Signatures are computed here with `hmac`/`hashlib` (and once with `openssl`), never with the sandbox's code,
and the rule cases are written by hand from the fact sheet, so a wrong rule table fails a test.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.sandbox import GameAnalyticsSandbox, SandboxServer
from bridge.sandbox.faults import Fault
from bridge.sandbox.ga_rules import ANNOTATIONS, CATEGORIES, CONDITIONS

REPO = Path(__file__).resolve().parents[2]
GAME_KEY = "5c6bcb5402204249437fb5a7a80a4959"
SECRET = "16813a12f718bc5c620f56944e1abc3ea13ccbac"
OTHER_GAME = "0123456789abcdef0123456789abcdef"
OTHER_SECRET = "00112233445566778899aabbccddeeff00112233"
DELETE = object()  # a mutation that removes the field


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class Collector:
    """A client of the sandbox under test: signed posts to its collector routes and JSON admin calls."""

    def __init__(self, sandbox: GameAnalyticsSandbox, url: str) -> None:
        self.sandbox = sandbox
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def post(self, path: str, body: bytes, *, secret: str = SECRET, gzipped: bool = False,
             auth: str | None = None, params: dict[str, Any] | None = None,
             timeout: float | None = None) -> httpx.Response:
        """POST `body` (gzipped first if asked), signed over the bytes actually sent unless `auth` is given."""
        sent = gzip.compress(body) if gzipped else body
        headers = {"Content-Type": "application/json",
                   "Authorization": auth if auth is not None else sign(sent, secret)}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return self.http.post(path, content=sent, headers=headers, params=params,
                              timeout=timeout if timeout is not None else 10)

    def events(self, events: list[Any], game_key: str = GAME_KEY, **kw: Any) -> httpx.Response:
        return self.post(f"/v2/{game_key}/events", json.dumps(events).encode(), **kw)

    def init(self, game_key: str = GAME_KEY, **kw: Any) -> httpx.Response:
        body = {"platform": "ios", "os_version": "ios 8.1", "sdk_version": "rest api v2"}
        return self.post(f"/v2/{game_key}/init", json.dumps(body).encode(), **kw)

    def remote_configs(self, user_id: str = "user-1", configs_hash: str | None = None, interval: int = 0,
                       game_key: str = GAME_KEY, **kw: Any) -> httpx.Response:
        params: dict[str, Any] = {"game_key": game_key, "interval_seconds": interval, "config_vsn_supported": 3}
        if configs_hash is not None:
            params["configs_hash"] = configs_hash
        body = {"user_id": user_id, "platform": "ios", "os_version": "ios 8.1", "sdk_version": "rest api v2",
                "build": "1.0", "random_salt": 42}
        return self.post("/remote_configs/v1/init", json.dumps(body).encode(), params=params, **kw)

    def admin(self, method: str, route: str, body: Any = None, **params: Any) -> httpx.Response:
        return self.http.request(method, f"/_sandbox/{route}", json=body, params=params or None)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(GameAnalyticsSandbox({OTHER_GAME: OTHER_SECRET})) as srv:
        yield srv


@pytest.fixture
def ga(server: SandboxServer) -> Iterator[Collector]:
    sandbox = server.emulator
    assert isinstance(sandbox, GameAnalyticsSandbox)
    sandbox.reset()
    collector = Collector(sandbox, server.url)
    yield collector
    collector.http.close()


def default_annotations(**overrides: Any) -> dict[str, Any]:
    event = {"v": 2, "user_id": "user-1", "client_ts": int(time.time()), "sdk_version": "rest api v2",
             "os_version": "ios 8.1", "manufacturer": "apple", "device": "iPhone6,1", "platform": "ios",
             "session_id": str(uuid.uuid4()), "session_num": 1}
    event.update(overrides)
    return event


VALID_FIELDS: dict[str, dict[str, Any]] = {
    "user": {},
    "session_end": {"length": 120},
    "business": {"event_id": "Gems:Pack100", "amount": 99, "currency": "USD", "transaction_num": 1,
                 "cart_type": "shop", "receipt_info": {"receipt": "abc", "store": "google_play", "signature": "s"}},
    "resource": {"event_id": "Source:gold:reward:daily", "amount": 50},
    "progression": {"event_id": "Complete:world01:level01", "attempt_num": 2, "score": 1000},
    "design": {"event_id": "Guns:Pistol:Fire", "value": 1.5},
    "error": {"severity": "warning", "message": "low memory"},
    "ads": {"ad_action": "show", "ad_type": "rewarded_video", "ad_sdk_name": "admob",
            "ad_placement": "end_of_level", "ad_duration": 3000},
}
# Issue 12 (parity with the official SDKs): the categories they send beyond the Collection API page.
VALID_FIELDS.update({
    "impression": {"ad_network_name": "max", "ad_network_version": "11.4.2", "impression_data": {"revenue": 0.01}},
    "sdk_error": {"error_category": "event_validation", "error_area": "business", "error_action": "invalid_currency",
                  "error_parameter": "currency", "reason": "usd"},
})


def event(kind: str, /, **changes: Any) -> dict[str, Any]:
    """A valid event of category `kind` with `changes` applied (DELETE removes a field)."""
    result = default_annotations(category=kind, **VALID_FIELDS[kind])
    for name, value in changes.items():
        if value is DELETE:
            result.pop(name, None)
        else:
            result[name] = value
    return result


# Events that break no rule: edges of each rule, every optional annotation, both event-id shapes.
VALID_CASES: list[tuple[str, dict[str, Any]]] = [
    *[(category, {}) for category in VALID_FIELDS],
    ("design", {"build": "1.4.2", "engine_version": "unity 2022.3.10", "connection_type": "wifi",
                "custom_01": "a", "custom_02": "b", "custom_03": "c", "ab_id": "exp1", "ab_variant_id": "ctrl",
                "limit_ad_tracking": True, "jailbroken": False, "progression": "world01:level01",
                "custom_fields": {f"k{i}": i for i in range(50)}}),
    ("design", {"event_id": "a"}),
    ("design", {"event_id": "a:b:c:d:e", "value": 3}),
    ("design", {"event_id": "Weird name-_.()!?:" + "x" * 64, "value": DELETE}),
    ("design", {"client_ts": 99_999_999_999, "os_version": "android 4.4.4", "platform": "android",
                "session_num": 2_000_000, "manufacturer": "m" * 64, "device": "d" * 64}),
    ("design", {"os_version": "windows 10", "platform": "windows", "connection_type": "offline"}),
    ("business", {"amount": 0, "transaction_num": 0, "cart_type": DELETE, "receipt_info": DELETE}),
    ("business", {"receipt_info": {"receipt": "r", "store": "apple"}}),
    ("resource", {"event_id": "Sink:gold:weapons:sword", "amount": -0.5}),
    ("progression", {"event_id": "Start:world01", "attempt_num": DELETE, "score": DELETE}),
    ("progression", {"event_id": "Fail:w:l:phase", "attempt_num": 1}),
    ("progression", {"event_id": "Fail:world01", "attempt_num": DELETE}),  # the SDKs send none on Fail
    ("session_end", {"length": 0}),
    ("error", {"severity": "critical", "message": "m" * 8192}),
    ("error", {"severity": "debug", "message": ""}),
    ("ads", {"ad_action": "reward_received", "ad_type": "offer_wall", "ad_sdk_name": "iron_source_2",
             "ad_placement": "p" * 64, "ad_duration": DELETE}),
]
# Issue 12: a case for each new category (more in test_gameanalytics_parity_sandbox.py).
VALID_CASES += [("impression", {}), ("sdk_error", {}),
                ("sdk_error", {"user_id": DELETE, "client_ts": DELETE, "session_id": DELETE, "session_num": DELETE})]

# (category, changes, error_type, path): each event breaks exactly one rule.
INVALID_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # the event itself and its category
    ("design", {"category": "purchase"}, "not_in_range", "/category"),
    ("design", {"category": 5}, "invalid_type", "/category"),
    ("design", {"category": DELETE}, "required", "/category"),
    ("design", {"surprise": 1}, "unknown_field", "/surprise"),
    ("user", {"event_id": "a:b"}, "unknown_field", "/event_id"),
    ("design", {"weird/key~": 1}, "unknown_field", "/weird~1key~0"),
    # default annotations
    ("design", {"v": 1}, "not_in_range", "/v"),
    ("design", {"v": "2"}, "invalid_type", "/v"),
    ("design", {"v": DELETE}, "required", "/v"),
    ("design", {"user_id": ""}, "invalid_length", "/user_id"),
    ("design", {"user_id": 7}, "invalid_type", "/user_id"),
    ("design", {"user_id": DELETE}, "required", "/user_id"),
    ("design", {"client_ts": 1_700_000_000_000}, "not_in_range", "/client_ts"),
    ("design", {"client_ts": 999_999_999}, "not_in_range", "/client_ts"),
    ("design", {"client_ts": 1.7e9}, "invalid_type", "/client_ts"),
    ("design", {"client_ts": "1700000000"}, "invalid_type", "/client_ts"),
    ("design", {"client_ts": DELETE}, "required", "/client_ts"),
    ("design", {"sdk_version": "unity 4.1.0"}, "not_in_range", "/sdk_version"),
    ("design", {"sdk_version": DELETE}, "required", "/sdk_version"),
    ("design", {"os_version": "iOS 8.1"}, "regex_no_match", "/os_version"),
    ("design", {"os_version": "ios8.1"}, "regex_no_match", "/os_version"),
    ("design", {"os_version": "ios 8.1.2.3"}, "regex_no_match", "/os_version"),
    ("design", {"os_version": DELETE}, "required", "/os_version"),
    ("design", {"manufacturer": "m" * 65}, "invalid_length", "/manufacturer"),
    ("design", {"manufacturer": ""}, "invalid_length", "/manufacturer"),
    ("design", {"manufacturer": DELETE}, "required", "/manufacturer"),
    ("design", {"device": "d" * 65}, "invalid_length", "/device"),
    ("design", {"device": None}, "invalid_type", "/device"),
    ("design", {"device": DELETE}, "required", "/device"),
    ("design", {"platform": "iOS"}, "regex_no_match", "/platform"),
    ("design", {"platform": DELETE}, "required", "/platform"),
    # fixed ids, not fresh ones: pytest-xdist's workers must collect the same test names
    ("design", {"session_id": "773F2BAC-EC09-49D7-9A1B-0C5D6E7F8091"}, "regex_no_match", "/session_id"),  # v4, upper
    ("design", {"session_id": "46ff3b7e-ed8d-11f1-a3c2-0242ac120002"}, "regex_no_match", "/session_id"),  # v1
    ("design", {"session_id": "not-a-uuid"}, "regex_no_match", "/session_id"),
    ("design", {"session_id": DELETE}, "required", "/session_id"),
    ("design", {"session_num": 0}, "not_in_range", "/session_num"),
    ("design", {"session_num": True}, "invalid_type", "/session_num"),
    ("design", {"session_num": 1.0}, "invalid_type", "/session_num"),
    ("design", {"session_num": DELETE}, "required", "/session_num"),
    ("design", {"build": "b" * 33}, "invalid_length", "/build"),
    ("design", {"build": ""}, "invalid_length", "/build"),
    ("design", {"engine_version": "e" * 65}, "invalid_length", "/engine_version"),
    ("design", {"connection_type": "5g"}, "not_in_range", "/connection_type"),
    ("design", {"custom_01": "c" * 65}, "invalid_length", "/custom_01"),
    ("design", {"custom_02": 2}, "invalid_type", "/custom_02"),
    ("design", {"custom_03": ""}, "invalid_length", "/custom_03"),
    ("design", {"ab_id": ""}, "invalid_length", "/ab_id"),
    ("design", {"ab_variant_id": "v" * 65}, "invalid_length", "/ab_variant_id"),
    ("design", {"limit_ad_tracking": "true"}, "invalid_type", "/limit_ad_tracking"),
    ("design", {"jailbroken": 1}, "invalid_type", "/jailbroken"),
    ("design", {"progression": "p" * 256}, "invalid_length", "/progression"),
    ("design", {"custom_fields": {f"k{i}": i for i in range(51)}}, "too_many_entries", "/custom_fields"),
    ("design", {"custom_fields": ["a"]}, "invalid_type", "/custom_fields"),
    # session_end
    ("session_end", {"length": -1}, "not_in_range", "/length"),
    ("session_end", {"length": 1.5}, "invalid_type", "/length"),
    ("session_end", {"length": DELETE}, "required", "/length"),
    # business
    ("business", {"event_id": "Gems"}, "regex_no_match", "/event_id"),
    ("business", {"event_id": "Gems:Pack:Extra"}, "regex_no_match", "/event_id"),
    ("business", {"event_id": "Gems:Pack$"}, "regex_no_match", "/event_id"),
    ("business", {"event_id": "Gems:" + "x" * 65}, "regex_no_match", "/event_id"),
    ("business", {"event_id": 12}, "invalid_type", "/event_id"),
    ("business", {"event_id": DELETE}, "required", "/event_id"),
    ("business", {"amount": 0.99}, "invalid_type", "/amount"),
    ("business", {"amount": DELETE}, "required", "/amount"),
    ("business", {"currency": "usd"}, "regex_no_match", "/currency"),
    ("business", {"currency": "USDT"}, "regex_no_match", "/currency"),
    ("business", {"currency": DELETE}, "required", "/currency"),
    ("business", {"transaction_num": -1}, "not_in_range", "/transaction_num"),
    ("business", {"transaction_num": DELETE}, "required", "/transaction_num"),
    ("business", {"cart_type": "c" * 33}, "invalid_length", "/cart_type"),
    ("business", {"receipt_info": "abc"}, "invalid_type", "/receipt_info"),
    ("business", {"receipt_info": {"receipt": "r", "store": "amazon"}}, "not_in_range", "/receipt_info/store"),
    ("business", {"receipt_info": {"store": "apple"}}, "required", "/receipt_info/receipt"),
    ("business", {"receipt_info": {"receipt": "r"}}, "required", "/receipt_info/store"),
    ("business", {"receipt_info": {"receipt": "r", "store": "apple", "signature": ""}}, "invalid_length",
     "/receipt_info/signature"),
    ("business", {"receipt_info": {"receipt": "r", "store": "apple", "extra": 1}}, "unknown_field",
     "/receipt_info/extra"),
    # resource
    ("resource", {"amount": -5}, "not_in_range", "/amount"),
    ("resource", {"amount": 0}, "not_in_range", "/amount"),
    ("resource", {"event_id": "Sink:gold:weapons:sword", "amount": 5}, "not_in_range", "/amount"),
    ("resource", {"event_id": "Sink:gold:weapons:sword", "amount": 0.0}, "not_in_range", "/amount"),
    ("resource", {"amount": "5"}, "invalid_type", "/amount"),
    ("resource", {"amount": DELETE}, "required", "/amount"),
    ("resource", {"event_id": "Gain:gold:reward:daily"}, "regex_no_match", "/event_id"),
    ("resource", {"event_id": "Source:gold:reward"}, "regex_no_match", "/event_id"),
    ("resource", {"event_id": "Source:gold:reward:da*ly"}, "regex_no_match", "/event_id"),
    ("resource", {"event_id": DELETE}, "required", "/event_id"),
    # progression
    ("progression", {"attempt_num": DELETE}, "required", "/attempt_num"),
    ("progression", {"event_id": "Finish:world01"}, "regex_no_match", "/event_id"),
    ("progression", {"event_id": "Start"}, "regex_no_match", "/event_id"),
    ("progression", {"event_id": "Start:a:b:c:d"}, "regex_no_match", "/event_id"),
    ("progression", {"event_id": "start:world01"}, "regex_no_match", "/event_id"),
    ("progression", {"event_id": DELETE}, "required", "/event_id"),
    ("progression", {"attempt_num": 1.5}, "invalid_type", "/attempt_num"),
    ("progression", {"score": "10"}, "invalid_type", "/score"),
    # design
    ("design", {"event_id": ""}, "regex_no_match", "/event_id"),
    ("design", {"event_id": "a:b:c:d:e:f"}, "regex_no_match", "/event_id"),
    ("design", {"event_id": "a::b"}, "regex_no_match", "/event_id"),
    ("design", {"event_id": DELETE}, "required", "/event_id"),
    ("design", {"value": "1"}, "invalid_type", "/value"),
    ("design", {"value": True}, "invalid_type", "/value"),
    # error
    ("error", {"severity": "fatal"}, "not_in_range", "/severity"),
    ("error", {"severity": DELETE}, "required", "/severity"),
    ("error", {"message": "m" * 8193}, "invalid_length", "/message"),
    ("error", {"message": ["x"]}, "invalid_type", "/message"),
    ("error", {"message": DELETE}, "required", "/message"),
    # ads
    ("ads", {"ad_action": "view"}, "not_in_range", "/ad_action"),
    ("ads", {"ad_action": DELETE}, "required", "/ad_action"),
    ("ads", {"ad_type": "video_ad"}, "not_in_range", "/ad_type"),
    ("ads", {"ad_type": DELETE}, "required", "/ad_type"),
    ("ads", {"ad_sdk_name": "AdMob"}, "regex_no_match", "/ad_sdk_name"),
    ("ads", {"ad_sdk_name": "a" * 33}, "regex_no_match", "/ad_sdk_name"),
    ("ads", {"ad_sdk_name": DELETE}, "required", "/ad_sdk_name"),
    ("ads", {"ad_placement": ""}, "invalid_length", "/ad_placement"),
    ("ads", {"ad_placement": "p" * 65}, "invalid_length", "/ad_placement"),
    ("ads", {"ad_placement": DELETE}, "required", "/ad_placement"),
    ("ads", {"ad_duration": -1}, "not_in_range", "/ad_duration"),
    ("ads", {"ad_duration": 1.5}, "invalid_type", "/ad_duration"),
    ("ads", {"ad_action": "failed_show", "ad_fail_show_reason": 5}, "invalid_type", "/ad_fail_show_reason"),
]
# Issue 12: a case for each field the SDK parity added (more in test_gameanalytics_parity_sandbox.py).
INVALID_CASES += [
    ("design", {"event_uuid": "not-a-uuid"}, "regex_no_match", "/event_uuid"),
    ("design", {"configurations_v3": {"key": "gravity"}}, "invalid_type", "/configurations_v3"),
    ("ads", {"ad_fail_show_reason": "timeout"}, "not_in_range", "/ad_fail_show_reason"),
    ("error", {"function_name": ""}, "invalid_length", "/function_name"),
    ("error", {"line_number": -1}, "not_in_range", "/line_number"),
    ("impression", {"ad_network_name": DELETE}, "required", "/ad_network_name"),
    ("impression", {"ad_network_version": 11}, "invalid_type", "/ad_network_version"),
    ("impression", {"impression_data": "x"}, "invalid_type", "/impression_data"),
    ("sdk_error", {"error_category": "other"}, "not_in_range", "/error_category"),
    ("sdk_error", {"error_area": "ads"}, "not_in_range", "/error_area"),
    ("sdk_error", {"error_action": DELETE}, "required", "/error_action"),
    ("sdk_error", {"error_parameter": "ad_type"}, "not_in_range", "/error_parameter"),
    ("sdk_error", {"reason": "r" * 257}, "invalid_length", "/reason"),
]


def _case_id(case: tuple[Any, ...]) -> str:
    category, changes = case[0], case[1]
    shown = ",".join(f"{k}={'DELETE' if v is DELETE else str(v)[:20]}" for k, v in changes.items())
    return f"{category}[{shown}]"


@pytest.mark.parametrize("case", VALID_CASES, ids=[_case_id(c) for c in VALID_CASES])
def test_valid_event_is_accepted(ga: Collector, case: tuple[str, dict[str, Any]]) -> None:
    sent = event(case[0], **case[1])
    answer = ga.events([sent])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {}
    assert ga.sandbox.accepted_events() == [sent]
    assert ga.sandbox.rejected() == []


@pytest.mark.parametrize("case", INVALID_CASES, ids=[_case_id(c) for c in INVALID_CASES])
def test_invalid_event_is_rejected_with_the_rule_broken(ga: Collector,
                                                       case: tuple[str, dict[str, Any], str, str]) -> None:
    category, changes, error_type, path = case
    sent = event(category, **changes)
    answer = ga.events([sent])
    assert answer.status_code == 400, answer.text
    assert answer.json() == [{"event": sent, "errors": [{"error_type": error_type, "path": path}]}]
    assert ga.sandbox.accepted() == []
    [record] = ga.sandbox.rejected()
    assert record["event"] == sent
    assert [(e["error_type"], e["path"]) for e in record["errors"]] == [(error_type, path)]
    assert record["errors"][0]["detail"]


def test_the_rule_cases_cover_every_field_and_condition_of_the_table() -> None:
    """A field added to the rule table without a hand-written invalid case fails here."""
    paths = {(category, path) for category, _, _, path in INVALID_CASES}
    every_path = {path for _, path in paths}
    missing = [name for name in ANNOTATIONS if f"/{name}" not in every_path]
    for category, fields in CATEGORIES.items():
        missing += [f"{category}.{name}" for name in fields if (category, f"/{name}") not in paths]
        for nested_name, rule in fields.items():
            missing += [f"{category}.{nested_name}.{inner}" for inner in rule.get("fields", {})
                        if (category, f"/{nested_name}/{inner}") not in paths]
    for category, conditions in CONDITIONS.items():
        missing += [f"{category} condition on {c['field']}" for c in conditions
                    if not any(cat == category and path == f"/{c['field']}" and
                               str(ch.get("event_id", VALID_FIELDS[category]["event_id"])).split(":")[0]
                               in c["is_one_of"]
                               for cat, ch, _, path in INVALID_CASES)]
    assert missing == []
    assert {category for category, _ in VALID_CASES} == set(CATEGORIES)


def test_an_event_that_is_not_an_object_is_reported_at_the_empty_path(ga: Collector) -> None:
    answer = ga.events(["not an event", 5])
    assert answer.status_code == 400
    assert answer.json() == [
        {"event": "not an event", "errors": [{"error_type": "not_an_object", "path": ""}]},
        {"event": 5, "errors": [{"error_type": "not_an_object", "path": ""}]},
    ]


def test_several_broken_rules_are_all_reported(ga: Collector) -> None:
    sent = event("business", currency="usd", amount="1", receipt_info={"store": "x"})
    answer = ga.events([sent])
    assert answer.status_code == 400
    errors = {(e["error_type"], e["path"]) for e in answer.json()[0]["errors"]}
    assert errors == {("invalid_type", "/amount"), ("regex_no_match", "/currency"),
                      ("not_in_range", "/receipt_info/store"), ("required", "/receipt_info/receipt")}


def test_a_non_finite_number_is_out_of_range(ga: Collector) -> None:
    # 1e400 is valid JSON text that no float can hold: it reads as infinity.
    text = json.dumps([event("design", value=12345.5)]).replace("12345.5", "1e400")
    answer = ga.post(f"/v2/{GAME_KEY}/events", text.encode())
    assert answer.status_code == 400
    assert answer.json()[0]["errors"] == [{"error_type": "not_in_range", "path": "/value"}]


def test_a_mixed_batch_keeps_the_valid_events_and_lists_only_the_invalid(ga: Collector) -> None:
    good = [event("design"), event("user"), event("resource", event_id="Sink:gold:shop:sword", amount=-10)]
    bad = [event("business", currency="eur"), event("progression", event_id="Complete:w1", attempt_num=DELETE)]
    batch = [good[0], bad[0], good[1], bad[1], good[2]]
    answer = ga.events(batch)
    assert answer.status_code == 400
    assert answer.json() == [
        {"event": bad[0], "errors": [{"error_type": "regex_no_match", "path": "/currency"}]},
        {"event": bad[1], "errors": [{"error_type": "required", "path": "/attempt_num"}]},
    ]
    assert ga.sandbox.accepted_events() == good
    assert [r["event"] for r in ga.sandbox.rejected()] == bad
    counts = ga.sandbox.counts()
    assert (counts["accepted"], counts["rejected"]) == (3, 2)
    assert counts["categories"]["business"] == {"accepted": 0, "rejected": 1}
    assert counts["categories"]["resource"] == {"accepted": 1, "rejected": 0}
    assert counts["routes"]["events"] == {"400": 1}


def test_bodies_that_are_not_an_array_of_events_are_refused_whole(ga: Collector) -> None:
    assert ga.events([]).status_code == 200
    path = f"/v2/{GAME_KEY}/events"
    for body in (b'{"category": "user"}', b"[{", b"[NaN]", "[\"\xe9\"]".encode("latin-1"), b""):
        answer = ga.post(path, body)
        assert answer.status_code == 400, body
        assert "error" in answer.json()
    assert ga.sandbox.accepted() == [] and ga.sandbox.rejected() == []


# ---- signatures ----------------------------------------------------------------------------------------

def test_the_signature_is_the_hmac_of_the_body_bytes_as_sent(ga: Collector) -> None:
    events = [event("design"), event("user")]
    body = json.dumps(events).encode()
    assert ga.post(f"/v2/{GAME_KEY}/events", body).status_code == 200

    # The same JSON with other whitespace is other bytes: the signature of the first no longer fits.
    respaced = json.dumps(events, indent=1).encode()
    answer = ga.post(f"/v2/{GAME_KEY}/events", respaced, auth=sign(body))
    assert answer.status_code == 401
    # One character changed in the signature.
    good = sign(body)
    bad = ("A" if good[0] != "A" else "B") + good[1:]
    assert ga.post(f"/v2/{GAME_KEY}/events", body, auth=bad).status_code == 401
    # The right HMAC in hex instead of base64, a missing header, another game's secret.
    hexdigest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert ga.post(f"/v2/{GAME_KEY}/events", body, auth=hexdigest).status_code == 401
    assert ga.post(f"/v2/{GAME_KEY}/events", body, auth="").status_code == 401
    assert ga.post(f"/v2/{GAME_KEY}/events", body, secret=OTHER_SECRET).status_code == 401
    assert ga.sandbox.accepted_events() == events  # only the first post was stored
    assert ga.sandbox.counts()["routes"]["events"] == {"200": 1, "401": 5}


def test_a_gzipped_body_is_signed_over_the_gzipped_bytes(ga: Collector) -> None:
    events = [event("design"), event("error")]
    body = json.dumps(events).encode()
    assert ga.events(events, gzipped=True).status_code == 200
    # Signed over the JSON instead of the gzip bytes sent: refused.
    answer = ga.post(f"/v2/{GAME_KEY}/events", body, gzipped=True, auth=sign(body))
    assert answer.status_code == 401
    # Content-Encoding says gzip but the body is plain JSON: signed right, but not gzip.
    answer = ga.http.post(f"/v2/{GAME_KEY}/events", content=body,
                          headers={"Authorization": sign(body), "Content-Encoding": "gzip"})
    assert answer.status_code == 400
    assert ga.sandbox.accepted_events() == events


def test_unknown_game_keys_and_registered_games(ga: Collector) -> None:
    unknown = "ffffffffffffffffffffffffffffffff"
    assert ga.events([event("user")], game_key=unknown).status_code == 401
    assert ga.init(game_key=unknown).status_code == 401
    assert ga.events([event("user")], game_key=OTHER_GAME, secret=OTHER_SECRET).status_code == 200
    assert ga.events([event("user")], game_key=OTHER_GAME).status_code == 401  # the sandbox game's secret
    [record] = ga.sandbox.accepted()
    assert record["game_key"] == OTHER_GAME


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")
def test_the_signature_matches_the_openssl_shell_recipe(ga: Collector) -> None:
    body = json.dumps([event("design")]).encode()
    digest = subprocess.run(["openssl", "dgst", "-binary", "-sha256", "-hmac", SECRET], input=body,
                            capture_output=True, check=True, timeout=10).stdout
    from_openssl = base64.b64encode(digest).decode()
    assert from_openssl == sign(body)
    assert ga.post(f"/v2/{GAME_KEY}/events", body, auth=from_openssl).status_code == 200
    gz = gzip.compress(body)
    digest = subprocess.run(["openssl", "dgst", "-binary", "-sha256", "-hmac", SECRET], input=gz,
                            capture_output=True, check=True, timeout=10).stdout
    answer = ga.http.post(f"/v2/{GAME_KEY}/events", content=gz, headers={
        "Authorization": base64.b64encode(digest).decode(), "Content-Encoding": "gzip"})
    assert answer.status_code == 200


# ---- sizes ---------------------------------------------------------------------------------------------

def _padded_batch(size: int) -> bytes:
    """A valid one-event array padded with spaces to exactly `size` bytes."""
    body = json.dumps([event("design")]).encode()
    return body[:-1] + b" " * (size - len(body)) + b"]"


def test_the_one_megabyte_limit_applies_to_the_body_as_sent(ga: Collector) -> None:
    path = f"/v2/{GAME_KEY}/events"
    assert ga.post(path, _padded_batch(1_000_000)).status_code == 200
    answer = ga.post(path, _padded_batch(1_000_001))
    assert answer.status_code == 413
    assert len(ga.sandbox.accepted()) == 1
    # Three megabytes of JSON that gzip below the limit are fine: the limit counts the bytes sent.
    many = [event("design", event_id=f"level:{i}") for i in range(8000)]
    raw = json.dumps(many).encode()
    assert len(raw) > 2_000_000 and len(gzip.compress(raw)) < 1_000_000
    assert ga.events(many, gzipped=True).status_code == 200
    assert len(ga.sandbox.accepted()) == 8001


def test_a_body_over_twice_the_limit_gets_the_connection_closed(ga: Collector) -> None:
    with pytest.raises(httpx.TransportError):
        ga.post(f"/v2/{GAME_KEY}/events", _padded_batch(2_000_001))
    assert ga.sandbox.accepted() == []
    assert ga.sandbox.counts()["routes"]["events"] == {"dropped": 1}
    assert ga.events([event("user")]).status_code == 200  # the client reconnects


def test_a_chunked_body_is_refused_with_411(ga: Collector) -> None:
    answer = ga.http.post(f"/v2/{GAME_KEY}/events", content=iter([b"[", b"]"]), headers={"Authorization": "x"})
    assert answer.status_code == 411


# ---- init and remote configs ---------------------------------------------------------------------------

def test_init_answers_enabled_server_ts_and_flags(ga: Collector) -> None:
    answer = ga.init()
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"enabled", "server_ts", "flags"}
    assert body["enabled"] is True and body["flags"] == []
    assert type(body["server_ts"]) is int and abs(body["server_ts"] - time.time()) < 5
    assert answer.headers["X-GA-Service"] == "collect"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_init_can_answer_enabled_false_and_a_shifted_clock(ga: Collector) -> None:
    ga.sandbox.set_enabled(False)
    assert ga.init().json()["enabled"] is False
    assert ga.init(game_key=OTHER_GAME, secret=OTHER_SECRET).json()["enabled"] is True
    assert ga.admin("PUT", "enabled", {"enabled": True}).status_code == 200
    assert ga.init().json()["enabled"] is True
    assert ga.admin("PUT", "enabled", {"enabled": False, "game_key": OTHER_GAME}).status_code == 200
    assert ga.init(game_key=OTHER_GAME, secret=OTHER_SECRET).json()["enabled"] is False
    # Events still go in while disabled: the flag tells the client, the collector does not refuse.
    assert ga.events([event("user")], game_key=OTHER_GAME, secret=OTHER_SECRET).status_code == 200

    assert ga.admin("PUT", "clock", {"offset_seconds": -3600}).status_code == 200
    assert abs(ga.init().json()["server_ts"] - (time.time() - 3600)) < 5


def test_init_body_is_checked(ga: Collector) -> None:
    body = json.dumps({"os_version": "ios 8.1", "sdk_version": "rest api v2"}).encode()
    answer = ga.post(f"/v2/{GAME_KEY}/init", body)
    assert answer.status_code == 400
    assert answer.json() == {"errors": [{"error_type": "required", "path": "/platform"}]}
    assert ga.post(f"/v2/{GAME_KEY}/init", b"[]").status_code == 400


CONFIGS: list[dict[str, Any]] = [
    {"key": "gravity", "value": "80", "start_ts": None, "end_ts": None},
    {"key": "mushroom_power", "value": "32", "start_ts": 1_546_300_111, "end_ts": 4_102_444_800},
]


def test_remote_configs_answer_201_then_200_with_the_hash_then_201_after_a_change(ga: Collector) -> None:
    ga.sandbox.set_remote_configs([
        *CONFIGS,
        {"key": "expired", "value": "x", "start_ts": 1_000_000_000, "end_ts": 1_500_000_000},
        {"key": "later", "value": "y", "start_ts": int(time.time()) + 3600},
    ])
    first = ga.remote_configs()
    assert first.status_code == 201
    body = first.json()
    assert set(body) == {"server_ts", "configs", "configs_hash"}
    assert body["configs"] == CONFIGS
    assert body["configs_hash"].isdigit() and abs(body["server_ts"] - time.time()) < 5

    same = ga.remote_configs(configs_hash=body["configs_hash"])
    assert same.status_code == 200
    assert set(same.json()) == {"server_ts"}

    # An interval that reaches the config starting in an hour brings it in, with another hash.
    wide = ga.remote_configs(configs_hash=body["configs_hash"], interval=7200)
    assert wide.status_code == 201
    assert [c["key"] for c in wide.json()["configs"]] == ["gravity", "mushroom_power", "later"]

    ga.sandbox.set_remote_configs([{"key": "gravity", "value": "90"}])
    changed = ga.remote_configs(configs_hash=body["configs_hash"])
    assert changed.status_code == 201
    assert changed.json()["configs"] == [{"key": "gravity", "value": "90", "start_ts": None, "end_ts": None}]
    assert changed.json()["configs_hash"] != body["configs_hash"]

    # The admin route changes them too.
    assert ga.admin("PUT", "configs", {"configs": [{"key": "speed", "value": "3"}]}).status_code == 200
    again = ga.remote_configs(configs_hash=changed.json()["configs_hash"])
    assert again.status_code == 201 and [c["key"] for c in again.json()["configs"]] == ["speed"]
    assert ga.admin("GET", "configs").json()["configs"] == [
        {"key": "speed", "value": "3", "start_ts": None, "end_ts": None}]


def test_remote_configs_ab_test_splits_users_over_variants_stably(ga: Collector) -> None:
    background = {"key": "background_color", "value": "#ff0000", "start_ts": None, "end_ts": None}
    ga.sandbox.set_remote_configs(CONFIGS, ab_id="aaabc", variants={"1": [background], "ctrl": []})
    seen: dict[str, str] = {}
    for i in range(40):
        answer = ga.remote_configs(user_id=f"user-{i}")
        assert answer.status_code == 201
        body = answer.json()
        assert body["ab_id"] == "aaabc"
        variant = body["ab_variant_id"]
        assert body["configs"] == ([background] if variant == "1" else [])  # no global configs in a test
        seen[f"user-{i}"] = variant
        again = ga.remote_configs(user_id=f"user-{i}", configs_hash=body["configs_hash"])
        assert again.status_code == 200
    assert set(seen.values()) == {"1", "ctrl"}


def test_remote_configs_requests_are_checked(ga: Collector) -> None:
    assert ga.remote_configs(game_key="ffffffffffffffffffffffffffffffff").status_code == 401
    assert ga.remote_configs(secret=OTHER_SECRET).status_code == 401
    body = json.dumps({"user_id": "u"}).encode()
    no_key = ga.http.post("/remote_configs/v1/init", content=body, headers={"Authorization": sign(body)})
    assert no_key.status_code == 401
    for interval in ("-1", "abc", "\u00b2"):
        bad = ga.post("/remote_configs/v1/init", body, params={"game_key": GAME_KEY, "interval_seconds": interval})
        assert bad.status_code == 400, interval
    missing = ga.post("/remote_configs/v1/init", body, params={"game_key": GAME_KEY})
    assert missing.status_code == 400
    assert {"error_type": "required", "path": "/platform"} in missing.json()["errors"]
    assert ga.remote_configs(game_key=OTHER_GAME, secret=OTHER_SECRET).status_code == 201


# ---- faults --------------------------------------------------------------------------------------------

def test_status_faults_answer_the_next_requests_of_their_route(ga: Collector) -> None:
    ga.sandbox.faults.fail("events", 503, count=2)
    assert ga.events([event("design")]).status_code == 503
    assert ga.init().status_code == 200  # another route is untouched
    assert ga.events([event("design")]).status_code == 503
    assert ga.events([event("user")]).status_code == 200
    assert [e["category"] for e in ga.sandbox.accepted_events()] == ["user"]
    assert ga.sandbox.counts()["faults_fired"] == {"events": 2}
    for status in (500, 502, 429):
        created = ga.admin("POST", "faults", {"kind": "status", "route": "*", "status": status, "body": "busy"})
        assert created.status_code == 201
        answer = ga.init()
        assert (answer.status_code, answer.text) == (status, "busy")
    assert ga.admin("GET", "faults").json() == {"faults": []}


def test_a_fault_without_count_lasts_until_cleared(ga: Collector) -> None:
    ga.admin("POST", "faults", {"kind": "status", "route": "remote_configs", "status": 500, "count": None})
    assert [ga.remote_configs().status_code for _ in range(3)] == [500, 500, 500]
    [pending] = ga.admin("GET", "faults").json()["faults"]
    assert pending["remaining"] is None and pending["route"] == "remote_configs"
    assert ga.admin("DELETE", "faults").status_code == 200
    assert ga.remote_configs().status_code == 201


def test_a_slow_answer_comes_late_and_the_request_is_still_served(ga: Collector) -> None:
    ga.sandbox.faults.slow("init", delay_s=0.6)
    started = time.monotonic()
    answer = ga.init()
    assert answer.status_code == 200 and time.monotonic() - started >= 0.6

    # A client that gives up before the answer: the collector still stored the events, as a real one would.
    ga.sandbox.faults.slow("events", delay_s=1.0)
    sent = event("design")
    with pytest.raises(httpx.ReadTimeout):
        ga.events([sent], timeout=0.2)
    deadline = time.monotonic() + 5
    while not ga.sandbox.accepted() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ga.sandbox.accepted_events() == [sent]


def test_a_dropped_connection_gets_no_answer_and_stores_nothing(ga: Collector) -> None:
    ga.sandbox.faults.drop("events")
    with pytest.raises(httpx.RemoteProtocolError):
        ga.events([event("design")])
    assert ga.sandbox.accepted() == []
    assert ga.events([event("design")]).status_code == 200


def test_bad_faults_are_refused_with_a_reason(ga: Collector) -> None:
    for bad in ({"kind": "status", "status": 200}, {"kind": "explode"}, {"route": "events"},
                {"kind": "delay", "delay_s": 0}, {"kind": "drop", "count": 0}, {"kind": "drop", "colour": 1}):
        answer = ga.admin("POST", "faults", bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"]
    with pytest.raises(ValueError, match="status"):
        Fault("status", status=302)
    assert ga.admin("GET", "faults").json() == {"faults": []}


# ---- admin routes and the Python API -------------------------------------------------------------------

def test_admin_lists_filter_and_page(ga: Collector) -> None:
    ga.events([event("design", event_id=f"d:{i}") for i in range(5)] + [event("user")])
    ga.events([event("error")], game_key=OTHER_GAME, secret=OTHER_SECRET)
    ga.events([event("business", currency="x")])

    listed = ga.admin("GET", "events").json()
    assert [r["index"] for r in listed["events"]] == list(range(7)) and listed["next"] == 7
    design = ga.admin("GET", "events", category="design", limit=3).json()
    assert [r["event"]["event_id"] for r in design["events"]] == ["d:0", "d:1", "d:2"]
    rest = ga.admin("GET", "events", category="design", since=design["next"]).json()
    assert [r["event"]["event_id"] for r in rest["events"]] == ["d:3", "d:4"]
    other = ga.admin("GET", "events", game_key=OTHER_GAME).json()["events"]
    assert [r["event"]["category"] for r in other] == ["error"]
    assert ga.admin("GET", "events", since=7).json() == {"events": [], "next": 7}

    [rejected] = ga.admin("GET", "rejected").json()["rejected"]
    assert rejected["errors"][0]["error_type"] == "regex_no_match" and "A-Z" in rejected["errors"][0]["detail"]
    counts = ga.admin("GET", "counts").json()
    assert (counts["accepted"], counts["rejected"]) == (7, 1)

    assert ga.admin("GET", "events", since=-1).status_code == 400
    assert ga.admin("GET", "nothing-here").status_code == 404
    assert ga.admin("POST", "reset").status_code == 200
    assert ga.admin("GET", "events").json() == {"events": [], "next": 0}
    assert ga.admin("GET", "counts").json()["accepted"] == 0


def test_admin_registers_games_without_showing_secrets(ga: Collector) -> None:
    new_game, new_secret = "abcdef" * 5 + "ab", "s3cret"
    assert ga.admin("PUT", "games", {"game_key": new_game, "secret_key": new_secret}).status_code == 201
    games = ga.admin("GET", "games").json()["games"]
    assert {g["game_key"] for g in games} >= {GAME_KEY, OTHER_GAME, new_game}
    assert new_secret not in json.dumps(games) and SECRET not in json.dumps(games)
    assert ga.init(game_key=new_game, secret=new_secret).status_code == 200
    assert ga.admin("PUT", "games", {"game_key": "NOT-HEX", "secret_key": "x"}).status_code == 400
    assert ga.admin("PUT", "configs", {"configs": [{"key": "k", "value": 5}]}).status_code == 400
    assert ga.admin("PUT", "enabled", {"enabled": "no"}).status_code == 400


def test_python_api_refuses_bad_arguments_clearly() -> None:
    sandbox = GameAnalyticsSandbox()
    with pytest.raises(ValueError, match="hexadecimal"):
        sandbox.register_game("Game-Key", "secret")
    with pytest.raises(ValueError, match="enabled"):
        sandbox.set_enabled("no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value must be a string"):
        sandbox.set_remote_configs([{"key": "lives", "value": 3}])
    with pytest.raises(ValueError, match="end_ts"):
        sandbox.set_remote_configs([{"key": "lives", "value": "3", "start_ts": 10, "end_ts": 5}])
    with pytest.raises(ValueError, match="ab_id"):
        sandbox.set_remote_configs(variants={"a": []})
    with pytest.raises(ValueError, match="not registered"):
        sandbox.set_enabled(False, game_key="ab")
    with pytest.raises(ValueError, match="port"):
        SandboxServer(sandbox, port=70000)
    with pytest.raises(TypeError):
        SandboxServer(object())  # type: ignore[arg-type]


def test_the_live_log_has_one_line_per_event_with_the_rule_broken(ga: Collector,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bridge.sandbox.gameanalytics"):
        ga.events([event("design", event_id="Guns:Pistol:Fire"), event("ads", ad_type="popup")])
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.sandbox.gameanalytics"]
    assert any(line.startswith("accepted design") and "Guns:Pistol:Fire" in line for line in lines)
    assert any(line.startswith("rejected ads") and "/ad_type not_in_range" in line for line in lines)


def test_stop_closes_kept_alive_connections() -> None:
    sandbox = GameAnalyticsSandbox()
    server = SandboxServer(sandbox).start()
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.get("/_sandbox/counts").status_code == 200
        server.stop()
        with pytest.raises(httpx.TransportError):
            http.get("/_sandbox/counts")
    server.stop()  # twice is harmless


def test_concurrent_posts_are_all_counted(ga: Collector) -> None:
    def post_batches() -> None:
        with httpx.Client(base_url=ga.url, timeout=10) as http:
            for _ in range(5):
                body = json.dumps([event("design") for _ in range(20)]).encode()
                assert http.post(f"/v2/{GAME_KEY}/events", content=body,
                                 headers={"Authorization": sign(body)}).status_code == 200

    threads = [threading.Thread(target=post_batches) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert ga.sandbox.counts()["accepted"] == 400
    assert [r["index"] for r in ga.sandbox.accepted()] == list(range(400))


# ---- the command-line entry ----------------------------------------------------------------------------

def test_the_command_line_sandbox_serves_logs_and_stops_on_sigterm(tmp_path: Path) -> None:
    configs = tmp_path / "configs.json"
    configs.write_text(json.dumps({"configs": [{"key": "difficulty", "value": "hard"}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.sandbox.gameanalytics", "--port", "0", "--configs", str(configs),
         "--game", f"{OTHER_GAME}:{OTHER_SECRET}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        stdout = proc.stdout
        assert stdout is not None
        first_line: list[str] = []
        reader = threading.Thread(target=lambda: first_line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(20)
        assert first_line and "listening on http://127.0.0.1:" in first_line[0], first_line
        url = first_line[0].split("listening on ")[1].strip()
        with httpx.Client(base_url=url, timeout=10) as http:
            body = json.dumps([event("design", event_id="Menu:Open"), event("business", currency="usd")]).encode()
            answer = http.post(f"/v2/{OTHER_GAME}/events", content=body,
                               headers={"Authorization": sign(body, OTHER_SECRET)})
            assert answer.status_code == 400
            rc_body = json.dumps({"user_id": "u", "platform": "linux", "os_version": "linux 6.1",
                                  "sdk_version": "rest api v2"}).encode()
            answer = http.post("/remote_configs/v1/init", params={"game_key": GAME_KEY}, content=rc_body,
                               headers={"Authorization": sign(rc_body)})
            assert answer.status_code == 201
            assert answer.json()["configs"] == [{"key": "difficulty", "value": "hard", "start_ts": None,
                                                 "end_ts": None}]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert "accepted design" in stderr and "Menu:Open" in stderr
        assert "rejected business" in stderr and "/currency regex_no_match" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
