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
             "session_id": str(uuid.uuid4()), "session_num": 1, "event_uuid": str(uuid.uuid4())}
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
    assert entry["event"]["event_uuid"] == bad["event_uuid"]
    assert ga.sandbox.rejected()[0]["event"] == bad  # the sandbox keeps what was sent


# --- annotations --------------------------------------------------------------------------------------------

ANNOTATION_CASES: list[tuple[dict[str, Any], tuple[str, str] | None]] = [
    ({"event_uuid": DELETE}, None),  # the SDKs always send one; *assumption*: the collector does not require it
    ({"event_uuid": "0f6b1c9e-2d3a-4b5c-8d7e-1f2a3b4c5d6e"}, None),
    ({"event_uuid": "0F6B1C9E-2D3A-4B5C-8D7E-1F2A3B4C5D6E"}, ("regex_no_match", "/event_uuid")),
    ({"event_uuid": "not-a-uuid"}, ("regex_no_match", "/event_uuid")),
    ({"event_uuid": 5}, ("invalid_type", "/event_uuid")),
    ({"engine_version": "unity 2022.3.10"}, None),
    ({"engine_version": "godot 4"}, None),
    ({"engine_version": "unreal 5.3.2"}, None),
    ({"engine_version": "custom 1.0"}, ("regex_no_match", "/engine_version")),
    ({"engine_version": "2022.3.10f1"}, ("regex_no_match", "/engine_version")),
    ({"engine_version": "Unity 2022.3"}, ("regex_no_match", "/engine_version")),
    ({"engine_version": "unity " + "1" * 60}, ("invalid_length", "/engine_version")),
    ({"configurations_v3": [{"key": "gravity", "id": "c1", "vsn": 3}, {"key": "speed"}]}, None),
    ({"configurations_v3": []}, None),
    ({"configurations_v3": {"key": "gravity"}}, ("invalid_type", "/configurations_v3")),
    ({"configurations_v3": [{"id": "c1"}]}, ("required", "/configurations_v3/0/key")),
    ({"configurations_v3": [{"key": "a"}, {"key": "b", "vsn": "3"}]}, ("invalid_type", "/configurations_v3/1/vsn")),
    ({"configurations_v3": [{"key": "a", "value": "1"}]}, ("unknown_field", "/configurations_v3/0/value")),
    ({"configurations_v3": [{"key": f"k{i}"} for i in range(101)]}, ("too_many_entries", "/configurations_v3")),
    ({"user_id": "u" * 64}, None),
    ({"user_id": "u" * 65}, ("invalid_length", "/user_id")),  # configureUserId: "above 64 length" is refused
    ({"device": "d" * 64}, None),  # configureDeviceModel: validateString, at most 64
]


@pytest.mark.parametrize("changes,error", ANNOTATION_CASES, ids=[str(i) for i in range(len(ANNOTATION_CASES))])
def test_the_parity_annotations(ga: Collector, changes: dict[str, Any], error: tuple[str, str] | None) -> None:
    sent = event("design", **changes)
    answer = ga.events([sent])
    if error is None:
        assert answer.status_code == 200, answer.text
    else:
        assert answer.status_code == 400
        assert answer.json() == [{"event": sent, "errors": [{"error_type": error[0], "path": error[1]}]}]


# --- remote configs: id and vsn for versioned clients ---------------------------------------------------------

def test_remote_configs_carry_id_and_vsn_only_to_clients_that_ask_for_versioned_configs(ga: Collector) -> None:
    ga.sandbox.set_remote_configs([{"key": "gravity", "value": "80", "id": "cfg-1", "vsn": 4},
                                   {"key": "plain", "value": "1"}])
    versioned = ga.remote_configs().json()["configs"]
    assert versioned == [{"key": "gravity", "value": "80", "start_ts": None, "end_ts": None, "id": "cfg-1", "vsn": 4},
                         {"key": "plain", "value": "1", "start_ts": None, "end_ts": None}]
    legacy = ga.remote_configs(vsn=None).json()["configs"]
    assert legacy == [{"key": "gravity", "value": "80", "start_ts": None, "end_ts": None},
                      {"key": "plain", "value": "1", "start_ts": None, "end_ts": None}]
    for bad in ({"key": "k", "value": "v", "id": ""}, {"key": "k", "value": "v", "vsn": -1},
                {"key": "k", "value": "v", "vsn": "1"}):
        assert ga.admin("PUT", "configs", {"configs": [bad]}).status_code == 400


# --- a game's own lists ----------------------------------------------------------------------------------------

def resource(event_id: str, amount: float = 5) -> dict[str, Any]:
    return annotations(category="resource", event_id=event_id, amount=amount)


