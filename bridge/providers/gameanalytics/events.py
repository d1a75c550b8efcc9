"""Stored events → GameAnalytics event objects, and the collector's rules checked before sending.

The rules follow the fact sheet (`shared/providers/gameanalytics.md`). They are written here independently
of the sandbox's validator, so that the tests can check one against the other.
"""

from __future__ import annotations

import functools
import hashlib
import math
import platform as host_platform
import re
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, TypeGuard

from ...store import StoredEvent
from ...protocol import SESSION_END, SESSION_START
from .settings import GameAnalyticsSettings

SDK_VERSION = "rest api v2"
CATEGORIES = frozenset({"design", "business", "progression", "resource", "error", "ads", "impression",
                        SESSION_START, SESSION_END})

PART = re.compile(r"[A-Za-z0-9\s\-_.()!?]{1,64}")
CURRENCY = re.compile(r"[A-Z]{3}")
SESSION_ID = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}")
AD_SDK = re.compile(r"[a-z0-9_]{1,32}")
OS_VERSION = re.compile(r"[a-z0-9_]{1,32} [0-9]{1,5}(\.[0-9]{1,5}){0,2}")
SEVERITIES = frozenset({"debug", "info", "warning", "error", "critical"})
# What the SDKs send (GAAdAction, GAAdType and GAAdError in GA-SDK-UNITY's Enums.cs; EGAAdError in
# GA-SDK-JAVASCRIPT): a reason only with failed_show, a duration only for the video types.
AD_ACTIONS = frozenset({"clicked", "show", "failed_show", "reward_received", "request", "loaded"})
AD_TYPES = frozenset({"video", "rewarded_video", "playable", "interstitial", "offer_wall", "banner", "app_open"})
AD_FAIL_REASONS = frozenset({"unknown", "offline", "no_fill", "internal_error", "invalid_request",
                             "unable_to_precache"})
VIDEO_AD_TYPES = frozenset({"video", "rewarded_video"})
RECEIPT_STORES = frozenset({"apple", "google_play"})
CONNECTION_TYPES = frozenset({"offline", "wwan", "wifi", "lan"})
# The engines the SDKs name in `engine_version`, and its shape (GAValidator::validateEngineVersion in
# gameanalytics-sdk-cpp): "<engine> <up to three numeric groups>", e.g. "unity 2022.3.10".
ENGINES = ("unity", "unreal", "corona", "cocos2d", "lumberyard", "gamemaker", "defold", "godot")
ENGINE_VERSION = re.compile(rf"({'|'.join(ENGINES)}) [0-9]{{0,5}}(\.[0-9]{{0,5}}){{0,2}}")
_LEADING_VERSION = re.compile(r"[0-9]{1,5}(\.[0-9]{1,5}){0,2}")
EVENT_UUID = SESSION_ID
# The fields each category defines; an engine's other fields travel in custom_fields (the collector refuses
# fields it does not know).
CATEGORY_FIELDS = {
    "design": ("event_id", "value"),
    "business": ("event_id", "amount", "currency", "transaction_num", "cart_type", "receipt_info"),
    "progression": ("event_id", "attempt_num", "score"),
    "resource": ("event_id", "amount"),
    "error": ("severity", "message", "function_name", "line_number"),
    "ads": ("ad_action", "ad_type", "ad_sdk_name", "ad_placement", "ad_duration", "ad_fail_show_reason"),
    # Ad revenue, as the SDKs' addImpressionEvent sends it (GA-SDK-UNITY's iOS and Android SDKs): the ad
    # network's name and version and its impression data, as the network gave it.
    "impression": ("ad_network_name", "ad_network_version", "impression_data"),
}
OPTIONAL_ANNOTATIONS = ("custom_01", "custom_02", "custom_03", "connection_type", "limit_ad_tracking",
                        "jailbroken")
