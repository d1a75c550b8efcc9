"""Conformance vectors for the engine bindings: `engine_bindings/conformance/vectors.json`.

Every binding has its own msgpack writer and reader and its own request builders; this file gives them one
set of byte-exact cases to test against, made from this daemon's own encoder and checks (`bridge/protocol.py`),
so that a binding and the daemon cannot drift apart unnoticed. The format is described in
`engine_bindings/conformance/README.md`.

    python -m bridge.conformance          # write the file
    python -m bridge.conformance --check  # exit 1 if the file on disk is not what this generates
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import msgpack

from . import protocol
from .protocol import Code, ProtocolError
from .providers.gameanalytics import events as ga_events

REPO = Path(__file__).resolve().parent.parent
VECTORS_PATH = REPO / "engine_bindings" / "conformance" / "vectors.json"
PROTOCOL_SOURCE = Path(protocol.__file__)
FORMAT_VERSION = 1
# Integers beyond this are written {"$int": "..."}: GDScript's and JavaScript's JSON parsers read every number
# as a double, which holds integers exactly only up to 2^53.
SAFE_INT = 2**53 - 1
TS = 1795600000123  # a fixed clock, so the file is the same at every generation
DEVICE = "d-42"


class Float32(float):
    """A float the encoder writes as msgpack float 32 (0xca)."""


# --- the tagged JSON form of a value tree --------------------------------------------------------------

def to_json(value: Any) -> Any:
    """A Python value tree → its JSON form: maps as ordered pairs, every float and every bin tagged."""
    if isinstance(value, dict):
        return {"$map": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"$bin": base64.b64encode(value).decode()}
    if isinstance(value, float):
        tag = "$float32" if isinstance(value, Float32) else "$float64"
        return {tag: value if math.isfinite(value) else repr(value)}  # "nan", "inf", "-inf"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > SAFE_INT:
        return {"$int": str(value)}
    return value


def from_json(value: Any) -> Any:
    """The JSON form → the Python value tree (the inverse of `to_json`)."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, dict):
        (tag, inner), = value.items()
        if tag == "$map":
            return {from_json(k): from_json(v) for k, v in inner}
        if tag == "$bin":
            return base64.b64decode(inner)
        if tag == "$int":
            return int(inner)
        number = float(inner)
        return Float32(number) if tag == "$float32" else number
    return value


_packer = msgpack.Packer(use_bin_type=True)


def pack(value: Any) -> bytes:
    """The smallest msgpack form of a value tree, keeping its map order; Float32 leaves as float 32."""
    packed: bytes
    if isinstance(value, Float32):
        packed = b"\xca" + struct.pack(">f", value)
    elif isinstance(value, dict):
        packed = _packer.pack_map_header(len(value)) + b"".join(pack(k) + pack(v) for k, v in value.items())
    elif isinstance(value, list):
        packed = _packer.pack_array_header(len(value)) + b"".join(pack(v) for v in value)
    else:
        packed = _packer.pack(value)
    return packed


# --- (a) msgpack edge cases ----------------------------------------------------------------------------

def _seq(n: int) -> list[int]:
    return list(range(n))


def _keys(n: int) -> dict[str, int]:
    return {f"k{i:02d}": i for i in range(n)}