def test_a_games_lists_refuse_values_outside_them_and_an_empty_list_checks_nothing(ga: Collector) -> None:
    assert ga.events([event("design", custom_01="anything"), resource("Source:gems:shop:pack")]).status_code == 200
    lists = ga.admin("PUT", "lists", {"custom_dimensions_01": ["paid", "free"], "custom_dimensions_03": ["eu"],
                                      "resource_currencies": ["gold", "Gems"], "resource_item_types": ["shop"]})
    assert lists.status_code == 200 and lists.json()["lists"]["resource_currencies"] == ["gold", "Gems"]
    good = [event("design", custom_01="paid", custom_02="not checked", custom_03="eu"),
            resource("Source:gold:shop:sword"), resource("Sink:Gems:shop:x", -1)]
    assert ga.events(good).status_code == 200
    bad = [event("design", custom_01="vip"), event("design", custom_03="us"), resource("Source:coins:shop:x"),
           resource("Source:gold:quest:x"), resource("Source:Gold:shop:x")]
    answer = ga.events(bad)
    assert answer.status_code == 400
    assert [(e["errors"][0]["error_type"], e["errors"][0]["path"]) for e in answer.json()] == [
        ("not_in_range", "/custom_01"), ("not_in_range", "/custom_03"), ("not_in_range", "/event_id"),
        ("not_in_range", "/event_id"), ("not_in_range", "/event_id")]
    assert len(ga.sandbox.accepted()) == 2 + len(good)


@pytest.mark.parametrize("lists", [{"custom_dimensions_01": ["x"] * 21}, {"custom_dimensions_02": ["d" * 33]},
                                   {"resource_currencies": ["gold1"]}, {"resource_item_types": ["a:b"]},
                                   {"resource_item_types": ["i" * 33]}, {"custom_dimensions_04": ["a"]},
                                   {"resource_currencies": "gold"}, {"custom_dimensions_01": [""]}])
def test_lists_are_checked_as_the_sdks_check_them(ga: Collector, lists: dict[str, Any]) -> None:
    assert ga.admin("PUT", "lists", lists).status_code == 400
    with pytest.raises(ValueError):
        ga.sandbox.set_lists(**lists)


# --- progression attempts ------------------------------------------------------------------------------------

def test_attempt_num_is_required_on_complete_only(ga: Collector) -> None:
    def progression(event_id: str, **fields: Any) -> dict[str, Any]:
        return annotations(category="progression", event_id=event_id, **fields)

    good = [progression("Start:w1"), progression("Fail:w1"), progression("Fail:w1:l1", attempt_num=2),
            progression("Complete:w1", attempt_num=3)]
    assert ga.events(good).status_code == 200
    answer = ga.events([progression("Complete:w1:l1")])
    assert answer.status_code == 400
    assert answer.json()[0]["errors"] == [{"error_type": "required", "path": "/attempt_num"}]


# --- ads -----------------------------------------------------------------------------------------------------

def ad(**fields: Any) -> dict[str, Any]:
    return annotations(category="ads", **{"ad_action": "show", "ad_type": "rewarded_video", "ad_sdk_name": "admob",
                                          "ad_placement": "end_of_level", **fields})


@pytest.mark.parametrize("fields,error", [
    ({"ad_type": "app_open"}, None),
    ({"ad_action": "request"}, None),
    ({"ad_action": "loaded"}, None),
    ({"ad_action": "failed_show", "ad_fail_show_reason": "unable_to_precache"}, None),
    ({"ad_duration": 0}, None),
    ({"ad_fail_show_reason": "timeout"}, ("not_in_range", "/ad_fail_show_reason")),
    ({"ad_fail_show_reason": 3}, ("invalid_type", "/ad_fail_show_reason")),
    ({"ad_fb_error": "no_fill"}, ("unknown_field", "/ad_fb_error")),  # no SDK sends it
    ({"ad_type": "native"}, ("not_in_range", "/ad_type")),
])
def test_ad_events(ga: Collector, fields: dict[str, Any], error: tuple[str, str] | None) -> None:
    sent = ad(**fields)
    answer = ga.events([sent])
    if error is None:
        assert answer.status_code == 200, answer.text
    else:
        assert answer.json() == [{"event": sent, "errors": [{"error_type": error[0], "path": error[1]}]}]


# --- limits: custom dimensions and custom fields ----------------------------------------------------------

