"""Protocol v1: message types, limits, error codes and the checks that turn wire maps into typed values.

This module is the code twin of `protocol.md`; every limit and every wire field name lives here once.
Checks raise `ProtocolError` (a whole message refused) or return `Rejection`s (single events refused).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import msgpack

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)

MAX_MESSAGE_BYTES = 256 * 1024
HARD_MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # libzmq drops the connection above this
MAX_BATCH_EVENTS = 1000
MAX_EVENT_ID_CHARS = 64
MAX_FIELDS = 64
MAX_STRING_CHARS = 8192
MAX_DEPTH = 4
MAX_RECEIPT_CHARS = 65536
RID_MAX = 2**32 - 1
# Every integer the daemon keeps fits a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT) and every
# engine's long: msgpack's uint64 above this is refused like any other bad value.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

LIMITS = {
    "max_message_bytes": MAX_MESSAGE_BYTES,
    "max_batch_events": MAX_BATCH_EVENTS,
    "max_event_id_chars": MAX_EVENT_ID_CHARS,
    "max_fields": MAX_FIELDS,
    "max_string_chars": MAX_STRING_CHARS,
    "max_depth": MAX_DEPTH,
}

REQUEST_TYPES = ("hello", "event", "events", "session_start", "session_end", "flush", "ping", "stats",
                 "configs", "purchase", "consent", "forget")

CATEGORIES = ("design", "business", "progression", "resource", "error", "ads", "impression", "custom")
# Stored beside client events so that session boundaries travel the same ordered, acknowledged stream.
SESSION_START = "session_start"
SESSION_END = "session_end"

# The configs socket PINGs every peer (ZMTP 3.0 ones too) every HEARTBEAT_MS, TTL HEARTBEAT_TIMEOUT_MS, and drops
# one HEARTBEAT_TIMEOUT_MS after the first PING since it last heard it: 15-20 s of silence (protocol.md section 1).
# The ingress sends no PINGs: its TCP keepalive probes an idle peer after HEARTBEAT_TIMEOUT_MS, every HEARTBEAT_MS.
HEARTBEAT_MS = 5000
HEARTBEAT_TIMEOUT_MS = 15000

CONFIG_PREFIX = "config/"
LOCAL_CONFIG_TOPIC = "config/local"
PURCHASE_PREFIX = "purchase/"


def topic_device(topic: str) -> str | None:
    """The device a topic is for (`config/<source>/<device_id>[/<user_id>]`, `purchase/<device_id>`), or None
    for a topic of the whole daemon (`config/local`, the v1 `config/gameanalytics`)."""
    parts = topic.split("/")
    if parts[0] == "purchase" and len(parts) == 2:
        return parts[1]
    return parts[2] if parts[0] == "config" and len(parts) in (3, 4) else None


def device_topic(topic: str, device_id: str) -> bool:
    """Whether a relay client of `device_id` may read `topic`: the local configs, and the topics that name
    its device, never another device's."""
    return topic == LOCAL_CONFIG_TOPIC or topic_device(topic) == device_id


# The v1 topic a daemon fills from its own device's `config/gameanalytics/<device_id>` (section 7): an edge
# fills it the same way from what its relay publishes for the device.
V1_MIRRORS = ("config/gameanalytics",)


class Code:
    """Stable error codes: clients branch on these strings."""

    MALFORMED = "malformed"
    NOT_A_MAP = "not_a_map"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    HELLO_REQUIRED = "hello_required"
    TOO_LARGE = "too_large"
    BATCH_TOO_LARGE = "batch_too_large"
    NO_SESSION = "no_session"
    NOT_CONFIGURED = "not_configured"
    WRONG_GAME = "wrong_game"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"  # a relay client over its events per second (detail: retry_after_ms)
    QUOTA_EXCEEDED = "quota_exceeded"  # a relay client over its events per day (detail: retry_after_ms)
    FORBIDDEN = "forbidden"  # a relay client asked for what only the relay's own machine may
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A request the daemon refuses whole; becomes an `error` reply."""

    def __init__(self, code: str, message: str, field: str | None = None,
                 detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.detail = detail

    def reply(self, rid: int | None) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "error", "rid": rid, "code": self.code, "message": self.message}
        if self.field is not None:
            msg["field"] = self.field
        if self.detail is not None:
            msg["detail"] = self.detail
        return msg


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event of a batch refused; listed in the ack's `rejected`."""

    index: int
    id: str | None
    code: str
    message: str

    def to_wire(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "code": self.code, "message": self.message}