MSGPACK_CASES: list[tuple[str, Any]] = [
    ("nil", None), ("false", False), ("true", True),
    ("positive fixint 0", 0), ("positive fixint max 127", 127), ("uint8 min 128", 128), ("uint8 max 255", 255),
    ("uint16 min 256", 256), ("uint16 max 65535", 65535), ("uint32 min 65536", 65536),
    ("uint32 max 2^32-1", 2**32 - 1), ("uint64 min 2^32", 2**32), ("uint64 2^53 (beyond a double)", 2**53),
    ("uint64 2^63-1 (int64 max)", 2**63 - 1),
    ("negative fixint -1", -1), ("negative fixint min -32", -32), ("int8 -33", -33), ("int8 min -128", -128),
    ("int16 -129", -129), ("int16 min -32768", -32768), ("int32 -32769", -32769), ("int32 min -2^31", -2**31),
    ("int64 -2^31-1", -2**31 - 1), ("int64 min -2^63", -2**63),
    ("float64 0.0", 0.0), ("float64 -0.0", -0.0), ("float64 1.5", 1.5), ("float64 0.1", 0.1),
    ("float64 -1e300", -1e300), ("float64 smallest subnormal", 5e-324), ("float64 integral 3.0", 3.0),
    ("float32 1.5", Float32(1.5)), ("float32 -0.25", Float32(-0.25)),
    ("float32 max", Float32(struct.unpack(">f", b"\x7f\x7f\xff\xff")[0])),
    ("fixstr empty", ""), ("fixstr 1", "a"), ("fixstr max 31 bytes", "a" * 31), ("str8 min 32 bytes", "a" * 32),
    ("str8 max 255 bytes", "a" * 255), ("str16 min 256 bytes", "a" * 256),
    ("utf-8 2-byte char", "\u00e9"), ("utf-8 3-byte char", "\u20ac"), ("utf-8 4-byte char", "\U0001f600"),
    ("fixstr 31 bytes of 16 chars", "\u00e9" * 15 + "a"), ("str8 32 bytes of 16 chars", "\u00e9" * 16),
    ("str16 256 bytes of 128 chars", "\u00e9" * 128),
    ("bin8 empty", b""), ("bin8 1", b"\x00"), ("bin8 max 255", bytes(range(255))),
    ("bin16 min 256", bytes(i % 256 for i in range(256))),
    ("fixarray empty", []), ("fixarray max 15", _seq(15)), ("array16 min 16", _seq(16)),
    ("fixmap empty", {}), ("fixmap max 15", _keys(15)), ("map16 min 16", _keys(16)),
    ("map keys in given order, not sorted", {"b": 1, "a": 2}),
    ("nested", {"list": [1, -1, None, True, {"deep": [1.5, "x", b"\x01\x02"]}], "map": {"m": {}}, "arr": [[]]}),
]


def msgpack_vectors() -> list[dict[str, Any]]:
    return [{"name": name, "value": to_json(value), "hex": pack(value).hex()} for name, value in MSGPACK_CASES]


# --- (b) requests and the daemon's verdict -------------------------------------------------------------

# The replies by request type (protocol.md section 4).
REPLY_TYPES = {"hello": "welcome", "event": "ack", "events": "ack", "session_start": "session",
               "session_end": "session", "flush": "flushed", "ping": "pong", "stats": "stats",
               "configs": "configs", "purchase": "purchase", "consent": "consent", "forget": "forgotten"}


def _check_fields_of(kind: str, msg: dict[str, Any]) -> None:
    """The checks the ingress makes of each request type, beyond `type` and `rid`."""
    if kind == "hello":
        protocol.read_hello(msg)
    elif kind in ("session_start", "session_end"):  # as bridge/ingress.py `_session_args` reads them
        protocol.text(msg, "user_id", "", required=False, max_len=128)
        protocol.integer(msg, "ts", "", required=False)
        if kind == "session_start":
            protocol.text(msg, "user_ip", "", required=False, max_len=45)
    elif kind == "configs":  # as bridge/ingress.py `_on_configs` reads it
        protocol.text(msg, "prefix", "", required=False, min_len=0, max_len=200)
    elif kind == "purchase":
        protocol.read_purchase(msg)
    elif kind in ("consent", "forget"):  # a game's: about its own device
        protocol.read_player_request(msg, tool=False)


def verdict(frame: bytes) -> dict[str, Any]:
    """What the daemon answers to a frame on a connection that said hello as a game, with a session open
    and a purchase verifier configured: the reply's type, and for an error its code, field and detail; for an
    ack how many events pass the checks (the ack's `stored` + `duplicates`) and which it rejects."""
    try:
        msg = protocol.decode(frame)
        kind, _ = protocol.check_request(msg)
        if kind in ("event", "events"):
            good, bad = protocol.read_events(msg, kind)
            return {"type": "ack", "accepted": len(good),
                    "rejected": [{"index": r.index, "code": r.code} for r in bad]}
        _check_fields_of(kind, msg)
        return {"type": REPLY_TYPES[kind]}
    except ProtocolError as exc:
        out: dict[str, Any] = {"type": "error", "code": exc.code}
        if exc.field is not None:
            out["field"] = exc.field
        if exc.detail is not None:
            out["detail"] = to_json(exc.detail)
        return out


