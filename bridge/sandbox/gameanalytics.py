"""A local GameAnalytics collector that follows the Collection API docs, for developers and for tests.

`engine-bridge sandbox` runs it so a game developer sees at once whether the events are valid, instead of
waiting minutes for the real dashboard: every accepted and rejected event is logged as one line (logger
`bridge.sandbox.gameanalytics`) and kept for the admin routes. Like the collector it

- checks `Authorization` = base64(HMAC-SHA256(secret key, body bytes exactly as sent)), so over the gzipped
  bytes when `Content-Encoding: gzip`; a mismatch, a missing header or an unknown game key answers 401;
- refuses a body over 1 MB as sent with 413, and closes the connection without an answer above twice that
  (a test that lowers the 413 limit with `max_body_bytes` keeps the 2 MB cut-off, so that what it sends
  is answered 413 and split, not dropped);
- validates each event with `ga_rules` and answers 400 with `[{"event": ..., "errors": [{"error_type",
  "path"}]}]` for the invalid events only, having stored the valid events of the same request;
- follows the official SDKs where the docs say nothing (`ga_rules` marks each such rule *assumption*): the
  current SDKs' annotations and categories (`event_uuid`, `configurations_v3`, `impression`, `sdk_error`),
  their limits, and a game's own lists of custom dimension values, resource currencies and item types
  (`set_lists`: the SDKs refuse other values before sending; the sandbox assumes the collector would too);
- answers `POST /v2/<game_key>/init` with `{enabled, server_ts, flags}` and
  `POST /remote_configs/v1/init` with 201 (configs, configs_hash, A/B ids) or 200 (`{server_ts}`) when the
  client's `configs_hash` is current.

Admin routes under `/_sandbox/` (JSON; they need no signature, so keep the sandbox on loopback, its default):

| method and path | does |
| --- | --- |
| `GET events?game_key=&category=&since=&limit=` | accepted events: `{"events": [record...], "next": index}` |
| `GET rejected?game_key=&category=&since=&limit=` | rejected events with their errors, same shape |
| `GET counts` | totals, per category, per route and status, faults fired |
| `GET faults`, `POST faults` (a `Fault` as JSON), `DELETE faults` | list, add, clear faults |
| `GET configs?game_key=`, `PUT configs` | remote configs: `{"game_key"?, "configs": [...], "ab_id"?, "variants"?}` |
| `GET games`, `PUT games` `{"game_key", "secret_key"}` | registered games (secrets not shown), register one |
| `PUT enabled` `{"enabled": false, "game_key"?}` | what init answers in `enabled` |
| `PUT clock` `{"offset_seconds": n}` | shift `server_ts`, to exercise a client's clock correction |
| `PUT lists` `{"custom_dimensions_01": [...], ..., "game_key"?}` | a game's own lists (`set_lists`) |
| `PUT success_status` `{"status": 204}` | what a wholly valid events post answers (200, 201, 202 or 204) |
| `PUT echo` `{"omit": ["field", ...]}` | fields left out of the events a 400 answer lists |
| `POST reset` | forget events, counts, faults, configs, lists, enabled flags, clock, success status, echo |

A record is `{"index", "game_key", "category", "received_at" (epoch s), "event", "forwarded_for", "request_id"}`
(the request's X-Forwarded-For, which a server sending on behalf of its users sets per user, and the
X-Request-Id of its answer), plus `"errors": [{"error_type",
"path", "detail"}]` for a rejected one; `index` counts from 0 per list, and `since` returns records from it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import re
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.sandbox.api import Journal, admin_body, key_pairs, not_json, query_int, required_field
from bridge.sandbox.faults import Fault, FaultPlan
from bridge.sandbox.ga_rules import (
    Error,
    check_lists,
    validate_event,
    validate_init,
    validate_lists,
    validate_remote_configs_init,
)
from bridge.sandbox.server import DROP, Request, Response, SandboxServer, serve_until_signalled

LOGGER_NAME = "bridge.sandbox.gameanalytics"
log = logging.getLogger(LOGGER_NAME)

# The public sandbox keys of GameAnalytics' documentation; always registered.
SANDBOX_GAME_KEY = "5c6bcb5402204249437fb5a7a80a4959"
SANDBOX_SECRET_KEY = "16813a12f718bc5c620f56944e1abc3ea13ccbac"

MAX_BODY_BYTES = 1_000_000  # "1MB"; the decimal reading, the stricter one, so a client fits either
MAX_INFLATED_BYTES = 64 * 1024 * 1024  # ours: a gzip body that inflates beyond this is answered 413
MAX_ADMIN_BODY_BYTES = 16 * 1024 * 1024
SUCCESS_STATUSES = frozenset({200, 201, 202, 204})
CONFIG_VSN_SUPPORTED = frozenset({"3"})  # what current SDKs send (GAHTTPApi::requestInitReturningDict)
DEFAULT_KEEP = 100_000  # records kept per list; counts stay exact beyond it
DEFAULT_PAGE = 1000

COLLECTOR_HEADERS = (
    ("Content-Type", "application/json"),
    ("Access-Control-Allow-Origin", "*"),
    ("X-GA-Service", "collect"),
    ("Access-Control-Allow-Headers", "Authorization, X-Requested-With"),
)
_GAME_KEY = re.compile(r"[0-9a-f]{1,64}")
_GAME_ROUTE = re.compile(r"/v2/([^/]+)/(init|events)")
_REMOTE_CONFIGS_PATH = "/remote_configs/v1/init"
_ADMIN_PREFIX = "/_sandbox/"


# ---------------------------------------------------------------------------------------------------
# Remote configs
# ---------------------------------------------------------------------------------------------------

def _optional_ts(value: Any, name: str) -> int | None:
    if value is not None and (type(value) is not int or value < 0):
        raise ValueError(f"{name} must be epoch seconds (an integer >= 0) or null, not {value!r}")
    return value


@dataclass(frozen=True)
class RemoteConfig:
    """One remote config as the collector sends it: a string value live from `start_ts` until `end_ts`.

    `id` and `vsn` are what the current SDKs echo in every event's `configurations_v3` annotation when they
    asked with `config_vsn_supported=3` (*assumption*: the docs do not describe them; the SDKs copy them from
    each config as they are). Set, they are answered to such clients only.
    """

    key: str
    value: str
    start_ts: int | None = None
    end_ts: int | None = None
    id: str | None = None
    vsn: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"a remote config key must be a non-empty string, not {self.key!r}")
        if not isinstance(self.value, str):
            raise ValueError(f"remote config {self.key!r}: value must be a string (the collector sends strings)")
        _optional_ts(self.start_ts, f"remote config {self.key!r}: start_ts")
        _optional_ts(self.end_ts, f"remote config {self.key!r}: end_ts")
        if self.start_ts is not None and self.end_ts is not None and self.end_ts <= self.start_ts:
            raise ValueError(f"remote config {self.key!r}: end_ts must be after start_ts")
        if self.id is not None and (not isinstance(self.id, str) or not self.id):
            raise ValueError(f"remote config {self.key!r}: id must be a non-empty string or null")
        if self.vsn is not None and (type(self.vsn) is not int or self.vsn < 0):
            raise ValueError(f"remote config {self.key!r}: vsn must be an integer >= 0 or null")

    @classmethod
    def from_json(cls, data: Any) -> RemoteConfig:
        if not isinstance(data, Mapping) or not {"key", "value"} <= data.keys():
            raise ValueError(f"a remote config must be an object with key and value, not {data!r}")
        unknown = set(data) - {"key", "value", "start_ts", "end_ts", "id", "vsn"}
        if unknown:
            raise ValueError(f"unknown remote config field(s): {', '.join(sorted(unknown))}")
        return cls(data["key"], data["value"], data.get("start_ts"), data.get("end_ts"), data.get("id"),
                   data.get("vsn"))

    def to_json(self, versioned: bool = True) -> dict[str, Any]:
        """The config as answered; `id` and `vsn` (when set) only to a client that asked for versioned configs."""
        out: dict[str, Any] = {"key": self.key, "value": self.value, "start_ts": self.start_ts, "end_ts": self.end_ts}
        if versioned:
            out.update({k: v for k, v in (("id", self.id), ("vsn", self.vsn)) if v is not None})
        return out

    def live_between(self, start: int, end: int) -> bool:
        """Whether the config is in effect at some instant of [start, end] (the requested interval)."""
        return (self.start_ts is None or self.start_ts <= end) and (self.end_ts is None or self.end_ts > start)


def _config_list(items: Iterable[RemoteConfig | Mapping[str, Any]], where: str) -> tuple[RemoteConfig, ...]:
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise ValueError(f"{where} must be a list of remote configs")
    configs = tuple(c if isinstance(c, RemoteConfig) else RemoteConfig.from_json(c) for c in items)
    keys = [c.key for c in configs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{where}: each key may appear once")
    return configs


@dataclass(frozen=True)
class RemoteConfigSet:
    """A game's remote configs: global `configs`, or, with an A/B test `ab_id`, one config list per variant.

    As the collector documents it, a user in an experiment receives only the configs of the variant, and a
    control group is a variant with no configs. Users are split over the variants by a stable hash of
    (`ab_id`, `user_id`), so one user always lands in the same variant.
    """

    configs: tuple[RemoteConfig, ...] = ()
    ab_id: str | None = None
    variants: tuple[tuple[str, tuple[RemoteConfig, ...]], ...] = ()

    def __post_init__(self) -> None:
        if self.ab_id is not None and (not isinstance(self.ab_id, str) or not self.ab_id):
            raise ValueError("ab_id must be a non-empty string or None")
        if (self.ab_id is None) != (not self.variants):
            raise ValueError("an A/B test needs both ab_id and at least one variant")
        if any(not isinstance(v, str) or not v for v, _ in self.variants):
            raise ValueError("variant ids must be non-empty strings")

    @classmethod
    def build(cls, configs: Iterable[RemoteConfig | Mapping[str, Any]] = (), ab_id: str | None = None,
              variants: Mapping[str, Iterable[RemoteConfig | Mapping[str, Any]]] | None = None) -> RemoteConfigSet:
        """From lists of `RemoteConfig`s or of their JSON objects; raises ValueError naming what is wrong."""
        if variants is not None and not isinstance(variants, Mapping):
            raise ValueError("variants must map a variant id to its list of remote configs")
        return cls(_config_list(configs, "configs"), ab_id,
                   tuple((k, _config_list(v, f"variant {k!r}"))
                         for k, v in sorted((variants or {}).items(), key=lambda item: str(item[0]))))

    @classmethod
    def from_json(cls, data: Any) -> RemoteConfigSet:
        """From the JSON body of `PUT /_sandbox/configs` (or a `--configs` file)."""
        if not isinstance(data, Mapping):
            raise ValueError("remote configs must be a JSON object: configs, and ab_id and variants for A/B")
        unknown = set(data) - {"configs", "ab_id", "variants", "game_key"}
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        return cls.build(data.get("configs", ()), data.get("ab_id"), data.get("variants"))

    def to_json(self) -> dict[str, Any]:
        return {"configs": [c.to_json() for c in self.configs], "ab_id": self.ab_id,
                "variants": {v: [c.to_json() for c in cs] for v, cs in self.variants}}

    def for_user(self, user_id: str) -> tuple[tuple[RemoteConfig, ...], str | None]:
        """The configs `user_id` receives and its variant id (None outside an experiment)."""
        if self.ab_id is None:
            return self.configs, None
        digest = hashlib.sha256(f"{self.ab_id}\0{user_id}".encode()).digest()
        variant, configs = self.variants[int.from_bytes(digest[:8], "big") % len(self.variants)]
        return configs, variant


def configs_hash(payload: Mapping[str, Any]) -> str:
    """A stable hash of what a user receives (configs and A/B ids), in the collector's all-digits style."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return str(int.from_bytes(hashlib.sha256(canonical).digest()[:7], "big"))


