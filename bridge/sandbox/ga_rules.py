"""GameAnalytics event rules as plain data, and the sandbox's own validator over them.

The rules come from the GameAnalytics fact sheet (`/work/shared/providers/gameanalytics.md`) and the
Collection API page. They are data on purpose: the sandbox validator below and the dispatcher's validator
(written separately) both read the same table, so a test can check one against the other without the two
sharing a code path.

The table
---------
`ANNOTATIONS`  field name → `Rule`, the default annotations every event carries (plus `category`).
`ANNOTATIONS_OF` category name → annotations, for a category whose own differ (`sdk_error`).
`CATEGORIES`   category name → {field name → `Rule`}, the fields of that category beyond the annotations.
`CONDITIONS`   category name → `Condition`s: extra constraints that depend on a part of `event_id`.
`STRICT_EVENTS` whether a field named in neither `ANNOTATIONS` nor the event's category is refused.
`INIT_FIELDS`, `REMOTE_CONFIGS_INIT_FIELDS`  the JSON bodies of the two init routes (unknown keys allowed).

A `Rule` is a dict with these keys (all optional except `kind`):

| key | applies to | meaning |
| --- | --- | --- |
| `kind` | all | `string`, `integer`, `number`, `boolean`, `scalar`, `object`, `array` or `event_id` (see below) |
| `required` | all | the field must be present |
| `one_of` | string, integer | the value must be one of these |
| `pattern` | string | the whole value must match this regular expression |
| `min_len`, `max_len` | string | length in characters, inclusive |
| `minimum`, `maximum` | integer, number | inclusive bounds |
| `exclusive_minimum`, `exclusive_maximum` | integer, number | exclusive bounds |
| `max_entries` | object, array | at most this many keys (items) |
| `fields` | object | the object's own fields (a nested table); other keys are refused |
| `items` | array | the rule every item follows |
| `key_pattern` | object | every key matches this regular expression (an object without `fields`) |
| `values` | object | the rule every value follows (an object without `fields`) |
| `parts` | event_id | (fewest, most) parts, the first part included |
| `first_part` | event_id | the first part must be one of these; every other part matches `EVENT_ID_PART` |

`integer` is a JSON integer (never `true`, never `5.0`); `number` is an integer or a finite float; `scalar` is a
number, `true`/`false` or a string (within `min_len`, `max_len`); `event_id` is a
string of `:`-separated parts, each matching `EVENT_ID_PART` (after `first_part`, when there is one).

A `Condition` says: when part `event_id_part` of the event's `event_id` is one of `is_one_of`, the rule of
`field` is the field's table rule updated with `rule` (for example `{"required": True}`).

Errors
------
The validator reports every broken rule as `(error_type, path, detail)`. `path` is a JSON Pointer
(RFC 6901) into the event, e.g. `/currency` or `/receipt_info/store`; `""` is the event itself. The
collector's 400 answer carries `error_type` and `path`; `detail` is for people (the sandbox's log and admin
routes). The error types, chosen to read like the collector's troubleshooting page:

| error_type | when |
| --- | --- |
| `not_an_object` | the event is not a JSON object |
| `required` | a required field is absent |
| `invalid_type` | the JSON type is wrong (a string where an integer belongs, `true` for an integer, ...) |
| `not_in_range` | a value outside its bounds or not in its set (`one_of`), a non-finite number |
| `regex_no_match` | a string not matching its pattern; an `event_id` with a bad part, count of parts or first part |
| `invalid_length` | a string shorter than `min_len` or longer than `max_len` (checked before `pattern`) |
| `too_many_entries` | an object with more than `max_entries` keys |
| `unknown_field` | a field the event's category does not define (with `STRICT_EVENTS`) |

Assumptions (marked *assumption* below) fill gaps the fact sheet leaves; they are ours, not GameAnalytics'.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypedDict

Kind = Literal["string", "integer", "number", "boolean", "scalar", "object", "array", "event_id"]


class Rule(TypedDict, total=False):
    """One field's constraints; see the module docstring for each key."""

    kind: Kind
    required: bool
    one_of: tuple[Any, ...]
    pattern: str
    min_len: int
    max_len: int
    minimum: float
    maximum: float
    exclusive_minimum: float
    exclusive_maximum: float
    max_entries: int
    fields: Mapping[str, Rule]
    items: Rule
    key_pattern: str
    values: Rule
    parts: tuple[int, int]
    first_part: tuple[str, ...]