def _event(category: str, fields: dict[str, Any], event_id: str = "e-1", ts: int = TS,
           **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "category": category, "ts": ts, "fields": fields, **extra}


# `binding` and `binding_version` are each binding's own constants: a binding's test puts its own in their place.
HELLO = {"type": "hello", "protocol": 1, "engine": "unreal", "binding": "engine-bridge-conformance",
         "binding_version": "0.0.0", "game_build": "1.4.2", "device_id": DEVICE, "user_id": "u-7",
         "engine_version": "5.3", "platform": "linux", "os_version": "linux 6.1", "device": "pc",
         "manufacturer": "unknown"}
EVENTS_BY_CATEGORY: list[tuple[str, dict[str, Any]]] = [
    ("design", {"event_id": "ui:click:play", "value": 1.5}),
    ("business", {"event_id": "gems:pack_small", "amount": 99, "currency": "USD", "cart_type": "shop"}),
    ("progression", {"event_id": "Complete:world01:level01", "attempt_num": 2, "score": 1200}),
    ("resource", {"event_id": "Sink:gold:weapons:sword", "amount": 50}),
    ("error", {"severity": "warning", "message": "texture missing: hero.png"}),
    ("ads", {"ad_action": "show", "ad_type": "rewarded_video", "ad_sdk_name": "admob",
             "ad_placement": "end_of_level", "ad_duration": 30000}),
    ("custom", {"name": "tutorial_skipped", "step": 3, "custom_fields": {"mode": "hard"}}),
]


def request_cases() -> list[tuple[str, dict[str, Any]]]:
    """Every request a binding sends, one canonical example each (events: one per category), rids 1, 2, ..."""
    cases: list[tuple[str, dict[str, Any]]] = [("hello", HELLO)]
    for category, fields in EVENTS_BY_CATEGORY:
        cases.append((f"event {category}", {"type": "event", "event": _event(category, fields, f"e-{category}")}))
    cases += [
        ("event for another user (dedicated server)", {"type": "event", "event": _event(
            "design", {"event_id": "match:kill"}, "srv-1", TS + 1, user_id="player-9")}),
        ("events batch", {"type": "events", "events": [
            _event("design", {"event_id": "ui:open"}, "b-1", TS + 2),
            _event("design", {"event_id": "ui:close", "value": -2.25}, "b-2", TS + 3, user_id="player-9")]}),
        ("session_start", {"type": "session_start"}),
        ("session_end", {"type": "session_end"}),
        ("session_start for another user (dedicated server)",
         {"type": "session_start", "user_id": "player-9", "user_ip": "203.0.113.9", "ts": TS}),
        ("session_end for another user (dedicated server)", {"type": "session_end", "user_id": "player-9",
                                                             "ts": TS + 60000}),
        ("flush", {"type": "flush"}),
        ("ping", {"type": "ping"}),
        ("stats", {"type": "stats"}),
        ("configs", {"type": "configs", "prefix": "config/"}),
        ("purchase apple", {"type": "purchase", "id": "p-1", "store": "apple", "receipt": "TUlJVGV4YW1wbGU=",
                            "price_usd": 4.99, "status": "completed", "comment": "starter pack",
                            "metadata": {"sku": "gems_100"}}),
        ("purchase googleplay", {"type": "purchase", "id": "p-2", "store": "googleplay",
                                 "receipt": "eyJvcmRlcklkIjoiMSJ9", "signature": "c2lnbmF0dXJl",
                                 "price_usd": 0.99}),
        ("consent", {"type": "consent", "analytics": "granted", "ip_ads": "denied"}),
        ("consent for another user (dedicated server)", {"type": "consent", "user_id": "player-9",
                                                          "analytics": "denied"}),
        ("forget", {"type": "forget"}),
        ("forget another user (dedicated server)", {"type": "forget", "user_id": "player-9"}),
    ]
    return _numbered(cases, 1)