# What the SDKs keep of custom fields (GAState::validateAndCleanCustomFields, gameanalytics-sdk-cpp): at most
# 50 entries, keys of word characters up to 64, values a number, a boolean or a string of 1 to 256; they drop
# the rest (a null value too).
MAX_CUSTOM_FIELDS = 50
CUSTOM_FIELD_KEY = re.compile(r"[a-zA-Z0-9_]{1,64}")
MAX_CUSTOM_FIELD_STRING = 256
MAX_DIMENSION = 32  # a custom dimension value (GAValidator::validateCustomDimensions)
MAX_ERROR_MESSAGE = 8192
MAX_FUNCTION_NAME = 256  # an error event's function_name, trimmed to it (GAEvents::addErrorEvent)
MAX_USER_ID = 64  # configureUserId refuses longer ids (GA-SDK-JAVASCRIPT GameAnalytics.ts, validateUserId)


@dataclass(frozen=True)
class Lists:
    """A game's own lists (its settings): the custom dimension values, resource currencies and item types an
    event may use. An empty list checks nothing."""

    dimensions: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] = ((), (), ())
    currencies: tuple[str, ...] = ()
    item_types: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: GameAnalyticsSettings) -> Lists:
        return cls((settings.custom_dimensions_01, settings.custom_dimensions_02, settings.custom_dimensions_03),
                   settings.resource_currencies, settings.resource_item_types)


NO_LISTS = Lists()


def host_defaults() -> dict[str, str]:
    """Annotations for devices whose hello left them out: the machine the daemon runs on."""
    system = host_platform.system().lower()
    name = {"darwin": "mac_osx"}.get(system, system or "linux")
    version = re.match(r"[0-9]{1,5}(\.[0-9]{1,5}){0,2}", host_platform.release())
    release = version.group(0) if version else "0"
    return {"platform": name, "os_version": f"{name} {release}", "device": "unknown", "manufacturer": "unknown"}


def engine_version(engine: str | None, version: str | None) -> str | None:
    """The SDKs' `engine_version` annotation from a hello's `engine` and `engine_version` ("unity" and
    "2022.3.10f1" give "unity 2022.3.10"), or from a version that names its engine first (a dedicated
    server's player: "unity 2022.3.10f1"); None for an engine the SDKs do not name or a version without a
    leading number, which the SDKs leave out too."""
    if not version:
        return None
    text = version.strip()
    first, _, rest = text.partition(" ")
    if first.lower() in ENGINES and rest:
        name, text = first.lower(), rest
    elif engine and engine.lower() in ENGINES:
        name = engine.lower()
    else:
        return None
    number = _LEADING_VERSION.match(text)
    return f"{name} {number.group(0)}" if number else None