class Condition(TypedDict):
    """A rule that holds only when one part of `event_id` takes one of some values."""

    event_id_part: int
    is_one_of: tuple[str, ...]
    field: str
    rule: Rule


# ---------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------

EVENT_ID_PART = r"^[A-Za-z0-9\s\-_\.\(\)\!\?]{1,64}$"
SESSION_ID = r"^[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}$"
PLATFORM = r"^[a-z0-9_]{1,32}$"
# Platform name, a space, a version of up to three numeric groups: "ios 8.1", "android 4.4.4", "windows 10".
OS_VERSION = r"^[a-z0-9_]{1,32} [0-9]{1,5}(\.[0-9]{1,5}){0,2}$"
CURRENCY = r"^[A-Z]{3}$"
AD_SDK_NAME = r"^[a-z0-9_]{1,32}$"
# What the SDKs accept for a game engine's version (GAValidator::validateEngineVersion, gameanalytics-sdk-cpp):
# one of their engines, a space, up to three numeric groups. *assumption*: the collector refuses others too.
ENGINE_VERSION = r"^(unity|unreal|corona|cocos2d|lumberyard|gamemaker|defold|godot) [0-9]{0,5}(\.[0-9]{0,5}){0,2}$"

SDK_VERSION = "rest api v2"
EVENT_VERSION = 2
# Epoch seconds have 10 or 11 digits until the year 5138; milliseconds (13 digits) are refused.
CLIENT_TS_MIN = 1_000_000_000
CLIENT_TS_MAX = 99_999_999_999

CATEGORY_NAMES = ("user", "session_end", "business", "resource", "progression", "design", "error", "ads",
                  "impression", "sdk_error")

ANNOTATIONS: Mapping[str, Rule] = {
    "category": {"kind": "string", "required": True, "one_of": CATEGORY_NAMES},
    "v": {"kind": "integer", "required": True, "one_of": (EVENT_VERSION,)},
    # The SDKs refuse a user id above 64 characters (configureUserId: "Cannot be null, empty or above 64
    # length"). *assumption*: so does the collector.
    "user_id": {"kind": "string", "required": True, "min_len": 1, "max_len": 64},
    "client_ts": {"kind": "integer", "required": True, "minimum": CLIENT_TS_MIN, "maximum": CLIENT_TS_MAX},
    "sdk_version": {"kind": "string", "required": True, "one_of": (SDK_VERSION,)},
    "os_version": {"kind": "string", "required": True, "pattern": OS_VERSION},
    "manufacturer": {"kind": "string", "required": True, "min_len": 1, "max_len": 64},
    "device": {"kind": "string", "required": True, "min_len": 1, "max_len": 64},
    "platform": {"kind": "string", "required": True, "pattern": PLATFORM},
    "session_id": {"kind": "string", "required": True, "pattern": SESSION_ID},
    "session_num": {"kind": "integer", "required": True, "minimum": 1},
    # Optional annotations. Lengths: build and engine_version as protocol v1 bounds them; the others are an
    # *assumption* (1 to 64 characters) where the fact sheet names the field without a limit.
    "build": {"kind": "string", "min_len": 1, "max_len": 32},
    "engine_version": {"kind": "string", "min_len": 1, "max_len": 64, "pattern": ENGINE_VERSION},
    # Sent by the current SDKs on every event (GAState::getEventAnnotations): a random UUID per event.
    # *assumption*: a lower-case UUID v4, as session_id.
    "event_uuid": {"kind": "string", "pattern": SESSION_ID},
    # The remote configs in effect, as the current SDKs tag events when they asked with config_vsn_supported=3
    # (GAState::buildRemoteConfigsJsons): key, id and vsn of each. *assumption*: id a string, vsn an integer.
    "configurations_v3": {"kind": "array", "max_entries": 100, "items": {"kind": "object", "fields": {
        "key": {"kind": "string", "required": True, "min_len": 1, "max_len": 128},
        "id": {"kind": "string", "min_len": 1, "max_len": 128},
        "vsn": {"kind": "integer", "minimum": 0},
    }}},
    "connection_type": {"kind": "string", "one_of": ("offline", "wwan", "wifi", "lan")},
    # A custom dimension value is one the game configured, each at most 32 characters
    # (GAValidator::validateCustomDimensions, gameanalytics-sdk-cpp); the game's own lists: validate_lists.
    "custom_01": {"kind": "string", "min_len": 1, "max_len": 32},
    "custom_02": {"kind": "string", "min_len": 1, "max_len": 32},
    "custom_03": {"kind": "string", "min_len": 1, "max_len": 32},
    "ab_id": {"kind": "string", "min_len": 1, "max_len": 64},
    "ab_variant_id": {"kind": "string", "min_len": 1, "max_len": 64},
    "limit_ad_tracking": {"kind": "boolean"},
    "jailbroken": {"kind": "boolean"},
    "progression": {"kind": "string", "min_len": 1, "max_len": 255},  # *assumption*: up to 3 joined parts
    # What the SDKs keep of custom fields (GAState::validateAndCleanCustomFields, gameanalytics-sdk-cpp): at
    # most 50, keys of word characters up to 64, values a number, a boolean or a string of 1 to 256
    # characters; they drop the others. *assumption*: the collector refuses what the SDKs drop.
    "custom_fields": {"kind": "object", "max_entries": 50, "key_pattern": r"^[a-zA-Z0-9_]{1,64}$",
                      "values": {"kind": "scalar", "min_len": 1, "max_len": 256}},
}