def _numbered(cases: list[tuple[str, dict[str, Any]]], first_rid: int) -> list[tuple[str, dict[str, Any]]]:
    """The cases with `rid` set right after `type`, counting from first_rid (each vector has its own rid)."""
    out = []
    for offset, (name, msg) in enumerate(cases):
        body = {k: v for k, v in msg.items() if k not in ("type", "rid")}
        out.append((name, {"type": msg["type"], "rid": first_rid + offset, **body}))
    return out


def request_vector(name: str, msg: dict[str, Any]) -> dict[str, Any]:
    frame = pack(msg)
    return {"name": name, "value": to_json(msg), "hex": frame.hex(), "verdict": verdict(frame)}


# --- (d) limits: the section 8 edges, each beside its neighbour that passes -----------------------------

def _nested(levels: int) -> dict[str, Any]:
    """`fields` with maps nested `levels` deep, `fields` itself being the first level."""
    value: Any = 1
    for _ in range(levels - 1):
        value = {"k": value}
    return {"name": "deep", "v": value}


def _custom(fields: dict[str, Any], **event: Any) -> dict[str, Any]:
    return {"type": "event", "event": {**_event("custom", {"name": "n", **fields}), **event}}


def limit_cases() -> list[tuple[str, dict[str, Any]]]:
    n = protocol.MAX_BATCH_EVENTS
    tiny = [{"id": str(i), "category": "custom", "ts": 0, "fields": {"name": "n"}} for i in range(n + 1)]
    cases: list[tuple[str, dict[str, Any]]] = [
        (f"batch of {n + 1} events", {"type": "events", "events": tiny}),
        ("empty batch", {"type": "events", "events": []}),
        ("event id of 64 chars", _custom({}, id="i" * protocol.MAX_EVENT_ID_CHARS)),
        ("event id of 65 chars", _custom({}, id="i" * (protocol.MAX_EVENT_ID_CHARS + 1))),
        ("event id with a space", _custom({}, id="e 1")),
        ("depth 4", _custom(_nested(protocol.MAX_DEPTH))),
        ("depth 5", _custom(_nested(protocol.MAX_DEPTH + 1))),
        ("64 fields", {"type": "event", "event": _event("custom", {"name": "n", **_keys(protocol.MAX_FIELDS - 1)})}),
        ("65 fields", {"type": "event", "event": _event("custom", {"name": "n", **_keys(protocol.MAX_FIELDS)})}),
        ("string of 8192 chars", _custom({"s": "s" * protocol.MAX_STRING_CHARS})),
        ("string of 8193 chars", _custom({"s": "s" * (protocol.MAX_STRING_CHARS + 1)})),
        ("string of 8192 two-byte chars (16384 bytes)", _custom({"s": "\u00e9" * protocol.MAX_STRING_CHARS})),
        ("ts 2^63-1", _custom({}, ts=protocol.INT_MAX)),
        ("ts 2^63", _custom({}, ts=protocol.INT_MAX + 1)),
        ("ts -1", _custom({}, ts=-1)),
        ("field int -2^63", _custom({"x": protocol.INT_MIN})),
        ("field int 2^63", _custom({"x": protocol.INT_MAX + 1})),
        ("field float NaN", _custom({"x": math.nan})),
        ("field float infinity", _custom({"x": math.inf})),
        ("user_id of 129 chars", _custom({}, user_id="u" * 129)),
        ("design without event_id", {"type": "event", "event": _event("design", {"value": 1})}),
        ("business amount as float", {"type": "event", "event": _event(
            "business", {"event_id": "gems:pack", "amount": 0.99, "currency": "USD"})}),
        ("unknown category", {"type": "event", "event": _event("session_start", {})}),
        ("batch with one bad event", {"type": "events", "events": [
            _event("design", {"event_id": "ok"}, "m-1"), _event("design", {}, "m-2")]}),
        ("rid 2^32-1", {"type": "ping", "rid": protocol.RID_MAX}),
        ("rid 2^32", {"type": "ping", "rid": protocol.RID_MAX + 1}),
        ("unknown type", {"type": "teleport"}),
        ("hello with no version the daemon speaks", {**HELLO, "protocol": 3, "protocol_min": 2}),
        ("hello without device_id", {k: v for k, v in HELLO.items() if k != "device_id"}),
        ("session_start user_ip of 46 chars", {"type": "session_start", "user_ip": "1" * 46}),
        ("purchase receipt not base64", {"type": "purchase", "id": "p-3", "store": "apple", "receipt": "not base64!"}),
        ("purchase googleplay without signature", {"type": "purchase", "id": "p-4", "store": "googleplay",
                                                   "receipt": "eyJ9"}),
    ]
    out = []
    for offset, (name, msg) in enumerate(cases):  # rids after the requests'; an explicit rid is the case itself
        rid = msg.get("rid", 1000 + offset)
        out.append((name, {"type": msg["type"], "rid": rid, **{k: v for k, v in msg.items()
                                                                if k not in ("type", "rid")}}))
    return out