# ---------------------------------------------------------------------------------------------------
# What the sandbox keeps
# ---------------------------------------------------------------------------------------------------

@dataclass
class _Game:
    secret: bytes
    enabled: bool = True
    remote_configs: RemoteConfigSet = field(default_factory=RemoteConfigSet)
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)  # see ga_rules.validate_lists


def _category_of(event: Any) -> str:
    category = event.get("category") if isinstance(event, dict) else None
    return category if isinstance(category, str) else "(none)"


class _BadRequest(Exception):
    """A request refused whole; carries the answer."""

    def __init__(self, response: Response, reason: str) -> None:
        super().__init__(reason)
        self.response = response


def _refuse(status: int, reason: str, body: Any = None) -> _BadRequest:
    return _BadRequest(Response.json(status, {"error": reason} if body is None else body, COLLECTOR_HEADERS),
                       reason)


# ---------------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------------

class GameAnalyticsSandbox:
    """The collector's behaviour and state; serve it with `SandboxServer(sandbox).start()`.

    The Python methods below do what the admin routes do, for tests that run the sandbox in-process.
    """

    def __init__(self, games: Mapping[str, str] | None = None, *, keep: int = DEFAULT_KEEP,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        if type(keep) is not int or keep < 1:
            raise ValueError(f"keep must be an integer >= 1, not {keep!r}")
        if type(max_body_bytes) is not int or max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be an integer >= 1, not {max_body_bytes!r}")
        self.faults = FaultPlan()
        self.max_body_bytes = max_body_bytes
        self._lock = threading.Lock()
        self._games: dict[str, _Game] = {}
        self._accepted = Journal(keep)
        self._rejected = Journal(keep)
        self._by_category: dict[str, dict[str, int]] = {}
        self._by_route: dict[str, dict[str, int]] = {}
        self._configs_asked: list[str] = []  # the user_id of each remote-configs init, in order
        self._clock_offset = 0
        self._success_status = 200
        self._echo_omit: frozenset[str] = frozenset()
        self.register_game(SANDBOX_GAME_KEY, SANDBOX_SECRET_KEY)
        for game_key, secret_key in (games or {}).items():
            self.register_game(game_key, secret_key)

    # -- Python API (the admin routes call these too) --------------------------------------------------

    def register_game(self, game_key: str, secret_key: str) -> None:
        """Accept requests for `game_key` signed with `secret_key` (re-registering replaces the secret)."""
        if not isinstance(game_key, str) or not _GAME_KEY.fullmatch(game_key):
            raise ValueError(f"game_key must be lower-case hexadecimal (1 to 64 digits), not {game_key!r}")
        if not isinstance(secret_key, str) or not secret_key:
            raise ValueError("secret_key must be a non-empty string")
        with self._lock:
            game = self._games.get(game_key)
            if game is None:
                self._games[game_key] = _Game(secret_key.encode())
            else:
                game.secret = secret_key.encode()

    def games(self) -> list[dict[str, Any]]:
        """The registered games, without their secrets."""
        with self._lock:
            return [{"game_key": k, "enabled": g.enabled} for k, g in self._games.items()]

    def set_enabled(self, enabled: bool, game_key: str = SANDBOX_GAME_KEY) -> None:
        """What init answers in `enabled`: False tells a client to stop sending (it keeps storing)."""
        if type(enabled) is not bool:
            raise ValueError(f"enabled must be true or false, not {enabled!r}")
        with self._lock:
            self._game(game_key).enabled = enabled

    def set_remote_configs(self, configs: Iterable[RemoteConfig | Mapping[str, Any]] = (), *,
                           ab_id: str | None = None,
                           variants: Mapping[str, Iterable[RemoteConfig | Mapping[str, Any]]] | None = None,
                           game_key: str = SANDBOX_GAME_KEY) -> RemoteConfigSet:
        """Replace a game's remote configs (and A/B test); the next init with the old hash gets a 201."""
        return self.use_remote_configs(RemoteConfigSet.build(configs, ab_id, variants), game_key)

    def use_remote_configs(self, config_set: RemoteConfigSet, game_key: str = SANDBOX_GAME_KEY) -> RemoteConfigSet:
        """Replace a game's remote configs with a prepared set."""
        if not isinstance(config_set, RemoteConfigSet):
            raise TypeError(f"expected a RemoteConfigSet, got {type(config_set).__name__}")
        with self._lock:
            self._game(game_key).remote_configs = config_set
        log.info("remote configs of %s: %d global, A/B test %s", game_key, len(config_set.configs),
                 config_set.ab_id or "none")
        return config_set

    def set_lists(self, game_key: str = SANDBOX_GAME_KEY, **lists: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """A game's own lists, as its SDK would be configured: `custom_dimensions_01` .. `_03`,
        `resource_currencies`, `resource_item_types` (each up to 20 values); events whose values are not in a
        list the game set are refused (see `ga_rules.validate_lists`). Lists not named are left as they are;
        an empty list is not checked."""
        checked = check_lists({name: values if isinstance(values, (str, bytes)) else list(values)
                               for name, values in lists.items()})
        with self._lock:
            game = self._game(game_key)
            game.lists.update(checked)
            return dict(game.lists)

    def remote_configs(self, game_key: str = SANDBOX_GAME_KEY) -> RemoteConfigSet:
        with self._lock:
            return self._game(game_key).remote_configs

    def set_clock_offset(self, seconds: int) -> None:
        """Shift `server_ts` by `seconds`, to see a client correct its clock."""
        if type(seconds) is not int:
            raise ValueError(f"offset_seconds must be an integer, not {seconds!r}")
        self._clock_offset = seconds

    def server_ts(self) -> int:
        return int(time.time()) + self._clock_offset

    def set_success_status(self, status: int) -> None:
        """What the events route answers when every event was valid: 200 (the docs), or another 2xx such as
        204 No Content (empty body), which the C++ SDK also takes as success (*assumption*: the collector
        may answer it)."""
        if status not in SUCCESS_STATUSES:
            raise ValueError(f"success status must be one of {sorted(SUCCESS_STATUSES)}, not {status!r}")
        self._success_status = status

    def set_echo(self, omit: Iterable[str] = ()) -> None:
        """Leave these fields out of the events a 400 answer lists (*assumption*: the docs show the collector
        echoing each invalid event, but do not promise the echo is byte for byte what was sent), so that a
        client that finds its events by an exact echo is caught."""
        names = tuple(omit) if not isinstance(omit, str) else (omit,)
        if any(not isinstance(name, str) or not name for name in names):
            raise ValueError("echo omit must be a list of field names")
        self._echo_omit = frozenset(names)

    def accepted(self, game_key: str | None = None, category: str | None = None, since: int = 0,
                 limit: int | None = None) -> list[dict[str, Any]]:
        """Accepted event records from index `since`, oldest first."""
        return self._select(self._accepted, game_key, category, since, limit)[0]

    def rejected(self, game_key: str | None = None, category: str | None = None, since: int = 0,
                 limit: int | None = None) -> list[dict[str, Any]]:
        """Rejected event records (with `errors`) from index `since`, oldest first."""
        return self._select(self._rejected, game_key, category, since, limit)[0]

    def accepted_events(self, game_key: str | None = None, category: str | None = None) -> list[dict[str, Any]]:
        """Just the accepted events themselves, oldest first: what a test usually asserts on."""
        return [record["event"] for record in self.accepted(game_key, category)]

    def counts(self) -> dict[str, Any]:
        """Totals since start or reset: accepted/rejected overall and per category, answers per route."""
        with self._lock:
            categories = {k: dict(v) for k, v in self._by_category.items()}
            routes = {k: dict(v) for k, v in self._by_route.items()}
        return {
            "accepted": sum(c.get("accepted", 0) for c in categories.values()),
            "rejected": sum(c.get("rejected", 0) for c in categories.values()),
            "categories": categories,
            "routes": routes,
            "faults_fired": self.faults.fired(),
        }

    def configs_asked(self) -> list[str]:
        """The user of each remote-configs init answered so far, oldest first (configs are per user)."""
        with self._lock:
            return list(self._configs_asked)

    def reset(self) -> None:
        """Forget events, counts, faults, configs, enabled flags and the clock offset; games stay."""
        with self._lock:
            self._accepted.clear()
            self._rejected.clear()
            self._by_category.clear()
            self._by_route.clear()
            self._configs_asked.clear()
            for game in self._games.values():
                game.enabled = True
                game.remote_configs = RemoteConfigSet()
                game.lists = {}
            self._clock_offset = 0
            self._success_status = 200
            self._echo_omit = frozenset()
        self.faults.clear()

    # -- HTTP ------------------------------------------------------------------------------------------

    def fault_route(self, method: str, path: str) -> str | None:
        """`init`, `events` or `remote_configs`; admin and unknown paths are never faulted."""
        route = _collector_route(path)
        return route[0] if route else None

    def handle(self, request: Request) -> Response:
        if request.path.startswith(_ADMIN_PREFIX):
            return self._admin(request)
        found = _collector_route(request.path)
        if found is None:
            return Response.json(404, {"error": f"no route {request.path}"})
        route, path_game_key = found
        if request.method != "POST":
            return Response.json(405, {"error": "use POST"}, (*COLLECTOR_HEADERS, ("Allow", "POST")))
        try:
            response = self._collect(route, path_game_key or request.query.get("game_key", ""), request)
        except _BadRequest as refused:
            log.warning("%s %s answered %d: %s", request.method, request.path, refused.response.status, refused)
            response = refused.response
        with self._lock:
            statuses = self._by_route.setdefault(route, {})
            status = "dropped" if response.drop else str(response.status)
            statuses[status] = statuses.get(status, 0) + 1
        return response

    def _collect(self, route: str, game_key: str, request: Request) -> Response:
        """The collector's checks in the order a request meets them: size, keys, signature, body."""
        length = request.content_length
        if length > 2 * max(self.max_body_bytes, MAX_BODY_BYTES):
            log.warning("%s: body of %d bytes is over twice the limit: connection closed", route, length)
            return DROP
        if length > self.max_body_bytes:
            request.read_body()
            raise _refuse(413, f"request body of {length} bytes is over the {self.max_body_bytes}-byte limit")
        body = request.read_body()
        with self._lock:
            game = self._games.get(game_key)
            secret = game.secret if game else b""
        if game is None:
            raise _refuse(401, f"unknown game key {game_key!r}")
        sent = (request.headers.get("Authorization") or "").encode("latin-1")
        expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest())
        if not hmac.compare_digest(sent, expected):
            raise _refuse(401, "Authorization is not base64(HMAC-SHA256(secret key, body as sent))")
        payload = self._decode(body, request.headers.get("Content-Encoding"))
        if route == "events":
            return self._events(game_key, game, payload, request.headers.get("X-Forwarded-For"))
        if route == "init":
            return self._init(game_key, game, payload)
        return self._remote_configs_init(game_key, game, payload, request.query)

    def _decode(self, body: bytes, encoding: str | None) -> Any:
        """The JSON value of `body`, gunzipped first when it says so; NaN and Infinity are not JSON."""
        encoding = (encoding or "identity").strip().lower()
        if encoding == "gzip":
            body = _gunzip(body)
        elif encoding != "identity":
            raise _refuse(400, f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
        try:
            return json.loads(body, parse_constant=not_json)
        except ValueError as exc:
            raise _refuse(400, f"body is not valid JSON: {exc}") from None

    def _events(self, game_key: str, game: _Game, payload: Any, forwarded_for: str | None) -> Response:
        if not isinstance(payload, list):
            raise _refuse(400, "the events body must be a JSON array of event objects")
        now = time.time()
        request_id = uuid.uuid4().hex
        with self._lock:
            lists = dict(game.lists)
        answer: list[dict[str, Any]] = []
        accepted: list[dict[str, Any]] = []
        rejected: list[tuple[Any, list[Error]]] = []
        for event in payload:
            errors = validate_event(event) + validate_lists(event, lists)
            if errors:
                rejected.append((event, errors))
                echoed = event
                if self._echo_omit and isinstance(event, dict):
                    echoed = {k: v for k, v in event.items() if k not in self._echo_omit}
                answer.append({"event": echoed,
                               "errors": [{"error_type": kind, "path": path} for kind, path, _ in errors]})
            else:
                accepted.append(event)
        with self._lock:
            for event in accepted:
                self._accepted.append({"game_key": game_key, "category": _category_of(event), "received_at": now,
                                       "event": event,
                                       "forwarded_for": forwarded_for, "request_id": request_id})
                self._count(_category_of(event), "accepted")
            for event, errors in rejected:
                self._rejected.append({"game_key": game_key, "category": _category_of(event), "received_at": now,
                                       "event": event, "request_id": request_id,
                                       "forwarded_for": forwarded_for, "errors": [
                    {"error_type": kind, "path": path, "detail": detail} for kind, path, detail in errors]})
                self._count(_category_of(event), "rejected")
        if log.isEnabledFor(logging.INFO):
            for event in accepted:
                log.info("accepted %-11s %s", event["category"], _event_label(event))
            for event, errors in rejected:
                log.info("rejected %-11s %s: %s", _category_of(event), _event_label(event), _reasons(errors))
        headers = (*COLLECTOR_HEADERS, ("X-Request-Id", request_id))  # *assumption*: for support traces
        if answer:
            return Response.json(400, answer, headers)
        if self._success_status == 204:
            return Response(204, b"", headers)
        return Response.json(self._success_status, {}, headers)

    def _count(self, category: str, outcome: str) -> None:
        counts = self._by_category.setdefault(category, {"accepted": 0, "rejected": 0})
        counts[outcome] += 1

    def _init(self, game_key: str, game: _Game, payload: Any) -> Response:
        _check_body(validate_init(payload))
        log.info("init %s: enabled %s", game_key, game.enabled)
        return Response.json(200, {"enabled": game.enabled, "server_ts": self.server_ts(), "flags": []},
                             COLLECTOR_HEADERS)

    def _remote_configs_init(self, game_key: str, game: _Game, payload: Any,
                             query: Mapping[str, str]) -> Response:
        interval = query.get("interval_seconds", "0")
        if not (interval.isascii() and interval.isdigit()):
            raise _refuse(400, f"interval_seconds must be a non-negative integer, not {interval!r}")
        _check_body(validate_remote_configs_init(payload))
        with self._lock:
            config_set = game.remote_configs
            self._configs_asked.append(payload["user_id"])
        configs, variant = config_set.for_user(payload["user_id"])
        now = self.server_ts()
        versioned = query.get("config_vsn_supported", "") in CONFIG_VSN_SUPPORTED
        answer: dict[str, Any] = {
            "configs": [c.to_json(versioned) for c in configs if c.live_between(now, now + int(interval))]}
        if variant is not None:
            answer["ab_id"] = config_set.ab_id
            answer["ab_variant_id"] = variant
        current = configs_hash(answer)
        if query.get("configs_hash") == current:
            log.info("remote configs %s for %s: unchanged", game_key, payload["user_id"])
            return Response.json(200, {"server_ts": now}, COLLECTOR_HEADERS)
        log.info("remote configs %s for %s: %d configs, hash %s", game_key, payload["user_id"],
                 len(answer["configs"]), current)
        return Response.json(201, {"server_ts": now, **answer, "configs_hash": current}, COLLECTOR_HEADERS)

    # -- admin routes ----------------------------------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        action = (request.method, request.path[len(_ADMIN_PREFIX):].rstrip("/"))
        try:
            body = admin_body(request)
            if body is None:
                return Response.json(413, {"error": "admin body too large"})
            return self._admin_action(action, request.query, body)
        except ValueError as exc:
            return Response.json(400, {"error": str(exc)})

    def _admin_action(self, action: tuple[str, str], query: Mapping[str, str], body: dict[str, Any]) -> Response:
        if action in (("GET", "events"), ("GET", "rejected")):
            records = self._accepted if action[1] == "events" else self._rejected
            since = query_int(query, "since", 0, 0)
            limit = query_int(query, "limit", DEFAULT_PAGE, 1)
            items, next_index = self._select(records, query.get("game_key"), query.get("category"), since, limit)
            return Response.json(200, {action[1]: items, "next": next_index})
        if action == ("GET", "counts"):
            return Response.json(200, self.counts())
        if action == ("GET", "faults"):
            return Response.json(200, {"faults": self.faults.pending()})
        if action == ("POST", "faults"):
            self.faults.add(Fault.from_json(body))
            return Response.json(201, {"faults": self.faults.pending()})
        if action == ("DELETE", "faults"):
            self.faults.clear()
            return Response.json(200, {"faults": []})
        if action == ("GET", "configs"):
            return Response.json(200, self.remote_configs(query.get("game_key", SANDBOX_GAME_KEY)).to_json())
        if action == ("PUT", "configs"):
            config_set = self.use_remote_configs(RemoteConfigSet.from_json(body),
                                                 body.get("game_key", SANDBOX_GAME_KEY))
            return Response.json(200, config_set.to_json())
        if action == ("GET", "games"):
            return Response.json(200, {"games": self.games()})
        if action == ("PUT", "games"):
            self.register_game(required_field(body, "game_key"), required_field(body, "secret_key"))
            return Response.json(201, {"games": self.games()})
        if action == ("PUT", "enabled"):
            self.set_enabled(required_field(body, "enabled"), body.get("game_key", SANDBOX_GAME_KEY))
            return Response.json(200, {"games": self.games()})
        if action == ("PUT", "clock"):
            self.set_clock_offset(required_field(body, "offset_seconds"))
            return Response.json(200, {"offset_seconds": self._clock_offset, "server_ts": self.server_ts()})
        if action == ("PUT", "lists"):
            game_key = body.pop("game_key", SANDBOX_GAME_KEY)
            return Response.json(200, {"lists": self.set_lists(game_key, **body)})
        if action == ("PUT", "success_status"):
            self.set_success_status(required_field(body, "status"))
            return Response.json(200, {"status": self._success_status})
        if action == ("PUT", "echo"):
            self.set_echo(body.get("omit", ()))
            return Response.json(200, {"omit": sorted(self._echo_omit)})
        if action == ("POST", "reset"):
            self.reset()
            return Response.json(200, {})
        return Response.json(404, {"error": f"no admin route {action[0]} {_ADMIN_PREFIX}{action[1]}"})

    def _game(self, game_key: str) -> _Game:
        """The registered game; call with the lock held."""
        game = self._games.get(game_key)
        if game is None:
            raise ValueError(f"game key {game_key!r} is not registered")
        return game

    def _select(self, records: Journal, game_key: str | None, category: str | None, since: int,
                limit: int | None) -> tuple[list[dict[str, Any]], int]:
        if type(since) is not int or since < 0:
            raise ValueError(f"since must be an integer >= 0, not {since!r}")
        if limit is not None and (type(limit) is not int or limit < 1):
            raise ValueError(f"limit must be an integer >= 1 or None, not {limit!r}")
        filters = {k: v for k, v in (("game_key", game_key), ("category", category)) if v is not None}
        with self._lock:
            return records.select(filters, since, limit)


def _collector_route(path: str) -> tuple[str, str | None] | None:
    """(route name, game key of the path) for a collector route; the remote configs route has its key in
    the query string."""
    if path == _REMOTE_CONFIGS_PATH:
        return "remote_configs", None
    match = _GAME_ROUTE.fullmatch(path)
    return (match[2], match[1]) if match else None


def _gunzip(body: bytes) -> bytes:
    """Inflate every gzip member of `body`, refusing bombs (413) and broken streams (400)."""
    out: list[bytes] = []
    size = 0
    rest = body
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            chunk = inflater.decompress(rest, MAX_INFLATED_BYTES + 1 - size)
        except zlib.error as exc:
            raise _refuse(400, f"body is not valid gzip: {exc}") from None
        size += len(chunk)
        if size > MAX_INFLATED_BYTES:
            raise _refuse(413, f"gzip body inflates beyond {MAX_INFLATED_BYTES} bytes")
        if not inflater.eof:
            raise _refuse(400, "gzip body is truncated")
        out.append(chunk)
        rest = inflater.unused_data
    return b"".join(out)



def _check_body(errors: list[Error]) -> None:
    if errors:
        raise _refuse(400, _reasons(errors),
                      {"errors": [{"error_type": kind, "path": path} for kind, path, _ in errors]})


def _reasons(errors: list[Error]) -> str:
    """The broken rules on one line: missing fields together, then each other error with its detail."""
    missing = [path for kind, path, _ in errors if kind == "required"]
    parts = [f"{path or '(event)'} {kind}: {detail}" for kind, path, detail in errors if kind != "required"]
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    return "; ".join(parts)


def _event_label(event: Any) -> str:
    """What names an event in the live log: its event_id, else its session."""
    if not isinstance(event, dict):
        return repr(event)[:80]
    label = event.get("event_id") or event.get("session_id") or "-"
    return str(label)[:200]




# ---------------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------------

def serve(host: str = "127.0.0.1", port: int = 0, *, games: Mapping[str, str] | None = None,
          remote_configs: Mapping[str, Any] | None = None, log_events: bool = True,
          keep: int = DEFAULT_KEEP) -> None:
    """Run the sandbox until SIGINT or SIGTERM: what `engine-bridge sandbox` calls.

    Prints `GameAnalytics sandbox listening on <url>` on stdout once it listens (port 0 picks a free one),
    and one log line per accepted or rejected event on stderr unless `log_events` is False.
    `remote_configs` is the JSON shape of `PUT /_sandbox/configs` for the sandbox game.
    """
    sandbox = GameAnalyticsSandbox(games, keep=keep)
    if remote_configs is not None:
        sandbox.use_remote_configs(RemoteConfigSet.from_json(remote_configs))
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s")
    log.setLevel(logging.INFO if log_events else logging.WARNING)

    def announce(server: SandboxServer) -> None:
        print(f"GameAnalytics sandbox listening on {server.url}", flush=True)
        print(f"  sandbox keys: game {SANDBOX_GAME_KEY} secret {SANDBOX_SECRET_KEY}", flush=True)

    serve_until_signalled(SandboxServer(sandbox, host, port), announce)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bridge.sandbox.gameanalytics [--port N] ...`: the sandbox on its own."""
    parser = argparse.ArgumentParser(prog="engine-bridge sandbox",
                                     description="A local GameAnalytics collector for development and tests.")
    parser.add_argument("--host", default="127.0.0.1", help="IP address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--game", action="append", default=[], metavar="GAME_KEY:SECRET_KEY",
                        help="register another game (repeatable); the docs' sandbox game is always there")
    parser.add_argument("--configs", type=Path, metavar="FILE.json",
                        help='remote configs: {"configs": [{"key", "value", "start_ts", "end_ts"}], '
                             '"ab_id": ..., "variants": {...}}')
    parser.add_argument("--keep", type=int, default=DEFAULT_KEEP, help="records kept per list")
    parser.add_argument("--quiet", action="store_true", help="do not log every event")
    args = parser.parse_args(argv)
    games = key_pairs(parser, args.game, "--game")
    try:
        remote_configs = json.loads(args.configs.read_text()) if args.configs else None
        serve(args.host, args.port, games=games, remote_configs=remote_configs, log_events=not args.quiet,
              keep=args.keep)
    except (OSError, ValueError) as exc:
        print(f"engine-bridge sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