# The SDKs' reports of their own refusals and failures (GAHTTPApi::sendSdkErrorEvent and the strings of
# GAHTTPApi.h in gameanalytics-sdk-cpp; EGASdkError* in GA-SDK-JAVASCRIPT's Enums.ts).
SDK_ERROR_CATEGORIES = ("event_validation", "db", "init", "http", "json")
SDK_ERROR_AREAS = ("business", "resource", "progression", "design", "error", "init_http", "events_http",
                   "process_events", "add_events_to_store")
SDK_ERROR_ACTIONS = (
    "invalid_currency", "invalid_short_string", "invalid_event_part_length", "invalid_event_part_characters",
    "invalid_store", "invalid_flow_type", "string_empty_or_null", "not_found_in_available_currencies",
    "invalid_amount", "not_found_in_available_item_types", "wrong_progression_order", "invalid_event_id_length",
    "invalid_event_id_characters", "invalid_progression_status", "invalid_severity", "invalid_long_string",
    "db_too_large", "db_open_or_create", "json_error", "fail_http_json_decode", "fail_http_json_encode")
SDK_ERROR_PARAMETERS = ("currency", "cart_type", "item_type", "item_id", "store", "flow_type", "amount",
                        "progression01", "progression02", "progression03", "event_id", "progression_status",
                        "severity", "message")