@dataclass(slots=True)
class Event:
    """An event that passed the shape checks, ready for the store."""

    id: str
    category: str
    ts: int
    fields: dict[str, Any]
    user_id: str | None


@dataclass(slots=True)
class Hello:
    """Who a connection is: the fields of `hello` the daemon keeps."""

    protocol: int
    engine: str
    binding: str
    binding_version: str
    game_build: str
    device_id: str
    user_id: str
    engine_version: str | None = None
    platform: str | None = None
    os_version: str | None = None
    device: str | None = None
    manufacturer: str | None = None
    role: str = "game"
    extra: dict[str, Any] = field(default_factory=dict)
    # Set by the daemon, never read from the request: a relay client's key and network address (the address
    # is its players' IP when a session names none).
    client_key: str | None = None
    address: str | None = None
    game: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """A `session_start` or `session_end`: whose session (None: the hello user's), when (None: now), and for a
    start the player's IP address and device (a dedicated server's player plays on a device of its own)."""

    user_id: str | None
    ts: int | None
    user_ip: str | None = None
    device: dict[str, str] = field(default_factory=dict)
    session_id: str | None = None  # the client's own id for the session: a resend names the same session


# A player's device: a `hello` gives the game's own player's, a `session_start` a dedicated server's player's.
PLAYER_DEVICE_MAX_CHARS = {"platform": 32, "os_version": 64, "device": 64, "manufacturer": 64, "engine_version": 64}


# --- decoding -------------------------------------------------------------------------------------------

