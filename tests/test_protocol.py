"""protocol.py on its own: the document's examples, and the checks' edges."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from bridge import protocol
from bridge.protocol import Code, ProtocolError

REPO = Path(__file__).resolve().parent.parent


def test_protocol_md_examples_are_what_the_encoder_produces() -> None:
    text = (REPO / "protocol.md").read_text()
    assert protocol.with_examples(text) == text, "protocol.md section 9 is stale: re-render it with with_examples()"
    for _, msg in protocol.EXAMPLES:
        assert protocol.hexdump(protocol.encode(msg)).splitlines()[0] in text


def test_every_limit_in_the_welcome_is_in_protocol_md() -> None:
    text = (REPO / "protocol.md").read_text()
    for name, value in protocol.LIMITS.items():
        assert f"`{name}` | {value}" in text or f"`{name}` | {value} " in text, name


def test_every_error_code_is_documented() -> None:
    text = (REPO / "protocol.md").read_text()
    codes = [v for k, v in vars(Code).items() if not k.startswith("_")]
    assert len(codes) == 18
    for code in codes:
        assert f"| `{code}` |" in text, code


@pytest.mark.parametrize("levels,ok", [(4, True), (5, False)])
def test_depth_limit_counts_fields_as_the_first_level(levels: int, ok: bool) -> None:
    value: object = 1
    for _ in range(levels - 1):  # maps inside `fields`, which is the first level
        value = {"k": value}
    event = {"id": "e", "category": "custom", "ts": 0, "fields": {"name": "n", "deep": value}}
    if ok:
        protocol.read_event(event, None)
    else:
        with pytest.raises(ProtocolError) as err:
            protocol.read_event(event, None)
        assert err.value.code == Code.INVALID_VALUE


def test_decode_refuses_trailing_bytes_and_non_maps() -> None:
    with pytest.raises(ProtocolError) as err:
        protocol.decode(msgpack.packb({"a": 1}) + msgpack.packb(2))
    assert err.value.code == Code.MALFORMED
    with pytest.raises(ProtocolError) as err:
        protocol.decode(msgpack.packb("text"))
    assert err.value.code == Code.NOT_A_MAP


@pytest.mark.parametrize("frame", [
    b"\x82\xa4type\xa4ping\x91\x01\x02",  # {"type": "ping", [1]: 2}
    b"\x82\xa4type\xa4ping\x81\x01\x02\x03",  # {"type": "ping", {1: 2}: 3}
    b"\x82\xa4type\xa5event\xa5event\x81\xa6fields\x81\x90\x01",  # an array key deep inside
    b"\x82\xa4type\xa4ping\x01\x02",  # an int key
    b"\x82\xa4type\xa4ping\xd6\xff\x00\x00\x00\x00\x01",  # a timestamp key
    b"\x82\xa4type\xa5event\xa5event\x81\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # a uint64 key in the event
])
def test_decode_refuses_map_keys_that_are_not_strings_as_malformed(frame: bytes) -> None:
    with pytest.raises(ProtocolError) as err:
        protocol.decode(frame)
    assert err.value.code == Code.MALFORMED


EDGE_EVENTS = [
    ({"ts": 2**63}, Code.INVALID_VALUE, "event.ts"),
    ({"ts": 2**64 - 1}, Code.INVALID_VALUE, "event.ts"),
    ({"fields": {"event_id": "a:b", "value": 2**63}}, Code.INVALID_VALUE, "event.fields.value"),
    ({"fields": {"event_id": "a:b", "deep": {"n": 2**64 - 1}}}, Code.INVALID_VALUE, "event.fields.deep.n"),
    ({"fields": {"event_id": "a:b", "list": [1, 2**63]}}, Code.INVALID_VALUE, "event.fields.list[1]"),
    ({"fields": {"event_id": "a:b", "x": msgpack.ExtType(5, b"\x01")}}, Code.WRONG_TYPE, "event.fields.x"),
    ({"fields": {"event_id": "a:b", "x": msgpack.Timestamp(1)}}, Code.WRONG_TYPE, "event.fields.x"),
    ({"fields": {"event_id": "a:b", "x": [msgpack.Timestamp(1)]}}, Code.WRONG_TYPE, "event.fields.x[0]"),
    ({"ts": msgpack.Timestamp(1)}, Code.WRONG_TYPE, "event.ts"),
]


@pytest.mark.parametrize("change,code,where", EDGE_EVENTS, ids=[w for _, _, w in EDGE_EVENTS])
def test_integers_beyond_int64_and_extension_types_are_refused(change: dict, code: str, where: str) -> None:
    """Through the wire, as a client would send them: what unpackb makes of them is what the checks see."""
    event = {"id": "e-1", "category": "design", "ts": 1, "fields": {"event_id": "a:b"}, **change}
    decoded = protocol.decode(msgpack.packb({"type": "event", "rid": 1, "event": event}, datetime=False))
    with pytest.raises(ProtocolError) as err:
        protocol.read_event(decoded["event"], None)
    assert (err.value.code, err.value.field) == (code, where)


def test_the_int64_edges_themselves_are_accepted() -> None:
    fields = {"event_id": "a:b", "value": 2**63 - 1, "low": -(2**63), "nested": {"n": 2**63 - 1}}
    event = protocol.read_event({"id": "e", "category": "design", "ts": 2**63 - 1, "fields": fields}, None)
    assert event.ts == 2**63 - 1 and event.fields == fields


def test_session_and_hello_integers_have_the_same_range() -> None:
    with pytest.raises(ProtocolError) as err:
        protocol.integer({"ts": 2**63}, "ts", "")
    assert (err.value.code, err.value.field) == (Code.INVALID_VALUE, "ts")
    with pytest.raises(ProtocolError) as err:
        protocol.read_hello({"protocol": 2**64 - 1, "engine": "e", "binding": "b", "binding_version": "1",
                             "game_build": "1", "device_id": "d"})
    assert err.value.code == Code.INVALID_VALUE


def test_session_start_reads_the_players_own_device() -> None:
    request = protocol.read_session({"type": "session_start", "user_id": "p1", "user_ip": "203.0.113.9",
                                     "platform": "android", "os_version": "android 14", "device": "Pixel 8",
                                     "manufacturer": "google", "engine_version": "unity 2022.3"}, start=True)
    assert (request.user_id, request.user_ip, request.ts) == ("p1", "203.0.113.9", None)
    assert request.device == {"platform": "android", "os_version": "android 14", "device": "Pixel 8",
                              "manufacturer": "google", "engine_version": "unity 2022.3"}
    assert protocol.read_session({"type": "session_start"}, start=True).device == {}
    with pytest.raises(ProtocolError) as refused:
        protocol.read_session({"type": "session_start", "platform": "p" * 33}, start=True)
    assert (refused.value.code, refused.value.field) == (Code.INVALID_VALUE, "platform")
    assert protocol.read_session({"type": "session_end", "platform": "ios"}, start=False).device == {}


# --- the rid of a frame refused whole (protocol.md section 3) ------------------------------------------

BIG = "x" * (protocol.MAX_MESSAGE_BYTES + 1)


@pytest.mark.parametrize("frame,rid", [
    (msgpack.packb({"type": "events", "rid": 7, "events": [BIG]}), 7),  # too large, decodes
    (msgpack.packb({"type": "events", "rid": 8, "events": [BIG]})[:-100], 8),  # too large, cut short after rid
    (msgpack.packb({"type": "ping", "rid": 9}) + b"\x01", 9),  # a second value after the map
    (b"\x83\xa4type\xa4ping\xa3rid\x0a\x91\x01\x02", 10),  # an array key after the rid
    (b"\x82\xa3rid\x0b\xa3rid\x0c", 12),  # the later entry wins, as in a map that decodes
    (b"\x82\xa3rid\x0b\xa3rid", 11),  # ... unless it is cut short
    (b"\x82\xa4type\xa4ping\xa3rid", None),  # cut short before the rid's value
    (b"\x83\xa4type\xa4ping\x91\x01\x02\xa3rid\x01", 1),  # an array key ([1]: 2) is msgpack still
    (b"\x82\xa4type\xa4ping\xc1\xa3rid\x01", None),  # 0xc1 is no msgpack at all, before the rid
    (msgpack.packb([1, 2]), None),  # not a map
    (b"\xc1", None),
    (b"", None),
    (msgpack.packb({"rid": -1}) + b"\x01", None),  # not a usable rid
    (msgpack.packb({"rid": 2**32}) + b"\x01", None),
    (msgpack.packb({"rid": "7"}) + b"\x01", None),
    (msgpack.packb({"rid": True}) + b"\x01", None),
])
def test_the_rid_of_a_frame_refused_whole_is_read_when_it_can_be(frame: bytes, rid: int | None) -> None:
    assert protocol.readable_rid(frame) == rid


# --- nil is absent (protocol.md section 2) --------------------------------------------------------------

HELLO = {"type": "hello", "rid": 1, "protocol": 1, "engine": "e", "binding": "b", "binding_version": "1",
         "game_build": "1", "device_id": "d"}
HELLO_OPTIONAL = ("protocol_min", "engine_version", "user_id", "platform", "os_version", "device", "manufacturer",
                  "role")


def test_nil_for_an_optional_hello_field_is_the_field_left_out() -> None:
    assert protocol.read_hello({**HELLO, **dict.fromkeys(HELLO_OPTIONAL)}) == protocol.read_hello(HELLO)


def test_nil_for_an_optional_session_field_is_the_field_left_out() -> None:
    nils = dict.fromkeys(("user_id", "ts", "user_ip", *protocol.PLAYER_DEVICE_MAX_CHARS))
    for start in (True, False):
        assert protocol.read_session({"type": "session_start", **nils}, start) == protocol.read_session({}, start)


PURCHASE = {"id": "p-1", "store": "apple", "receipt": "cmVjZWlwdA=="}


def test_nil_for_an_optional_purchase_field_is_the_field_left_out() -> None:
    optional = dict.fromkeys(("signature", "price_usd", "status", "comment", "metadata", "user_id"))
    assert protocol.read_purchase({**PURCHASE, **optional}) == protocol.read_purchase(dict(PURCHASE))


@pytest.mark.parametrize("category,named", [
    ("design", {"value": None}),
    ("business", {"cart_type": None, "transaction_num": None, "receipt_info": None}),
    ("progression", {"attempt_num": None, "score": None}),
    ("ads", {"ad_duration": None, "ad_fb_error": None}),
    ("custom", {"custom_01": None, "custom_02": None, "custom_03": None, "custom_fields": None}),
])
def test_nil_for_a_named_optional_field_in_fields_is_the_field_left_out(category: str, named: dict) -> None:
    """Stored without it, so a provider sees no field rather than a nil it refuses; a field this page does not
    name keeps its nil: its value is the game's."""
    fields = {**_fields_of(category), **named, "free": None}
    event = protocol.read_event({"id": "e", "category": category, "ts": 1, "fields": fields, "user_id": None},
                                None)
    assert event.fields == {**_fields_of(category), "free": None} and event.user_id is None