CATEGORIES: Mapping[str, Mapping[str, Rule]] = {
    "user": {},
    "session_end": {
        "length": {"kind": "integer", "required": True, "minimum": 0},
    },
    "business": {
        "event_id": {"kind": "event_id", "required": True, "parts": (2, 2)},
        "amount": {"kind": "integer", "required": True, "minimum": 0},  # "Cannot be less than 0" (the SDKs)
        "currency": {"kind": "string", "required": True, "pattern": CURRENCY},
        "transaction_num": {"kind": "integer", "required": True, "minimum": 0},
        "cart_type": {"kind": "string", "min_len": 1, "max_len": 32},
        "receipt_info": {"kind": "object", "fields": {
            "receipt": {"kind": "string", "required": True, "min_len": 1},
            "store": {"kind": "string", "required": True, "one_of": ("apple", "google_play")},
            "signature": {"kind": "string", "min_len": 1},
        }},
    },
    "resource": {
        "event_id": {"kind": "event_id", "required": True, "parts": (4, 4), "first_part": ("Source", "Sink")},
        "amount": {"kind": "number", "required": True},
    },
    "progression": {
        "event_id": {"kind": "event_id", "required": True, "parts": (2, 4),
                     "first_part": ("Start", "Fail", "Complete")},
        "attempt_num": {"kind": "integer"},
        "score": {"kind": "integer"},
    },
    "design": {
        "event_id": {"kind": "event_id", "required": True, "parts": (1, 5)},
        "value": {"kind": "number"},
    },
    "error": {
        "severity": {"kind": "string", "required": True,
                     "one_of": ("debug", "info", "warning", "error", "critical")},
        "message": {"kind": "string", "required": True, "max_len": 8192},
        # Where the error was raised, as the C++ SDK sends it (GAEvents::addErrorEvent, trimmed to 256).
        "function_name": {"kind": "string", "min_len": 1, "max_len": 256},
        "line_number": {"kind": "integer", "minimum": 0},
    },
    # The values the SDKs send (GAAdAction, GAAdType, GAAdError in GA-SDK-UNITY's Enums.cs). They send the
    # reason on failed_show and the duration for video ads only; *assumption*: the collector does not refuse
    # either elsewhere (these rules do not say so).
    "ads": {
        "ad_action": {"kind": "string", "required": True,
                      "one_of": ("clicked", "show", "failed_show", "reward_received", "request", "loaded")},
        "ad_type": {"kind": "string", "required": True,
                    "one_of": ("video", "rewarded_video", "playable", "interstitial", "offer_wall", "banner",
                               "app_open")},
        "ad_sdk_name": {"kind": "string", "required": True, "pattern": AD_SDK_NAME},
        "ad_placement": {"kind": "string", "required": True, "min_len": 1, "max_len": 64},
        "ad_duration": {"kind": "integer", "minimum": 0},
        "ad_fail_show_reason": {"kind": "string", "one_of": ("unknown", "offline", "no_fill", "internal_error",
                                                            "invalid_request", "unable_to_precache")},
    },
    # Ad revenue (the SDKs' addImpressionEvent, GA-SDK-UNITY's iOS and Android SDKs): the ad network's name and
    # version and its impression data. *assumption*: names and versions of 1 to 64 characters; the data an object
    # of whatever the network reports.
    "impression": {
        "ad_network_name": {"kind": "string", "required": True, "min_len": 1, "max_len": 64},
        "ad_network_version": {"kind": "string", "required": True, "min_len": 1, "max_len": 64},
        "impression_data": {"kind": "object", "required": True},
    },
    # An SDK's report of its own refusals and failures (see SDK_ERROR_CATEGORIES).
    "sdk_error": {
        "error_category": {"kind": "string", "required": True, "one_of": SDK_ERROR_CATEGORIES},
        "error_area": {"kind": "string", "required": True, "one_of": SDK_ERROR_AREAS},
        "error_action": {"kind": "string", "required": True, "one_of": SDK_ERROR_ACTIONS},
        "error_parameter": {"kind": "string", "one_of": SDK_ERROR_PARAMETERS},
        "reason": {"kind": "string", "max_len": 256},
    },
}

# A category whose annotations differ from ANNOTATIONS: an sdk_error carries the device, but no user, session
# or time (GAState::getSdkErrorEventAnnotations). *assumption*: the collector takes them when present.
ANNOTATIONS_OF: Mapping[str, Mapping[str, Rule]] = {
    "sdk_error": {name: {**rule, "required": False} if name in ("user_id", "client_ts", "session_id", "session_num")
                  else rule for name, rule in ANNOTATIONS.items()},
}

CONDITIONS: Mapping[str, tuple[Condition, ...]] = {
    "resource": (
        {"event_id_part": 0, "is_one_of": ("Source",), "field": "amount", "rule": {"exclusive_minimum": 0}},
        {"event_id_part": 0, "is_one_of": ("Sink",), "field": "amount", "rule": {"exclusive_maximum": 0}},
    ),
    # The SDKs send attempt_num on Complete and never on Fail (GAEvents::addProgressionEvent,
    # gameanalytics-sdk-cpp; Events.lua, GA-SDK-ROBLOX). *assumption*: the collector requires it on Complete.
    "progression": (
        {"event_id_part": 0, "is_one_of": ("Complete",), "field": "attempt_num", "rule": {"required": True}},
    ),
}

STRICT_EVENTS = True