def decode(frame: bytes) -> dict[str, Any]:
    """One frame → one map, or ProtocolError with the code that says what was wrong."""
    if len(frame) > MAX_MESSAGE_BYTES:
        raise ProtocolError(Code.TOO_LARGE, f"message is {len(frame)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        # strict_map_key: a key that is neither str nor bin fails here, at C speed, wherever the map is
        value = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except msgpack.ExtraData:
        raise ProtocolError(Code.MALFORMED, "frame holds more than one msgpack value") from None
    except (ValueError, msgpack.UnpackException) as exc:
        raise ProtocolError(Code.MALFORMED, f"frame is not valid msgpack ({exc})") from None
    if not isinstance(value, dict):
        raise ProtocolError(Code.NOT_A_MAP, f"frame is a msgpack {type_name(value)}, not a map")
    return value


def encode(msg: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(msg, use_bin_type=True)
    return packed


def read_rid(msg: dict[str, Any]) -> int | None:
    """The request id if it is usable, else None (the error reply then carries nil)."""
    rid = msg.get("rid")
    if type(rid) is int and 0 <= rid <= RID_MAX:
        return rid
    return None


def readable_rid(frame: bytes) -> int | None:
    """The `rid` of a frame refused before it became a map (too large, not msgpack, more than one value), or of
    the first frame of a message of several: read from the frame's start, entry by entry of its top-level map,
    as far as the frame is valid msgpack. None when the frame does not start with a map, no usable `rid` entry
    comes before the first byte that is not msgpack, or that entry is not an int in 0..RID_MAX; a later `rid`
    entry replaces an earlier one, as it does in a map that decodes."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=max(len(frame), 1))
    unpacker.feed(frame)
    rid: Any = None
    try:
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == "rid":
                rid = unpacker.unpack()
            else:
                unpacker.skip()  # read at C speed, nothing built: a too-large frame is up to 16 MiB
    except (ValueError, TypeError, msgpack.UnpackException):
        pass  # not a map, or the frame stops being msgpack here: the rid read so far is all there is
    return rid if type(rid) is int and 0 <= rid <= RID_MAX else None


def check_request(msg: dict[str, Any]) -> tuple[str, int]:
    """The checks every request shares: `type` and `rid`."""
    kind = msg.get("type")
    if kind is None:
        raise ProtocolError(Code.MISSING_FIELD, "type: missing", "type")
    if not isinstance(kind, str):
        raise _wrong_type("type", "str", kind)
    rid = msg.get("rid")
    if rid is None:  # nil is absent, here as for every field (protocol.md section 2)
        raise ProtocolError(Code.MISSING_FIELD, "rid: missing", "rid")
    if type(rid) is not int:
        raise _wrong_type("rid", "uint", rid)
    if not 0 <= rid <= RID_MAX:
        raise ProtocolError(Code.INVALID_VALUE, f"rid: {rid} is outside 0..{RID_MAX}", "rid")
    if kind not in REQUEST_TYPES:
        raise ProtocolError(Code.UNKNOWN_TYPE, f"type: unknown message type {kind!r}", "type")
    return kind, rid


# --- field readers --------------------------------------------------------------------------------------

def type_name(value: Any) -> str:
    """The msgpack name of a Python value, for messages people read."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (bytes, bytearray)):
        return "bin"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "map"
    return "ext"  # msgpack.ExtType or msgpack.Timestamp: the only other things unpackb makes


def _field(msg: dict[str, Any], name: str, path: str, required: bool) -> tuple[Any, str]:
    """A field's value (None when absent) and its path; missing_field when it is required and absent."""
    value = msg.get(name)
    where = f"{path}{name}"
    if value is None and required:
        raise ProtocolError(Code.MISSING_FIELD, f"{where}: missing", where)
    return value, where


def _wrong_type(where: str, expected: str, value: Any) -> ProtocolError:
    return ProtocolError(Code.WRONG_TYPE, f"{where}: expected {expected}, got {type_name(value)}", where)


def text(msg: dict[str, Any], name: str, path: str, *, required: bool = True, min_len: int = 1,
         max_len: int = 64) -> str | None:
    """A str field within length limits (None when optional and absent)."""
    value, where = _field(msg, name, path, required)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong_type(where, "str", value)
    if not min_len <= len(value) <= max_len:
        raise ProtocolError(Code.INVALID_VALUE,
                            f"{where}: length {len(value)} is outside {min_len}..{max_len}", where)
    return value


def need_text(msg: dict[str, Any], name: str, path: str, *, min_len: int = 1, max_len: int = 64) -> str:
    """A required str field (ProtocolError when absent)."""
    value = text(msg, name, path, min_len=min_len, max_len=max_len)
    assert value is not None  # text() raises for a required field that is absent
    return value


def need_integer(msg: dict[str, Any], name: str, path: str) -> int:
    """A required int field (ProtocolError when absent)."""
    value = integer(msg, name, path)
    assert value is not None  # integer() raises for a required field that is absent
    return value


def integer(msg: dict[str, Any], name: str, path: str, *, required: bool = True, minimum: int = 0,
            maximum: int = INT_MAX) -> int | None:
    value, where = _field(msg, name, path, required)
    if value is None:
        return None
    if type(value) is not int:
        raise _wrong_type(where, "int", value)
    if not minimum <= value <= maximum:
        raise ProtocolError(Code.INVALID_VALUE, f"{where}: {value} is outside {minimum}..{maximum}", where)
    return value


def mapping(msg: dict[str, Any], name: str, path: str, *, required: bool = True) -> dict[str, Any] | None:
    value, where = _field(msg, name, path, required)
    if value is not None and not isinstance(value, dict):
        raise _wrong_type(where, "map", value)
    return value


# --- hello ----------------------------------------------------------------------------------------------

# A game's connection is a player's device; a tool's (`engine-bridge status`, a monitor) only reads, so it is
# never recorded as a device, never logged in at a provider, never opens a session.
ROLE_GAME, ROLE_TOOL = "game", "tool"
ROLES = (ROLE_GAME, ROLE_TOOL)
TOOL_REQUESTS = ("hello", "ping", "stats", "configs", "flush", "consent", "forget")
# A game's short id (`hello`'s `game`, the daemon's `game` setting): one daemon per game on a machine.
GAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

def read_hello(msg: dict[str, Any]) -> Hello:
    """Check a `hello` and negotiate the version; ProtocolError if it cannot be served."""
    top = need_integer(msg, "protocol", "")
    low = integer(msg, "protocol_min", "", required=False)
    low = top if low is None else low
    chosen = max((v for v in SUPPORTED_VERSIONS if low <= v <= top), default=None)
    if chosen is None:
        raise ProtocolError(Code.UNSUPPORTED_VERSION,
                            f"client speaks protocol {low}..{top}; this daemon speaks {list(SUPPORTED_VERSIONS)}",
                            "protocol", {"supported": list(SUPPORTED_VERSIONS)})
    device_id = need_text(msg, "device_id", "", max_len=128)
    user_id = text(msg, "user_id", "", required=False, max_len=128) or device_id
    device = read_player_device(msg)
    role = text(msg, "role", "", required=False, max_len=16) or ROLE_GAME
    if role not in ROLES:
        raise ProtocolError(Code.INVALID_VALUE, f"role: {role!r} is not one of {', '.join(ROLES)}", "role")
    game = text(msg, "game", "", required=False, max_len=32)
    if game is not None and not GAME_RE.fullmatch(game):
        raise ProtocolError(Code.INVALID_VALUE, f"game: {game!r} is not 1-32 characters of a-z 0-9 _ -, starting "
                            "with a letter or digit", "game")
    return Hello(
        protocol=chosen,
        engine=need_text(msg, "engine", ""),
        binding=need_text(msg, "binding", ""),
        binding_version=need_text(msg, "binding_version", "", max_len=32),
        game_build=need_text(msg, "game_build", "", max_len=32),
        device_id=device_id,
        user_id=user_id,
        engine_version=device.get("engine_version"),
        platform=device.get("platform"),
        os_version=device.get("os_version"),
        device=device.get("device"),
        manufacturer=device.get("manufacturer"),
        role=role,
        game=game,
    )


def read_player_device(msg: dict[str, Any]) -> dict[str, str]:
    """The player-device fields `msg` gives, checked; absent ones are left out. The platform is kept lower case,
    as providers want it (GameAnalytics refuses every event of a `Windows` device)."""
    given = {name: text(msg, name, "", required=False, min_len=0, max_len=limit)
             for name, limit in PLAYER_DEVICE_MAX_CHARS.items()}
    if given["platform"] is not None:
        given["platform"] = given["platform"].lower()
    return {name: value for name, value in given.items() if value is not None}


def read_session(msg: dict[str, Any], start: bool) -> SessionRequest:
    """Check a `session_start` (`start`) or `session_end`."""
    user_id = text(msg, "user_id", "", required=False, max_len=128)
    ts = integer(msg, "ts", "", required=False)
    session_id = text(msg, "session_id", "", required=False, max_len=36)
    if session_id is not None and not SESSION_ID_RE.fullmatch(session_id):
        raise ProtocolError(Code.INVALID_VALUE, "session_id must be a lower-case UUID v4", "session_id")
    if not start:
        return SessionRequest(user_id, ts, session_id=session_id)
    return SessionRequest(user_id, ts, text(msg, "user_ip", "", required=False, max_len=45), read_player_device(msg),
                          session_id)


CONSENT_STATES = ("unknown", "granted", "denied")
CONSENT_PURPOSES = ("analytics", "ip_ads")


@dataclass(frozen=True, slots=True)
class PlayerRequest:
    """A `consent` or `forget`: whose (None: the hello user's; a tool names the device too), and for a
    `consent` each purpose's new state (None: unchanged)."""

    user_id: str | None
    device_id: str | None = None
    analytics: str | None = None
    ip_ads: str | None = None


def read_player_request(msg: dict[str, Any], tool: bool) -> PlayerRequest:
    """Check a `consent` or `forget` (its `type`); a tool connection must name the player's `device_id`, a game
    may not (its own device is meant)."""
    user_id = text(msg, "user_id", "", required=False, max_len=128)
    device_id = text(msg, "device_id", "", required=tool, max_len=128)
    if device_id is not None and not tool:
        raise ProtocolError(Code.INVALID_VALUE, "device_id: only a tool connection names the device; a game's "
                            "requests are about its own device", "device_id")
    if msg["type"] == "forget":
        return PlayerRequest(user_id, device_id)
    states: dict[str, str | None] = {}
    for purpose in CONSENT_PURPOSES:
        state = text(msg, purpose, "", required=False, max_len=16)
        if state is not None and state not in CONSENT_STATES[1:]:
            raise ProtocolError(Code.INVALID_VALUE, f"{purpose}: \"granted\" or \"denied\"", purpose)
        states[purpose] = state
    if not any(states.values()):
        raise ProtocolError(Code.MISSING_FIELD, "consent: give analytics, ip_ads or both", "analytics")
    return PlayerRequest(user_id, device_id, states["analytics"], states["ip_ads"])


SESSION_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


# --- events ---------------------------------------------------------------------------------------------

EVENT_ID_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

# Per category: required fields, then optional ones, each with the msgpack kind it must have.
STR, INT, NUMBER, MAP = "str", "int", "number", "map"
CATEGORY_FIELDS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "design": ({"event_id": STR}, {"value": NUMBER}),
    "business": ({"event_id": STR, "amount": INT, "currency": STR},
                 {"cart_type": STR, "transaction_num": INT, "receipt_info": MAP}),
    "progression": ({"event_id": STR}, {"attempt_num": INT, "score": INT}),
    "resource": ({"event_id": STR, "amount": NUMBER}, {}),
    "error": ({"severity": STR, "message": STR}, {"function_name": STR, "line_number": INT}),
    "ads": ({"ad_action": STR, "ad_type": STR, "ad_sdk_name": STR, "ad_placement": STR},
            {"ad_duration": INT, "ad_fail_show_reason": STR, "ad_fb_error": STR}),  # ad_fb_error: v1's old name
    "impression": ({"ad_network_name": STR, "ad_network_version": STR, "impression_data": MAP}, {}),
    "custom": ({"name": STR}, {}),
}
COMMON_OPTIONAL = {"custom_01": STR, "custom_02": STR, "custom_03": STR, "custom_fields": MAP}


def _kind_matches(value: Any, kind: str) -> bool:
    if kind == STR:
        return isinstance(value, str)
    if kind == INT:
        return type(value) is int
    if kind == NUMBER:
        return type(value) in (int, float)
    return isinstance(value, dict)


def _check_container(size: int, where: str, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise ProtocolError(Code.INVALID_VALUE, f"{where}: nested deeper than {MAX_DEPTH} levels", where)
    if size > MAX_FIELDS:
        raise ProtocolError(Code.INVALID_VALUE, f"{where}: {size} entries; the limit is {MAX_FIELDS}", where)


def _bad_item(item: Any, where: str, depth: int) -> None:
    """Check one value inside a container; the path is built only when it is needed."""
    kind = type(item)
    if kind is str:
        if len(item) > MAX_STRING_CHARS:
            raise ProtocolError(Code.INVALID_VALUE, f"{where}: string of {len(item)} chars; the limit is "
                                f"{MAX_STRING_CHARS}", where)
    elif kind is int:
        if not INT_MIN <= item <= INT_MAX:
            raise ProtocolError(Code.INVALID_VALUE, f"{where}: {item} is outside the signed 64-bit range", where)
    elif kind is float:
        if not math.isfinite(item):
            raise ProtocolError(Code.INVALID_VALUE, f"{where}: {item} is not a finite number", where)
    elif kind is dict or kind is list:
        _check_value(item, where, depth)
    elif not (kind is bool or kind is bytes or item is None):
        raise ProtocolError(Code.WRONG_TYPE, f"{where}: msgpack extension types are not allowed (protocol.md "
                            "section 2)", where)


def _check_value(value: Any, where: str, depth: int) -> None:
    """Limits on anything inside `fields`: depth, entry counts, key and string lengths, finite floats."""
    if type(value) is dict:
        _check_container(len(value), where, depth)
        for key, item in value.items():
            if type(key) is not str or not 0 < len(key) <= 64:
                raise ProtocolError(Code.INVALID_VALUE, f"{where}: keys must be str of 1..64 chars, got {key!r}",
                                    where)
            kind = type(item)
            if (kind is str and len(item) <= MAX_STRING_CHARS or kind is int and INT_MIN <= item <= INT_MAX
                    or kind is bool or item is None):
                continue  # the common case, checked without building a path
            _bad_item(item, f"{where}.{key}", depth + 1)
    elif type(value) is list:
        _check_container(len(value), where, depth)
        for i, item in enumerate(value):
            _bad_item(item, f"{where}[{i}]", depth + 1)
    else:
        _bad_item(value, where, depth)


# Per category: its required field names, and the msgpack kind of every field it knows.
FIELD_KINDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    category: (tuple(required), {**COMMON_OPTIONAL, **optional, **required})
    for category, (required, optional) in CATEGORY_FIELDS.items()}


def _check_fields(category: str, fields: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields checked, without the named ones that are nil: nil is absent (protocol.md section 2), so a
    provider sees no field rather than a nil it would refuse. Fields this page does not name keep their nil."""
    required, kinds = FIELD_KINDS[category]
    if any(fields.get(name, ...) is None for name in kinds):
        fields = {key: value for key, value in fields.items() if value is not None or key not in kinds}
    _check_value(fields, where, 0)
    for name in required:
        if name not in fields:
            raise ProtocolError(Code.MISSING_FIELD, f"{where}.{name}: missing (required for {category})",
                                f"{where}.{name}")
    for name, value in fields.items():
        kind = kinds.get(name)
        if kind is not None and not _kind_matches(value, kind):
            raise _wrong_type(f"{where}.{name}", kind, value)
    if category == "custom" and not 1 <= len(fields["name"]) <= 64:
        raise ProtocolError(Code.INVALID_VALUE, f"{where}.name: length must be 1..64", f"{where}.name")
    return fields


def _flat_fields_ok(category: str, fields: dict[str, Any]) -> bool:
    """True when fields hold only valid scalars of the right kinds: the usual event, checked with no strings
    built. False sends the event down the long road, which names what is wrong (or accepts nesting)."""
    if len(fields) > MAX_FIELDS:
        return False
    required, kinds = FIELD_KINDS[category]
    for name in required:
        if name not in fields:
            return False
    for key, item in fields.items():
        if type(key) is not str or not 0 < len(key) <= 64:
            return False
        kind = type(item)
        if kind is str:
            if len(item) > MAX_STRING_CHARS:
                return False
        elif kind is int:
            if not INT_MIN <= item <= INT_MAX:
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif not (kind is bool or item is None):
            return False
        expected = kinds.get(key)
        if expected is not None and not (expected == STR and kind is str or expected == INT and kind is int
                                         or expected == NUMBER and (kind is int or kind is float)):
            return False
    return category != "custom" or 0 < len(fields["name"]) <= 64


def read_event(raw: Any, index: int | None) -> Event:
    """Check one event's shape (protocol.md section 5); ProtocolError names the field at fault.

    `index` is the event's place in an `events` batch (None for `event`). A well-formed event with flat
    fields takes the short road; anything else takes the long one, which finds the field at fault and says so.
    """
    if type(raw) is dict:
        event_id, category, ts = raw.get("id"), raw.get("category"), raw.get("ts")
        fields, user_id = raw.get("fields"), raw.get("user_id")
        if (type(event_id) is str and type(ts) is int and 0 <= ts <= INT_MAX and type(fields) is dict
                and type(category) is str and category in FIELD_KINDS and EVENT_ID_RE.fullmatch(event_id)
                and (user_id is None or type(user_id) is str and 0 < len(user_id) <= 128)
                and _flat_fields_ok(category, fields)):
            return Event(event_id, category, ts, fields, user_id)
    return _read_event_slowly(raw, "event" if index is None else f"events[{index}]")


def _read_event_slowly(raw: Any, path: str) -> Event:
    if not isinstance(raw, dict):
        raise _wrong_type(path, "map", raw)
    prefix = path + "."
    event_id = need_text(raw, "id", prefix, max_len=MAX_EVENT_ID_CHARS)
    if not EVENT_ID_RE.fullmatch(event_id):
        raise ProtocolError(Code.INVALID_VALUE, f"{prefix}id: {event_id!r} has characters outside "
                            "A-Z a-z 0-9 - _ . :", prefix + "id")
    category = text(raw, "category", prefix, max_len=32)
    if category not in CATEGORY_FIELDS:
        raise ProtocolError(Code.INVALID_VALUE, f"{prefix}category: {category!r} is not one of "
                            f"{', '.join(CATEGORIES)}", prefix + "category")
    ts = need_integer(raw, "ts", prefix)
    fields = mapping(raw, "fields", prefix)
    assert fields is not None
    user_id = text(raw, "user_id", prefix, required=False, max_len=128)
    return Event(event_id, category, ts, _check_fields(category, fields, prefix + "fields"), user_id)


def read_events(msg: dict[str, Any], kind: str) -> tuple[list[tuple[int, Event]], list[Rejection]]:
    """The events of an `event` or `events` request: good ones with their index, and rejections."""
    if kind == "event":
        raw = msg.get("event")
        if raw is None:
            raise ProtocolError(Code.MISSING_FIELD, "event: missing", "event")
        if not isinstance(raw, dict):
            raise _wrong_type("event", "map", raw)
        try:
            return [(0, read_event(raw, None))], []
        except ProtocolError as exc:
            raw_id = raw.get("id")
            return [], [Rejection(0, raw_id if isinstance(raw_id, str) else None, exc.code, exc.message)]
    else:
        value = msg.get("events")
        if value is None:
            raise ProtocolError(Code.MISSING_FIELD, "events: missing", "events")
        if not isinstance(value, list):
            raise _wrong_type("events", "array", value)
        if not value:
            raise ProtocolError(Code.INVALID_VALUE, "events: empty; send 1 to 1000 events", "events")
        if len(value) > MAX_BATCH_EVENTS:
            raise ProtocolError(Code.BATCH_TOO_LARGE, f"events: {len(value)} events; the limit is "
                                f"{MAX_BATCH_EVENTS}", "events")
    good: list[tuple[int, Event]] = []
    bad: list[Rejection] = []
    for index, raw in enumerate(value):
        try:
            good.append((index, read_event(raw, index)))
        except ProtocolError as exc:
            raw_id = raw.get("id") if isinstance(raw, dict) else None
            bad.append(Rejection(index, raw_id if isinstance(raw_id, str) else None, exc.code, exc.message))
    return good, bad


# --- purchases ----------------------------------------------------------------------------------------

PURCHASE_STORES = ("apple", "googleplay")
PURCHASE_STATUSES = ("processing", "completed")
MAX_COMMENT_CHARS = 1024


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
        return True
    except (binascii.Error, ValueError):
        return False


def read_purchase(msg: dict[str, Any]) -> dict[str, Any]:
    """Check a `purchase` request (protocol.md section 4.9); the purchase's fields, defaults filled in."""
    purchase_id = need_text(msg, "id", "", max_len=MAX_EVENT_ID_CHARS)
    if not EVENT_ID_RE.fullmatch(purchase_id):
        raise ProtocolError(Code.INVALID_VALUE, f"id: {purchase_id!r} has characters outside A-Z a-z 0-9 - _ . :",
                            "id")
    store = text(msg, "store", "", max_len=16)
    if store not in PURCHASE_STORES:
        raise ProtocolError(Code.INVALID_VALUE, f"store: {store!r} is not one of {', '.join(PURCHASE_STORES)}",
                            "store")
    receipt = text(msg, "receipt", "", max_len=MAX_RECEIPT_CHARS)
    signature = text(msg, "signature", "", required=store == "googleplay", max_len=MAX_RECEIPT_CHARS)
    for name, value in (("receipt", receipt), ("signature", signature)):
        if value is not None and not _is_base64(value):
            raise ProtocolError(Code.INVALID_VALUE, f"{name}: not standard base64 (A-Z a-z 0-9 + /, padded "
                                "with =)", name)
    price, where = _field(msg, "price_usd", "", False)
    if price is not None and type(price) not in (int, float):
        raise _wrong_type(where, "number", price)
    if price is not None and (not math.isfinite(price) or price < 0):
        raise ProtocolError(Code.INVALID_VALUE, f"price_usd: {price} must be a finite number >= 0", where)
    status = text(msg, "status", "", required=False, max_len=16) or "completed"
    if status not in PURCHASE_STATUSES:
        raise ProtocolError(Code.INVALID_VALUE, f"status: {status!r} is not one of {', '.join(PURCHASE_STATUSES)}",
                            "status")
    comment = text(msg, "comment", "", required=False, min_len=0, max_len=MAX_COMMENT_CHARS) or ""
    meta = mapping(msg, "metadata", "", required=False) or {}
    _check_value(meta, "metadata", 0)
    user_id = text(msg, "user_id", "", required=False, max_len=128)
    return {"purchase_id": purchase_id, "store": store, "receipt": receipt, "signature": signature,
            "price_usd": float(price or 0.0), "status": status, "comment": comment, "metadata": meta,
            "user_id": user_id}


# --- examples for protocol.md ---------------------------------------------------------------------------

EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("`hello`", {"type": "hello", "rid": 1, "protocol": 1, "engine": "unity", "binding": "engine-bridge-unity",
                 "binding_version": "1.0.0", "game_build": "1.4.2", "device_id": "d-42"}),
    ("its `welcome` (abridged: `limits` and `topics` left out)",
     {"type": "welcome", "rid": 1, "protocol": 1, "server_time": 1795600000000, "daemon_version": "0.1.0",
      "session": None}),
    ("`event` (design)", {"type": "event", "rid": 2, "event": {
        "id": "e-1", "category": "design", "ts": 1795600000123, "fields": {"event_id": "ui:play", "value": 1.5}}}),
    ("its `ack`", {"type": "ack", "rid": 2, "stored": 1, "duplicates": 0, "rejected": [], "invalid": []}),
    ("`event` without its `ts`", {"type": "event", "rid": 3, "event": {
        "id": "e-2", "category": "design", "fields": {"event_id": "ui:quit"}}}),
    ("its `ack`: an event that fails the checks is refused alone, listed in `rejected`",
     {"type": "ack", "rid": 3, "stored": 0, "duplicates": 0, "rejected": [
         {"index": 0, "id": "e-2", "code": "missing_field", "message": "event.ts: missing"}], "invalid": []}),
    ("`events` without its `events` array", {"type": "events", "rid": 4}),
    ("its `error`: a problem with the message itself refuses it whole",
     {"type": "error", "rid": 4, "code": "missing_field", "message": "events: missing", "field": "events"}),
]


def hexdump(data: bytes) -> str:
    """Sixteen bytes a line, offset first: the form protocol.md shows."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        lines.append(f"{off:04x}  {' '.join(f'{b:02x}' for b in chunk)}")
    return "\n".join(lines)


def render_examples() -> str:
    parts = []
    for title, msg in EXAMPLES:
        parts.append(f"{title}, `{json.dumps(msg)}`:\n\n```\n{hexdump(encode(msg))}\n```\n")
    return "\n".join(parts)


EXAMPLES_START = "<!-- examples:start -->"
EXAMPLES_END = "<!-- examples:end -->"


def with_examples(document: str) -> str:
    """protocol.md's text with the examples section rendered afresh between its markers."""
    head, _, rest = document.partition(EXAMPLES_START)
    _, _, tail = rest.partition(EXAMPLES_END)
    return f"{head}{EXAMPLES_START}\n{render_examples()}{EXAMPLES_END}{tail}"


if __name__ == "__main__":
    print(render_examples())