def _fields_of(category: str) -> dict:
    return {"design": {"event_id": "a:b"}, "business": {"event_id": "a:b", "amount": 1, "currency": "USD"},
            "progression": {"event_id": "Start:w"}, "ads": {"ad_action": "show", "ad_type": "banner",
                                                            "ad_sdk_name": "s", "ad_placement": "p"},
            "custom": {"name": "n"}}[category]


@pytest.mark.parametrize("change,where", [
    ({"id": None}, "event.id"),
    ({"category": None}, "event.category"),
    ({"ts": None}, "event.ts"),
    ({"fields": None}, "event.fields"),
    ({"fields": {"event_id": None}}, "event.fields.event_id"),
    ({"category": "resource", "fields": {"event_id": "Source:a:b:c", "amount": None}}, "event.fields.amount"),
    ({"category": "custom", "fields": {"name": None}}, "event.fields.name"),
])
def test_nil_for_a_required_event_field_is_missing(change: dict, where: str) -> None:
    event = {"id": "e", "category": "design", "ts": 1, "fields": {"event_id": "a:b"}, **change}
    with pytest.raises(ProtocolError) as err:
        protocol.read_event(event, None)
    assert (err.value.code, err.value.field) == (Code.MISSING_FIELD, where)


@pytest.mark.parametrize("name", ["type", "rid"])
def test_nil_for_type_or_rid_is_missing(name: str) -> None:
    with pytest.raises(ProtocolError) as err:
        protocol.check_request({"type": "ping", "rid": 1, name: None})
    assert (err.value.code, err.value.field) == (Code.MISSING_FIELD, name)