INIT_FIELDS: Mapping[str, Rule] = {
    "platform": {**ANNOTATIONS["platform"], "required": True},
    "os_version": {**ANNOTATIONS["os_version"], "required": True},
    "sdk_version": {**ANNOTATIONS["sdk_version"], "required": True},
}

REMOTE_CONFIGS_INIT_FIELDS: Mapping[str, Rule] = {
    **INIT_FIELDS,
    "user_id": {**ANNOTATIONS["user_id"], "required": True},  # A/B enrolment is per user
    "build": ANNOTATIONS["build"],
}


# ---------------------------------------------------------------------------------------------------
# The sandbox's validator: the table compiled once into small closures, so that checking an event costs a
# dictionary walk and a few type tests (the sandbox takes ~20,000 events/s).
# ---------------------------------------------------------------------------------------------------

Error = tuple[str, str, str]
"""(error_type, JSON Pointer path, detail for people)."""

_Check = Callable[[Any, list[Error]], None]
_MISSING = "required field is missing"


def _pointer(parent: str, key: str) -> str:
    """RFC 6901 path of `key` inside `parent`."""
    return f"{parent}/{key.replace('~', '~0').replace('/', '~1')}"


def _bounds_check(rule: Rule, path: str, note: str) -> Callable[[float, list[Error]], None] | None:
    """The numeric bound tests of a rule, or None when it has none."""
    tests: list[tuple[Callable[[float], bool], str]] = []
    if "minimum" in rule:
        low = rule["minimum"]
        tests.append((lambda v: v >= low, f"must be >= {low}{note}"))
    if "maximum" in rule:
        high = rule["maximum"]
        tests.append((lambda v: v <= high, f"must be <= {high}{note}"))
    if "exclusive_minimum" in rule:
        xlow = rule["exclusive_minimum"]
        tests.append((lambda v: v > xlow, f"must be > {xlow}{note}"))
    if "exclusive_maximum" in rule:
        xhigh = rule["exclusive_maximum"]
        tests.append((lambda v: v < xhigh, f"must be < {xhigh}{note}"))
    if not tests:
        return None

    def check(value: float, errors: list[Error]) -> None:
        for test, detail in tests:
            if not test(value):
                errors.append(("not_in_range", path, detail))
                return

    return check


def _compile_integer(rule: Rule, path: str, note: str) -> _Check:
    one_of = frozenset(rule.get("one_of", ()))
    one_of_detail = f"must be one of {sorted(one_of)}{note}"
    bounds = _bounds_check(rule, path, note)

    def check(value: Any, errors: list[Error]) -> None:
        if type(value) is not int:
            errors.append(("invalid_type", path, "must be an integer"))
        elif one_of and value not in one_of:
            errors.append(("not_in_range", path, one_of_detail))
        elif bounds is not None:
            bounds(value, errors)

    return check


def _compile_number(rule: Rule, path: str, note: str) -> _Check:
    bounds = _bounds_check(rule, path, note)

    def check(value: Any, errors: list[Error]) -> None:
        kind = type(value)
        if kind is not int and kind is not float:
            errors.append(("invalid_type", path, "must be a number"))
        elif kind is float and not math.isfinite(value):
            errors.append(("not_in_range", path, "must be finite"))
        elif bounds is not None:
            bounds(value, errors)

    return check


def _compile_string(rule: Rule, path: str, note: str) -> _Check:
    one_of = frozenset(rule.get("one_of", ()))
    one_of_detail = f"must be one of {', '.join(sorted(one_of))}{note}"
    regex = re.compile(rule["pattern"]) if "pattern" in rule else None
    regex_detail = f"must match {rule.get('pattern')}{note}"
    low = rule.get("min_len", 0)
    high = rule.get("max_len", math.inf)
    if high == math.inf:
        length_detail = f"must have at least {low} characters{note}"
    else:
        length_detail = f"must have {low} to {high} characters{note}"

    def check(value: Any, errors: list[Error]) -> None:
        if type(value) is not str:
            errors.append(("invalid_type", path, "must be a string"))
        elif one_of and value not in one_of:
            errors.append(("not_in_range", path, one_of_detail))
        elif not low <= len(value) <= high:
            errors.append(("invalid_length", path, length_detail))
        elif regex is not None and regex.fullmatch(value) is None:
            errors.append(("regex_no_match", path, regex_detail))

    return check