def event_uuid(device_id: str, client_ts: int, uid: str) -> str:
    """The event's `event_uuid`, derived from what makes it the same event in the store (device, time, id), so
    a resent event carries the same one. The SDKs draw a random UUID v4 per event; this one is shaped as a
    v4 too (the version nibble 4, the variant's two bits 10, as `uuid.UUID(bytes=..., version=4)` sets them, in
    half its time: this runs for every event sent), lower case."""
    text = hashlib.sha256(f"{device_id}\0{client_ts}\0{uid}".encode()).hexdigest()
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{_VARIANT[text[16]]}{text[17:20]}-{text[20:32]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # a hex digit's 2 low bits, as 10xx


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> TypeGuard[int | float]:
    return type(value) in (int, float) and math.isfinite(value)


class Refusal(str):
    """A broken rule, as text; `action` and `parameter` name it as the SDKs' own `sdk_error` events do
    (GAValidator in gameanalytics-sdk-cpp, EGASdkErrorAction and EGASdkErrorParameter in GA-SDK-JAVASCRIPT),
    None where no SDK reports it."""

    action: str | None = None
    parameter: str | None = None
    part: int | None = None  # an event id's part at fault (0 first), None for the count of parts


def refusal(text: str, action: str | None = None, parameter: str | None = None, part: int | None = None) -> Refusal:
    rule = Refusal(text)
    rule.action, rule.parameter, rule.part = action, parameter, part
    return rule


def _event_id_parts(value: Any, counts: tuple[int, ...]) -> tuple[str, ...] | Refusal:
    if not isinstance(value, str):
        return refusal("event_id: must be a string")
    return _string_id_parts(value, counts)


@functools.lru_cache(maxsize=4096)
def _string_id_parts(value: str, counts: tuple[int, ...]) -> tuple[str, ...] | Refusal:
    """An event id's parts, or the rule it breaks: remembered, as a game sends the same few ids again and again."""
    parts = tuple(value.split(":"))
    if len(parts) not in counts:
        return refusal(f"event_id: {value!r} must have {' or '.join(map(str, counts))} parts separated by ':'")
    for index, part in enumerate(parts):
        if not PART.fullmatch(part):
            return refusal(f"event_id: part {part!r} must match [A-Za-z0-9 -_.()!?]{{1,64}}", part=index)
    return parts


def _part_refusal(rule: Refusal, names: tuple[str | None, ...], count_action: str | None = None) -> Refusal:
    """An event id's refusal named as the SDKs name it: the part at fault, or the count of parts."""
    if rule.part is None:
        return refusal(rule, count_action, "event_id" if count_action else None)
    name = names[rule.part] if rule.part < len(names) else None
    return refusal(rule, "invalid_event_part_characters" if name else None, name, rule.part)


def check_category(event: dict[str, Any]) -> Refusal | None:
    """The category's own fields (what the engine sent): None if valid, else the rule broken."""
    category = event.get("category")
    if category == "design":
        parts = _event_id_parts(event.get("event_id"), (1, 2, 3, 4, 5))
        if isinstance(parts, Refusal):
            action = "invalid_event_id_length" if parts.part is None else "invalid_event_id_characters"
            return refusal(parts, action, "event_id")
        if "value" in event and not _is_number(event["value"]):
            return refusal("value: must be a finite number")
    elif category == "business":
        parts = _event_id_parts(event.get("event_id"), (2,))
        if isinstance(parts, Refusal):
            return _part_refusal(parts, ("item_type", "item_id"))
        if not _is_int(event.get("amount")) or event["amount"] < 0:
            return refusal("amount: must be an integer >= 0 (cents)", "invalid_amount", "amount")
        if not isinstance(event.get("currency"), str) or not CURRENCY.fullmatch(event["currency"]):
            return refusal("currency: must be three capital letters (ISO 4217), e.g. USD", "invalid_currency",
                           "currency")
        if not _is_int(event.get("transaction_num")) or event["transaction_num"] < 0:
            return refusal("transaction_num: must be an integer >= 0")
        if "cart_type" in event and (not isinstance(event["cart_type"], str) or len(event["cart_type"]) > 32):
            return refusal("cart_type: must be a string of at most 32 characters", "invalid_short_string",
                           "cart_type")
        receipt = event.get("receipt_info")
        if receipt is not None and (not isinstance(receipt, dict) or receipt.get("store") not in RECEIPT_STORES
                                    or not isinstance(receipt.get("receipt"), str)):
            return refusal("receipt_info: must be {receipt, store: apple or google_play, signature}",
                           "invalid_store", "store")
    elif category == "progression":
        parts = _event_id_parts(event.get("event_id"), (2, 3, 4))
        if isinstance(parts, Refusal):
            return _part_refusal(parts, ("progression_status", "progression01", "progression02", "progression03"),
                                 "wrong_progression_order")
        if parts[0] not in ("Start", "Fail", "Complete"):
            return refusal("event_id: must start with Start, Fail or Complete", "invalid_progression_status",
                           "progression_status")
        if parts[0] == "Complete" and not _is_int(event.get("attempt_num")):
            return refusal("attempt_num: an integer is required on Complete")  # a Fail is sent without (the SDKs)
        if "attempt_num" in event and (not _is_int(event["attempt_num"]) or event["attempt_num"] < 0):
            return refusal("attempt_num: must be an integer >= 0")
        if "score" in event and not _is_int(event["score"]):
            return refusal("score: must be an integer")
    elif category == "resource":
        parts = _event_id_parts(event.get("event_id"), (4,))
        if isinstance(parts, Refusal):
            return _part_refusal(parts, ("flow_type", "currency", "item_type", "item_id"))
        if parts[0] not in ("Source", "Sink"):
            return refusal("event_id: must start with Source or Sink", "invalid_flow_type", "flow_type")
        amount = event.get("amount")
        if not _is_number(amount) or amount == 0:
            return refusal("amount: must be a non-zero finite number", "invalid_amount", "amount")
        if (parts[0] == "Source") != (amount > 0):
            return refusal("amount: must be > 0 for Source and < 0 for Sink", "invalid_amount", "amount")
    elif category == "error":
        if event.get("severity") not in SEVERITIES:
            return refusal(f"severity: must be one of {', '.join(sorted(SEVERITIES))}", "invalid_severity",
                           "severity")
        message = event.get("message")
        if not isinstance(message, str) or len(message) > MAX_ERROR_MESSAGE:
            return refusal(f"message: must be a string of at most {MAX_ERROR_MESSAGE} characters",
                           "invalid_long_string", "message")
        if "function_name" in event and (not isinstance(event["function_name"], str)
                                         or not 1 <= len(event["function_name"]) <= MAX_FUNCTION_NAME):
            return refusal(f"function_name: must be a string of 1 to {MAX_FUNCTION_NAME} characters")
        if "line_number" in event and (not _is_int(event["line_number"]) or event["line_number"] < 0):
            return refusal("line_number: must be an integer >= 0")
    elif category == "ads":
        if event.get("ad_action") not in AD_ACTIONS:
            return refusal(f"ad_action: must be one of {', '.join(sorted(AD_ACTIONS))}")
        if event.get("ad_type") not in AD_TYPES:
            return refusal(f"ad_type: must be one of {', '.join(sorted(AD_TYPES))}")
        if not isinstance(event.get("ad_sdk_name"), str) or not AD_SDK.fullmatch(event["ad_sdk_name"]):
            return refusal("ad_sdk_name: must match [a-z0-9_]{1,32}")
        placement = event.get("ad_placement")
        if not isinstance(placement, str) or not 1 <= len(placement) <= 64:
            return refusal("ad_placement: must be a string of 1 to 64 characters")
        if "ad_duration" in event and (not _is_int(event["ad_duration"]) or event["ad_duration"] < 0):
            return refusal("ad_duration: must be an integer >= 0 (ms)")
        if "ad_fail_show_reason" in event and event["ad_fail_show_reason"] not in AD_FAIL_REASONS:
            return refusal(f"ad_fail_show_reason: must be one of {', '.join(sorted(AD_FAIL_REASONS))}")
    elif category == "impression":
        for name in ("ad_network_name", "ad_network_version"):
            value = event.get(name)
            if not isinstance(value, str) or not 1 <= len(value) <= 64:
                return refusal(f"{name}: must be a string of 1 to 64 characters")
        if not isinstance(event.get("impression_data"), dict):
            return refusal("impression_data: must be an object (the ad network's impression)")
    elif category == "session_end":
        if not _is_int(event.get("length")) or event["length"] < 0:
            return refusal("length: must be an integer >= 0")
    elif category != "user":
        return refusal(f"category: {category!r} is not a GameAnalytics category")
    custom_fields = event.get("custom_fields")
    if custom_fields is not None and (not isinstance(custom_fields, dict) or len(custom_fields) > MAX_CUSTOM_FIELDS):
        return refusal(f"custom_fields: must be an object of at most {MAX_CUSTOM_FIELDS} entries (the engine's "
                       "extra fields count too)")
    for name in ("custom_01", "custom_02", "custom_03"):
        if name in event and (not isinstance(event[name], str) or not 1 <= len(event[name]) <= MAX_DIMENSION):
            return refusal(f"{name}: must be a string of 1 to {MAX_DIMENSION} characters")
    if "connection_type" in event and event["connection_type"] not in CONNECTION_TYPES:
        return refusal(f"connection_type: must be one of {', '.join(sorted(CONNECTION_TYPES))}")
    return None


def check_lists(event: dict[str, Any], lists: Lists) -> Refusal | None:
    """The game's own lists, as the SDKs apply them before sending (GAValidator::validateDimension01..03 and
    validateResourceEvent in gameanalytics-sdk-cpp)."""
    for n, allowed in enumerate(lists.dimensions, 1):
        if allowed and (value := event.get(f"custom_0{n}")) is not None and value not in allowed:
            return refusal(f"custom_0{n}: {value!r} is not one of custom_dimensions_0{n} ({', '.join(allowed)})")
    if event.get("category") == "resource" and (lists.currencies or lists.item_types) \
            and isinstance(event_id := event.get("event_id"), str) and event_id.count(":") == 3:
        _, currency, item_type, _ = event_id.split(":")
        if lists.currencies and currency not in lists.currencies:
            return refusal(f"event_id: currency {currency!r} is not one of resource_currencies "
                           f"({', '.join(lists.currencies)})", "not_found_in_available_currencies", "currency")
        if lists.item_types and item_type not in lists.item_types:
            return refusal(f"event_id: item type {item_type!r} is not one of resource_item_types "
                           f"({', '.join(lists.item_types)})", "not_found_in_available_item_types", "item_type")
    return None


def check_stamp(event: dict[str, Any]) -> str | None:
    """The annotations each event carries of its own: the protocol's version, its time, its id."""
    if event.get("v") != 2:
        return "v: must be 2"
    if not _is_int(event.get("client_ts")):
        return "client_ts: must be integer epoch seconds"
    if event.get("sdk_version") != SDK_VERSION:
        return f"sdk_version: must be {SDK_VERSION!r}"
    if "event_uuid" in event and (not isinstance(event["event_uuid"], str)
                                  or not EVENT_UUID.fullmatch(event["event_uuid"])):
        return "event_uuid: must be a lower-case UUID v4"
    return None


def check_player(event: dict[str, Any]) -> str | None:
    """The annotations of the event's player, device and session (`player_annotations`): the same for every
    event of theirs."""
    if not isinstance(event.get("user_id"), str) or not 1 <= len(event["user_id"]) <= MAX_USER_ID:
        return f"user_id: required, at most {MAX_USER_ID} characters"
    if not isinstance(event.get("os_version"), str) or not OS_VERSION.fullmatch(event["os_version"]):
        return "os_version: must be the platform name, a space and a numeric version, e.g. 'windows 10'"
    for name in ("manufacturer", "device"):
        if not isinstance(event.get(name), str) or len(event[name]) > 64:
            return f"{name}: must be a string of at most 64 characters"
    plat = event.get("platform")
    if not isinstance(plat, str) or not plat or plat != plat.lower():
        return "platform: must be a lower-case platform name, e.g. windows"
    if not isinstance(event.get("session_id"), str) or not SESSION_ID.fullmatch(event["session_id"]):
        return "session_id: must be a lower-case UUID v4"
    if not _is_int(event.get("session_num")) or event["session_num"] < 1:
        return "session_num: must be an integer >= 1"
    if "engine_version" in event and (not isinstance(event["engine_version"], str)
                                      or not ENGINE_VERSION.fullmatch(event["engine_version"])):
        return f"engine_version: must be one of {', '.join(ENGINES)}, a space and a numeric version"
    return _check_configurations(event.get("configurations_v3"))


def _check_configurations(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, dict) and isinstance(c.get("key"), str) and c["key"]
                                              for c in value):
        return "configurations_v3: must be a list of {key, id, vsn}"
    return None