# Frames no value tree can describe (not one msgpack value, a non-string key, an extension type) or that
# hold no map: hex and verdict only.
RAW_FRAMES: list[tuple[str, bytes]] = [
    ("truncated map", bytes.fromhex("82a474797065a470696e67a3726964")),
    ("two values in one frame", pack({"type": "ping", "rid": 1}) + pack(2)),
    ("an array, not a map", pack(["ping", 1])),
    ("map key is an array", bytes.fromhex("82a474797065a470696e67910102")),
    ("map key is an integer", bytes.fromhex("82a474797065a470696e670102")),
    ("extension type in fields", pack({"type": "event", "rid": 1100, "event": _event(
        "custom", {"name": "n", "x": msgpack.ExtType(5, b"\x01")})})),
]


def raw_vector(name: str, frame: bytes) -> dict[str, Any]:
    return {"name": name, "hex": frame.hex(), "verdict": verdict(frame)}


# --- (c) replies --------------------------------------------------------------------------------------

SESSION_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
OPEN_SESSION = {"session_id": SESSION_ID, "session_num": 3, "user_id": "u-7", "started_at": TS,
                "ended_at": None, "length": None}


def _ga_rule(category: str, fields: dict[str, Any]) -> str:
    """The rule GameAnalytics' provider check names for an event it will refuse."""
    rule = ga_events.check_category(ga_events.category_fields(category, fields))
    assert rule is not None, fields
    return rule