def _compile_boolean(rule: Rule, path: str, note: str) -> _Check:
    def check(value: Any, errors: list[Error]) -> None:
        if type(value) is not bool:
            errors.append(("invalid_type", path, "must be true or false"))

    return check


def _compile_scalar(rule: Rule, path: str, note: str) -> _Check:
    text = _compile_string(rule, path, note)

    def check(value: Any, errors: list[Error]) -> None:
        kind = type(value)
        if kind is str:
            text(value, errors)
        elif kind is float and not math.isfinite(value):
            errors.append(("not_in_range", path, "must be finite"))
        elif kind not in (int, float, bool):
            errors.append(("invalid_type", path, "must be a number, true or false, or a string"))

    return check


def _compile_event_id(rule: Rule, path: str, note: str) -> _Check:
    fewest, most = rule["parts"]
    first = frozenset(rule.get("first_part", ()))
    part = re.compile(EVENT_ID_PART)
    shape = f"{' | '.join(sorted(first))}:" if first else ""
    count_detail = f"must have {fewest} to {most} ':'-separated parts ({shape}part...){note}"
    first_detail = f"first part must be one of {', '.join(sorted(first))}{note}"
    part_detail = f"every part must match {EVENT_ID_PART}{note}"

    def check(value: Any, errors: list[Error]) -> None:
        if type(value) is not str:
            errors.append(("invalid_type", path, "must be a string"))
            return
        parts = value.split(":")
        if not fewest <= len(parts) <= most:
            errors.append(("regex_no_match", path, count_detail))
        elif first and parts[0] not in first:
            errors.append(("regex_no_match", path, first_detail))
        else:
            for item in parts[1:] if first else parts:
                if part.fullmatch(item) is None:
                    errors.append(("regex_no_match", path, part_detail))
                    return

    return check


class _CompiledObject:
    """An object's field checks, its required fields and (for categories) its conditional rules."""

    __slots__ = ("checks", "conditions", "max_entries", "path", "required", "strict")

    def __init__(self, fields: Mapping[str, Rule], path: str, strict: bool,
                 conditions: tuple[Condition, ...] = (), max_entries: int | None = None) -> None:
        self.path = path
        self.checks = {name: _compile(rule, _pointer(path, name)) for name, rule in fields.items()}
        self.required = tuple(name for name, rule in fields.items() if rule.get("required"))
        self.strict = strict
        self.max_entries = max_entries
        # (part index, values, field, check, required) for each condition, compiled over the base rule.
        self.conditions = tuple(
            (c["event_id_part"], frozenset(c["is_one_of"]), c["field"],
             _compile({**fields[c["field"]], **c["rule"]}, _pointer(path, c["field"]), _condition_note(c)),
             bool(c["rule"].get("required", fields[c["field"]].get("required"))))
            for c in conditions
        )

    def check(self, value: Any, errors: list[Error]) -> None:
        if type(value) is not dict:
            errors.append(("invalid_type" if self.path else "not_an_object", self.path, "must be a JSON object"))
            return
        if self.max_entries is not None and len(value) > self.max_entries:
            errors.append(("too_many_entries", self.path, f"must have at most {self.max_entries} entries"))
        checks = self.checks
        required = self.required
        if self.conditions:
            checks, required = self._conditional(value)
        for key, item in value.items():
            check = checks.get(key)
            if check is not None:
                check(item, errors)
            elif self.strict:
                errors.append(("unknown_field", _pointer(self.path, key),
                               f"not a field of {self.path or 'this event'}"))
        for name in required:
            if name not in value:
                errors.append(("required", _pointer(self.path, name), _MISSING))

    def _conditional(self, value: dict[str, Any]) -> tuple[dict[str, _Check], tuple[str, ...]]:
        """The checks and required fields once the conditions that hold for this event_id are applied."""
        event_id = value.get("event_id")
        if type(event_id) is not str:
            return self.checks, self.required
        parts = event_id.split(":")
        checks, required = self.checks, self.required
        for index, values, name, check, is_required in self.conditions:
            if index < len(parts) and parts[index] in values:
                if checks is self.checks:
                    checks = dict(checks)
                checks[name] = check
                if is_required and name not in required:
                    required = (*required, name)
        return checks, required