@pytest.mark.parametrize("sent,kept", [("Windows", "windows"), ("MAC_OSX", "mac_osx"), ("linux", "linux"),
                                       ("", "")])
def test_the_platform_is_kept_lower_case(sent: str, kept: str) -> None:
    """protocol.md sections 4.1 and 4.4: providers want it lower case (GameAnalytics refuses every event
    otherwise), in a hello and in a dedicated server's session_start alike."""
    assert protocol.read_hello({**HELLO, "platform": sent}).platform == kept
    assert protocol.read_session({"type": "session_start", "platform": sent}, start=True).device["platform"] == kept


def test_an_empty_batch_is_refused_whole() -> None:
    """protocol.md section 4.3: `events` holds 1 to 1000 events; [] is invalid_value, not an empty ack."""
    with pytest.raises(ProtocolError) as err:
        protocol.read_events({"type": "events", "rid": 1, "events": []}, "events")
    assert (err.value.code, err.value.field) == (Code.INVALID_VALUE, "events")


@pytest.mark.parametrize("category,fields", [
    ("design", {"event_id": "a:b:c:d:e:f"}),  # six parts
    ("business", {"event_id": "gems", "amount": 1, "currency": "usd", "transaction_num": -1, "cart_type": "c" * 33,
                  "receipt_info": {"store": "steam"}}),
    ("progression", {"event_id": "Fail:world01", "attempt_num": -1}),
    ("resource", {"event_id": "Gift:gold:x:y", "amount": 0}),
    ("error", {"severity": "fatal", "message": "m"}),
    ("ads", {"ad_action": "watched", "ad_type": "popup", "ad_sdk_name": "AdMob!", "ad_placement": ""}),
    ("design", {"event_id": "a", "connection_type": "5g", "custom_fields": {f"k{i}": i for i in range(51)}}),
    ("custom", {"name": "n", "value": {"a": 1}}),  # staq's rule
])
def test_the_providers_rules_are_not_the_daemons(category: str, fields: dict) -> None:
    """protocol.md section 5.1: an event that breaks only a provider's rules is stored (and listed in
    `invalid`), never rejected by the daemon."""
    assert protocol.read_event({"id": "e", "category": category, "ts": 1, "fields": fields}, None).fields == fields