def clean_custom_fields(fields: dict[str, Any], dropped: list[str] | None = None) -> dict[str, Any]:
    """The custom fields the SDKs would keep, in order; the keys of the others go to `dropped`."""
    kept: dict[str, Any] = {}
    for key, value in fields.items():
        if (value is not None and len(kept) < MAX_CUSTOM_FIELDS and CUSTOM_FIELD_KEY.fullmatch(key)
                and (type(value) is bool or _is_number(value)
                     or isinstance(value, str) and 1 <= len(value) <= MAX_CUSTOM_FIELD_STRING)):
            kept[key] = value
        elif dropped is not None:
            dropped.append(key)
    return kept


def category_fields(category: str, fields: dict[str, Any], dropped: list[str] | None = None) -> dict[str, Any]:
    """The engine's fields as GameAnalytics names them: Sink amounts go negative, sessions get their names,
    fields the category does not define travel in custom_fields, cleaned as the SDKs clean them (the keys
    left out go to `dropped`)."""
    if category == SESSION_START:
        return {"category": "user"}
    if category == SESSION_END:
        return {"category": "session_end", "length": fields.get("length", 0)}
    known = CATEGORY_FIELDS.get(category, ())
    out: dict[str, Any] = {"category": category}
    extra: dict[str, Any] = dict(fields.get("custom_fields") or {})
    for key, value in fields.items():
        if key in known or key in OPTIONAL_ANNOTATIONS:
            out[key] = value
        elif key != "custom_fields":
            extra[key] = value
    if category == "ads":
        _ad_fields(out, extra)
    elif category == "error":
        _error_fields(out, extra)
    extra = clean_custom_fields(extra, dropped)
    if extra:
        out["custom_fields"] = extra
    if category == "resource":
        amount, event_id = out.get("amount"), out.get("event_id")
        if isinstance(event_id, str) and event_id.startswith("Sink:") and _is_number(amount) and amount > 0:
            out["amount"] = -amount
    return out