def _condition_note(condition: Condition) -> str:
    """How a detail names the condition it comes from, e.g. " when event_id starts with Sink"."""
    values = "/".join(condition["is_one_of"])
    index = condition["event_id_part"]
    return f" when event_id starts with {values}" if index == 0 else f" when event_id part {index + 1} is {values}"


def _compile_object(rule: Rule, path: str, note: str) -> _Check:
    fields = rule.get("fields")
    if fields is None and ("key_pattern" in rule or "values" in rule):
        return _compile_map(rule, path, note)
    return _CompiledObject(fields or {}, path, strict=fields is not None,
                           max_entries=rule.get("max_entries")).check


def _compile_map(rule: Rule, path: str, note: str) -> _Check:
    """An object of free keys: a bound on entries, a pattern for each key, a rule for each value."""
    most = rule.get("max_entries")
    key = re.compile(rule["key_pattern"]) if "key_pattern" in rule else None
    key_detail = f"keys must match {rule.get('key_pattern')}"
    values = rule.get("values")
    per_key: dict[str, _Check] = {}  # a value's check names its key in the path; compiled once per key

    def check(value: Any, errors: list[Error]) -> None:
        if type(value) is not dict:
            errors.append(("invalid_type", path, "must be a JSON object"))
            return
        if most is not None and len(value) > most:
            errors.append(("too_many_entries", path, f"must have at most {most} entries"))
        for name, item in value.items():
            where = _pointer(path, name)
            if key is not None and key.fullmatch(name) is None:
                errors.append(("regex_no_match", where, key_detail))
            elif values is not None:
                each = per_key.get(name)
                if each is None:
                    if len(per_key) > 10_000:  # keys are the game's own: bound the cache
                        per_key.clear()
                    each = per_key[name] = _compile(values, where)
                each(item, errors)

    return check


def _compile_array(rule: Rule, path: str, note: str) -> _Check:
    most = rule.get("max_entries", 100)
    items = rule.get("items")
    # One check per index, compiled once: an error's path names the item.
    item_checks = [_compile(items, f"{path}/{i}") for i in range(most)] if items is not None else []

    def check(value: Any, errors: list[Error]) -> None:
        if type(value) is not list:
            errors.append(("invalid_type", path, "must be a JSON array"))
        elif len(value) > most:
            errors.append(("too_many_entries", path, f"must have at most {most} items"))
        else:
            for index, item in enumerate(value if item_checks else ()):
                item_checks[index](item, errors)

    return check


_COMPILERS: Mapping[str, Callable[[Rule, str, str], _Check]] = {
    "string": _compile_string,
    "integer": _compile_integer,
    "number": _compile_number,
    "boolean": _compile_boolean,
    "scalar": _compile_scalar,
    "object": _compile_object,
    "array": _compile_array,
    "event_id": _compile_event_id,
}


def _compile(rule: Rule, path: str, note: str = "") -> _Check:
    """One field rule → a check that appends at most one error per broken field (nested objects: per key)."""
    kind = rule.get("kind")
    if kind is None or kind not in _COMPILERS:
        raise ValueError(f"rule for {path or 'the event'} has unknown kind {kind!r}")
    return _COMPILERS[kind](rule, path, note)


_EVENTS: Mapping[str, _CompiledObject] = {
    name: _CompiledObject({**ANNOTATIONS_OF.get(name, ANNOTATIONS), **fields}, "", STRICT_EVENTS,
                          CONDITIONS.get(name, ()))
    for name, fields in CATEGORIES.items()
}
# For an event whose category is unknown or missing: its annotations are still checked, but no field can be
# called unknown because no category says which fields exist.
_ANNOTATIONS_ONLY = _CompiledObject(ANNOTATIONS, "", strict=False)
_INIT = _CompiledObject(INIT_FIELDS, "", strict=False)
_REMOTE_CONFIGS_INIT = _CompiledObject(REMOTE_CONFIGS_INIT_FIELDS, "", strict=False)