@pytest.mark.parametrize("changes,error", [
    ({"custom_01": "c" * 32}, None),
    ({"custom_02": "c" * 33}, ("invalid_length", "/custom_02")),
    ({"custom_fields": {"a_1": 1, "B": 2.5, "flag": False, "text": "t" * 256}}, None),
    ({"custom_fields": {f"k{i}": i for i in range(50)}}, None),
    ({"custom_fields": {f"k{i}": i for i in range(51)}}, ("too_many_entries", "/custom_fields")),
    ({"custom_fields": {"bad key": 1}}, ("regex_no_match", "/custom_fields/bad key")),
    ({"custom_fields": {"k" * 65: 1}}, ("regex_no_match", "/custom_fields/" + "k" * 65)),
    ({"custom_fields": {"text": "t" * 257}}, ("invalid_length", "/custom_fields/text")),
    ({"custom_fields": {"text": ""}}, ("invalid_length", "/custom_fields/text")),
    ({"custom_fields": {"nested": {"a": 1}}}, ("invalid_type", "/custom_fields/nested")),
    ({"custom_fields": {"listed": [1]}}, ("invalid_type", "/custom_fields/listed")),
    ({"custom_fields": {"nothing": None}}, ("invalid_type", "/custom_fields/nothing")),
])
def test_custom_dimension_and_custom_field_limits(ga: Collector, changes: dict[str, Any],
                                                  error: tuple[str, str] | None) -> None:
    sent = event("design", **changes)
    answer = ga.events([sent])
    if error is None:
        assert answer.status_code == 200, answer.text
    else:
        assert answer.json() == [{"event": sent, "errors": [{"error_type": error[0], "path": error[1]}]}]


# --- the categories the SDKs send beyond the Collection API page ----------------------------------------

def sdk_error(**changes: Any) -> dict[str, Any]:
    """An sdk_error as GAState::getSdkErrorEventAnnotations builds it: the device, no user, session or time."""
    base = {"v": 2, "event_uuid": str(uuid.uuid4()), "category": "sdk_error", "sdk_version": "rest api v2",
            "os_version": "ios 8.1", "manufacturer": "apple", "device": "iPhone6,1", "platform": "ios",
            "connection_type": "wifi", "build": "1.0", "error_category": "event_validation",
            "error_area": "business", "error_action": "invalid_currency", "error_parameter": "currency",
            "reason": "usd"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DELETE}


@pytest.mark.parametrize("sent,error", [
    (annotations(category="impression", ad_network_name="max", ad_network_version="11.4.2",
                 impression_data={"revenue": 0.0012, "country": "US", "nested": {"a": [1]}}), None),
    (annotations(category="impression", ad_network_name="max", ad_network_version="1",
                 impression_data="revenue"), ("invalid_type", "/impression_data")),
    (annotations(category="impression", ad_network_version="1", impression_data={}),
     ("required", "/ad_network_name")),
    (annotations(category="impression", ad_network_name="max", impression_data={}),
     ("required", "/ad_network_version")),
    (annotations(category="impression", ad_network_name="", ad_network_version="1", impression_data={}),
     ("invalid_length", "/ad_network_name")),
    (annotations(category="impression", ad_network_name="max", ad_network_version="1"),
     ("required", "/impression_data")),
    (sdk_error(), None),
    (sdk_error(error_parameter=DELETE, reason=DELETE, connection_type=DELETE), None),
    ({**sdk_error(), "user_id": "u1", "session_num": 3}, None),
    (sdk_error(error_category="events"), ("not_in_range", "/error_category")),
    (sdk_error(error_area="ads"), ("not_in_range", "/error_area")),
    (sdk_error(error_action="invalid_ad_type"), ("not_in_range", "/error_action")),
    (sdk_error(error_parameter="ad_type"), ("not_in_range", "/error_parameter")),
    (sdk_error(reason="r" * 257), ("invalid_length", "/reason")),
    (sdk_error(error_action=DELETE), ("required", "/error_action")),
    (sdk_error(platform=DELETE), ("required", "/platform")),
    (annotations(category="error", severity="error", message="m", function_name="f" * 256, line_number=0), None),
    (annotations(category="error", severity="error", message="m", function_name="f" * 257),
     ("invalid_length", "/function_name")),
    (annotations(category="error", severity="error", message="m", line_number=-1), ("not_in_range", "/line_number")),
    (annotations(category="business", event_id="a:b", amount=-1, currency="USD", transaction_num=1),
     ("not_in_range", "/amount")),
])
def test_impression_sdk_error_and_error_fields(ga: Collector, sent: dict[str, Any],
                                                error: tuple[str, str] | None) -> None:
    answer = ga.events([sent])
    if error is None:
        assert answer.status_code == 200, answer.text
    else:
        assert answer.json() == [{"event": sent, "errors": [{"error_type": error[0], "path": error[1]}]}]