def _ad_fields(out: dict[str, Any], extra: dict[str, Any]) -> None:
    """An ad event as the SDKs send it: the failure reason on failed_show only, the duration for video ads
    only (the rest stays in custom_fields); `ad_fb_error`, protocol v1's name for the reason, read as it."""
    legacy = extra.pop("ad_fb_error", None)
    if legacy is not None:
        if "ad_fail_show_reason" in out:
            extra["ad_fb_error"] = legacy
        else:
            out["ad_fail_show_reason"] = legacy
    if "ad_fail_show_reason" in out and out.get("ad_action") != "failed_show":
        extra["ad_fail_show_reason"] = out.pop("ad_fail_show_reason")
    if "ad_duration" in out and out.get("ad_type") not in VIDEO_AD_TYPES:
        extra["ad_duration"] = out.pop("ad_duration")


def _error_fields(out: dict[str, Any], extra: dict[str, Any]) -> None:
    """An error event's function name trimmed to 256 characters, and its line only with a function name
    (GAEvents::addErrorEvent in gameanalytics-sdk-cpp)."""
    function = out.get("function_name")
    if isinstance(function, str) and len(function) > MAX_FUNCTION_NAME:
        out["function_name"] = function[:MAX_FUNCTION_NAME]
    if "line_number" in out and "function_name" not in out:
        extra["line_number"] = out.pop("line_number")