def validate_event(event: Any) -> list[Error]:
    """Every rule `event` breaks, in field order; an empty list means the collector would store it."""
    errors: list[Error] = []
    category = event.get("category") if type(event) is dict else None
    compiled = _EVENTS.get(category) if type(category) is str else None
    (compiled or _ANNOTATIONS_ONLY).check(event, errors)
    return errors


# ---------------------------------------------------------------------------------------------------
# A game's own lists: what the SDKs refuse before sending unless the game configured the value first
# (configureAvailableCustomDimensions01..03, configureAvailableResourceCurrencies and ...ItemTypes; the
# checks in GAValidator::validateDimension01..03 and validateResourceEvent, gameanalytics-sdk-cpp).
# *assumption*: the collector knows these lists and refuses what is not in them, as the SDKs do. A list the
# game left empty is not checked (the SDKs would refuse every value; a daemon that is not told the lists
# must not).
# ---------------------------------------------------------------------------------------------------

LIST_NAMES = ("custom_dimensions_01", "custom_dimensions_02", "custom_dimensions_03", "resource_currencies",
              "resource_item_types")
# At most 20 values each; a dimension value up to 32 characters, a currency letters only (up to 64), an item
# type an event-id part up to 32 (GAValidator::validateCustomDimensions, validateResourceCurrencies,
# validateResourceItemTypes).
MAX_LIST_VALUES = 20
LIST_VALUE_PATTERNS = {
    "custom_dimensions_01": r"^.{1,32}$", "custom_dimensions_02": r"^.{1,32}$", "custom_dimensions_03": r"^.{1,32}$",
    "resource_currencies": r"^[A-Za-z]{1,64}$",
    "resource_item_types": r"^[A-Za-z0-9\s\-_\.\(\)\!\?]{1,32}$",
}
GameLists = Mapping[str, tuple[str, ...]]


def check_lists(lists: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """A game's lists as given (name → list of strings), checked as the SDKs check them when configured."""
    out: dict[str, tuple[str, ...]] = {}
    for name, values in lists.items():
        if name not in LIST_NAMES:
            raise ValueError(f"unknown list {name!r}; the lists are {', '.join(LIST_NAMES)}")
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
            raise ValueError(f"{name} must be a list of strings")
        if len(values) > MAX_LIST_VALUES:
            raise ValueError(f"{name}: at most {MAX_LIST_VALUES} values")
        for value in values:
            if not isinstance(value, str) or not re.fullmatch(LIST_VALUE_PATTERNS[name], value):
                raise ValueError(f"{name}: {value!r} must match {LIST_VALUE_PATTERNS[name]}")
        out[name] = tuple(values)
    return out


def validate_lists(event: Any, lists: GameLists) -> list[Error]:
    """The rules of a game's lists that `event` breaks (nothing when the game set no list)."""
    if not lists or type(event) is not dict:
        return []
    errors: list[Error] = []
    for n in ("01", "02", "03"):
        allowed = lists.get(f"custom_dimensions_{n}")
        value = event.get(f"custom_{n}")
        if allowed and value is not None and value not in allowed:
            errors.append(("not_in_range", f"/custom_{n}", f"must be one of the game's custom dimensions {n}: "
                                                           f"{', '.join(allowed)}"))
    event_id = event.get("event_id")
    if event.get("category") == "resource" and type(event_id) is str and event_id.count(":") == 3:
        _, currency, item_type, _ = event_id.split(":")
        currencies, item_types = lists.get("resource_currencies"), lists.get("resource_item_types")
        if currencies and currency not in currencies:
            errors.append(("not_in_range", "/event_id", f"currency {currency!r} is not one of the game's "
                                                        f"resource currencies: {', '.join(currencies)}"))
        if item_types and item_type not in item_types:
            errors.append(("not_in_range", "/event_id", f"item type {item_type!r} is not one of the game's "
                                                        f"resource item types: {', '.join(item_types)}"))
    return errors


def validate_init(body: Any) -> list[Error]:
    """The rules the body of `POST /v2/<game_key>/init` breaks."""
    errors: list[Error] = []
    _INIT.check(body, errors)
    return errors


def validate_remote_configs_init(body: Any) -> list[Error]:
    """The rules the body of `POST /remote_configs/v1/init` breaks."""
    errors: list[Error] = []
    _REMOTE_CONFIGS_INIT.check(body, errors)
    return errors