def _error(rid: int | None, code: str, message: str, field: str | None = None,
           detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return ProtocolError(code, message, field, detail).reply(rid)


ERRORS: list[tuple[str, str, str | None, dict[str, Any] | None]] = [
    (Code.MALFORMED, "frame is not valid msgpack (Unpack failed: incomplete input)", None, None),
    (Code.NOT_A_MAP, "frame is a msgpack array, not a map", None, None),
    (Code.MISSING_FIELD, "device_id: missing", "device_id", None),
    (Code.WRONG_TYPE, "event.ts: expected int, got str", "event.ts", None),
    (Code.INVALID_VALUE, "rid: 4294967296 is outside 0..4294967295", "rid", None),
    (Code.UNKNOWN_TYPE, "type: unknown message type 'teleport'", "type", None),
    (Code.UNSUPPORTED_VERSION, "client speaks protocol 2..3; this daemon speaks [1]", "protocol",
     {"supported": list(protocol.SUPPORTED_VERSIONS)}),
    (Code.HELLO_REQUIRED, "events: say hello first on this connection", None, None),
    (Code.WRONG_GAME, "game: this daemon serves game 'moon-golf', not 'space-duel': connect to your game's own "
     "daemon", "game", {"game": "moon-golf"}),
    (Code.TOO_LARGE, "message is 300000 bytes; the limit is 262144", None, None),
    (Code.BATCH_TOO_LARGE, "events: 1001 events; the limit is 1000", "events", None),
    (Code.NO_SESSION, "user 'u-7' has no open session", None, None),
    (Code.NOT_CONFIGURED, "purchase verification needs a provider that verifies purchases (staq), and none is "
     "configured in this daemon", None, None),
    (Code.UNAVAILABLE, "the store could not commit; nothing was stored, send again later", None, None),
    (Code.INTERNAL, "internal error; nothing was stored", None, None),
    (Code.RATE_LIMITED, "this client key is over 200 events/s; send again later", None, {"retry_after_ms": 1500}),
    (Code.QUOTA_EXCEEDED, "this client key has sent its 500000 events for today (UTC); keep them and send again "
     "then", None, {"retry_after_ms": 3_600_000}),
    (Code.FORBIDDEN, "device 'd-1' belongs to another client key", "device_id", None),
]


def reply_cases() -> list[tuple[str, dict[str, Any]]]:
    bad_event_id = "ui:a:b:c:d:e"  # six parts: the shape check passes, GameAnalytics allows five
    stats_provider = {"queued": 12, "in_flight": 0, "delivered": 4711, "dead_lettered": 1, "last_error": None,
                      "last_error_at": None, "next_retry_at": None}
    cases: list[tuple[str, dict[str, Any]]] = [
        ("welcome", {"type": "welcome", "rid": 1, "protocol": 1, "server_time": TS, "daemon_version": "0.1.0",
                     "session": None, "limits": dict(protocol.LIMITS),
                     "topics": [protocol.CONFIG_PREFIX, protocol.PURCHASE_PREFIX + DEVICE]}),
        ("welcome of a game's daemon that forwards nothing",
         {"type": "welcome", "rid": 1, "protocol": 1, "server_time": TS, "daemon_version": "0.1.0", "session": None,
          "limits": dict(protocol.LIMITS), "topics": [protocol.CONFIG_PREFIX, protocol.PURCHASE_PREFIX + DEVICE],
          "game": "space-duel", "forwarding": "no provider is configured: events are stored and acknowledged, "
          "and forwarded nowhere"}),
        ("welcome with an open session", {"type": "welcome", "rid": 1, "protocol": 1, "server_time": TS,
                                          "daemon_version": "0.1.0", "session": OPEN_SESSION,
                                          "limits": dict(protocol.LIMITS),
                                          "topics": [protocol.CONFIG_PREFIX, protocol.PURCHASE_PREFIX + DEVICE]}),
        ("ack", {"type": "ack", "rid": 2, "stored": 1, "duplicates": 0, "rejected": [], "invalid": []}),
        ("ack with rejected and invalid entries", {
            "type": "ack", "rid": 3, "stored": 2, "duplicates": 1,
            "rejected": [{"index": 1, "id": "b-2", "code": Code.MISSING_FIELD,
                          "message": "events[1].fields.event_id: missing (required for design)"},
                         {"index": 3, "id": None, "code": Code.WRONG_TYPE,
                          "message": "events[3]: expected map, got int"}],
            "invalid": [{"index": 2, "id": "b-3", "provider": "gameanalytics",
                         "message": _ga_rule("design", {"event_id": bad_event_id})}]}),
        ("session opened", {"type": "session", "rid": 4, **OPEN_SESSION}),
        ("session ended", {"type": "session", "rid": 5, **OPEN_SESSION, "ended_at": TS + 90000, "length": 90}),
        ("flushed", {"type": "flushed", "rid": 6, "queued": 0}),
        ("pong", {"type": "pong", "rid": 7, "server_time": TS}),
        ("stats", {"type": "stats", "rid": 8, "daemon_version": "0.1.0", "uptime_s": 12.5, "clients": 2,
                   "received": 4720, "stored": 4712, "duplicates": 3, "rejected": 5, "errors": 1,
                   "replies_dropped": 0, "requests_dropped": 0, "rate_10s": 101.5,
                   "store": {"url": "sqlite:////var/lib/engine-bridge/bridge.sqlite3", "events": 4712,
                             "undelivered": 12, "trimmed": 0},
                   "providers": {"gameanalytics": stats_provider},
                   "last_errors": [{"at": TS, "code": Code.MISSING_FIELD, "message": "event.ts: missing"}]}),
        ("configs", {"type": "configs", "rid": 9, "topics": {
            protocol.LOCAL_CONFIG_TOPIC: {"topic": protocol.LOCAL_CONFIG_TOPIC, "version": 2, "updated_at": TS,
                                          "source": "local", "values": {"difficulty": "hard", "max_lives": 3,
                                                                        "speed": 1.25, "flags": [True, False]},
                                          "meta": {}}}}),
        ("purchase verified", {"type": "purchase", "rid": 10, "id": "p-1", "state": "verified", "is_valid": True,
                               "is_duplicate": False, "reason": "verified by staq"}),
        ("purchase pending", {"type": "purchase", "rid": 11, "id": "p-2", "state": "pending", "is_valid": None,
                              "is_duplicate": None, "reason": None}),
        ("consent", {"type": "consent", "rid": 12, "device_id": "d-42", "user_id": "d-42", "analytics": "granted",
                     "ip_ads": "denied"}),
        ("forgotten", {"type": "forgotten", "rid": 13, "device_id": "d-42", "user_id": "player-9",
                       "providers": ["gameanalytics", "staq"]}),
    ]
    for offset, (code, message, field, detail) in enumerate(ERRORS):
        rid = None if code in (Code.MALFORMED, Code.NOT_A_MAP) else 20 + offset  # no rid can be read from those
        cases.append((f"error {code}", _error(rid, code, message, field, detail)))
    return cases


def publication_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """Configs-socket publications (two frames: the topic, then this map), protocol.md section 7."""
    return [
        ("config/local", protocol.LOCAL_CONFIG_TOPIC, {
            "topic": protocol.LOCAL_CONFIG_TOPIC, "version": 2, "updated_at": TS, "source": "local",
            "values": {"difficulty": "hard", "max_lives": 3}, "meta": {}}),
        ("config/gameanalytics", "config/gameanalytics", {
            "topic": "config/gameanalytics", "version": 7, "updated_at": TS, "source": "gameanalytics",
            "values": {"boss_hp": "1200"}, "meta": {"ab_id": "ab-1", "ab_variant_id": "b"}}),
        ("purchase verdicts", protocol.PURCHASE_PREFIX + DEVICE, {
            "topic": protocol.PURCHASE_PREFIX + DEVICE, "version": 1, "updated_at": TS, "source": "staq",
            "values": {"p-1": {"is_valid": True, "is_duplicate": False, "reason": "verified by staq",
                               "store": "apple", "verified_at": TS}}, "meta": {}}),
    ]


# --- the file -----------------------------------------------------------------------------------------

def vectors() -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "protocol": protocol.PROTOCOL_VERSION,
        "generated_by": "python -m bridge.conformance",
        "protocol_py_sha256": hashlib.sha256(PROTOCOL_SOURCE.read_bytes()).hexdigest(),
        "msgpack": msgpack_vectors(),
        "requests": [request_vector(name, msg) for name, msg in request_cases()],
        "replies": [{"name": name, "value": to_json(msg), "hex": pack(msg).hex()} for name, msg in reply_cases()],
        "publications": [{"name": name, "topic": topic, "value": to_json(msg), "hex": pack(msg).hex()}
                         for name, topic, msg in publication_cases()],
        "limits": {
            "values": dict(protocol.LIMITS),
            "cases": [request_vector(name, msg) for name, msg in limit_cases()],
            "frames": [raw_vector(name, frame) for name, frame in RAW_FRAMES],
        },
    }


def _dump(value: Any, depth: int = 0) -> str:
    """Sorted keys; each vector on a line of its own (the file stays small and its diffs stay readable)."""
    pad = " " * (depth + 1)
    if isinstance(value, dict) and depth < 1 or isinstance(value, dict) and "cases" in value:
        items = [f"{pad}{json.dumps(k)}: {_dump(v, depth + 1)}" for k, v in sorted(value.items())]
        return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "[\n" + ",\n".join(pad + _dump(v, 99) for v in value) + "\n" + " " * depth + "]"
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def render() -> str:
    return _dump(vectors()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.conformance", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what is generated")
    parser.add_argument("--path", type=Path, default=VECTORS_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not args.path.exists() or args.path.read_text(encoding="utf-8") != text:
            print(f"{args.path} is stale: run python -m bridge.conformance", file=sys.stderr)
            return 1
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