# What makes two stored events' `player_annotations` the same (with their player's A/B ids): a batch holds one
# player's events, mostly of one session, so their annotations are built and checked once.
ANNOTATED_BY = attrgetter("user_id", "session_id", "session_num", "platform", "os_version", "device",
                          "manufacturer", "game_build", "engine", "engine_version", "ip_ads")


def player_annotations(ev: StoredEvent, defaults: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    """The default annotations of an event's player, device and session, with `extra` (the player's A/B ids
    and configs)."""
    out: dict[str, Any] = {
        "v": 2,
        "user_id": ev.user_id,
        "sdk_version": SDK_VERSION,
        "os_version": ev.os_version or defaults["os_version"],
        "manufacturer": ev.manufacturer or defaults["manufacturer"],
        "device": ev.device or defaults["device"],
        "platform": ev.platform or defaults["platform"],
        "session_id": ev.session_id,
        "session_num": ev.session_num,
        "build": ev.game_build,
    }
    engine = engine_version(ev.engine, ev.engine_version)
    if engine:
        out["engine_version"] = engine
    out.update(extra)
    if not ev.ip_ads:  # the player withheld their IP address and advertising ids: ad tracking limited
        out["limit_ad_tracking"] = True
    return out


def collector_event(ev: StoredEvent, offset_s: int, annotations: dict[str, Any],
                    dropped: list[str] | None = None) -> dict[str, Any]:
    """One stored event as the collector's JSON object: its category's fields, its player's annotations
    (`player_annotations`) and its own."""
    body = category_fields(ev.category, ev.fields, dropped)
    body.update(annotations)
    body["client_ts"] = ev.client_ts // 1000 + offset_s
    body["event_uuid"] = event_uuid(ev.device_id, ev.client_ts, ev.uid)
    return body


def to_collector(ev: StoredEvent, offset_s: int, defaults: dict[str, str], extra: dict[str, Any],
                 dropped: list[str] | None = None) -> dict[str, Any]:
    """One stored event as the collector's JSON object, its annotations built for it alone."""
    return collector_event(ev, offset_s, player_annotations(ev, defaults, extra), dropped)


# The SDKs report their own refusals of a game's events as `sdk_error` events (GAHTTPApi::sendSdkErrorEvent in
# gameanalytics-sdk-cpp, SdkErrorTask.ts in GA-SDK-JAVASCRIPT): for these areas only (an ad event's has no
# name there, so it is never sent), at most 10 of a type (category and area) in a while, the reason cut to 256.
SDK_ERROR_AREAS = frozenset({"business", "resource", "progression", "design", "error"})
MAX_SDK_ERRORS = 10
MAX_SDK_ERROR_REASON = 256
# What an sdk_error carries of the device (GAState::getSdkErrorEventAnnotations): no user, session or time.
SDK_ERROR_ANNOTATIONS = ("os_version", "manufacturer", "device", "platform", "connection_type", "build",
                         "engine_version")


def sdk_error(ev: StoredEvent, body: dict[str, Any], rule: str) -> dict[str, Any] | None:
    """The `sdk_error` event the SDKs would send for `body` refused by `rule`, or None where they send none."""
    area = body.get("category")
    action = rule.action if isinstance(rule, Refusal) else None
    if area not in SDK_ERROR_AREAS or action is None:
        return None
    out: dict[str, Any] = {"v": 2, "event_uuid": event_uuid(ev.device_id, ev.client_ts, f"{ev.uid}/sdk_error"),
                           "category": "sdk_error", "sdk_version": SDK_VERSION}
    out.update((name, body[name]) for name in SDK_ERROR_ANNOTATIONS if name in body)
    out.update({"error_category": "event_validation", "error_area": area, "error_action": action})
    if isinstance(rule, Refusal) and rule.parameter:
        out["error_parameter"] = rule.parameter
    out["reason"] = str(rule)[:MAX_SDK_ERROR_REASON]
    return out


def check_event(event: dict[str, Any], lists: Lists = NO_LISTS) -> str | None:
    """The rules of what is the event's own: its category's fields, the game's lists, its stamp."""
    return check_category(event) or check_lists(event, lists) or check_stamp(event)


def check(event: dict[str, Any], lists: Lists = NO_LISTS) -> str | None:
    """Every rule: the event's own, then its player's annotations."""
    return check_event(event, lists) or check_player(event)
