"""A local GameRamp API that follows the authentication docs, for developers and for tests.

What the docs say (`shared/providers/gameramp.md`) it does exactly; what they leave open it does as listed
here, and every line of it is a choice a client must not rely on beyond this sandbox.

- `POST /auth/login` `{apiKey, deviceId, timestamp, signature}` (all strings, no other field): checks, in this
  order, the body (400 `{"error": <what is wrong>}`), the timestamp's form `YYYY-MM-DDThh:mm:ssZ` (400),
  the apiKey (401), the signature = base64(HMAC-SHA256(apiSecret, "apiKey|deviceId|timestamp")) compared
  byte for byte (401), then the window: more than 300 s between the timestamp and the sandbox clock's
  whole second answers 400. Every 401 on any route is `{"error": "Invalid authentication credentials"}`
  and the time window's 400 is `{"error": "Request timestamp is outside the acceptable time window"}`, as
  documented; the log line and the call record say the real reason. Success answers 200 `{accessToken,
  refreshToken, tokenType: "Bearer", expiresIn, userId, deviceId, gameId, tenantId, playerConfig}`.
- Tokens are JWT-shaped (HS256 over `{sub, deviceId, tenantId, gameId, typ, iat, exp?, jti}`, with a key
  of this sandbox) but are checked by lookup, so revocation works. An access token lives `expiresIn`
  seconds (3600 by default, a setting) on the sandbox clock; a refresh token lives until used or revoked.
- `POST /auth/refresh` `{refreshToken}`: the same answer as login, with a new refresh token; the one used
  is spent (rotation; `rotate_refresh_tokens=False` keeps it valid). The old access token stays valid
  until it expires. An unknown, spent or revoked refresh token answers 401.
- Authenticated routes take `Authorization: Bearer <accessToken>` (401 when missing, unknown, revoked or
  expired), then `X-Tenant-ID` and `X-Game-Id`: 400 when missing, 403 when not the token's tenant/game.
  - `GET /v1/player/status` answers `{userId, deviceId, gameId, tenantId, playerConfig}`. The docs show
    the route but not its answer: this shape is ours, and where the config sits is a setting
    (`status_config_field`; "" answers the player config itself).
  - `POST /v1/events` (not in the seed: the fact sheet's assumption; the route is the `events_route`
    setting) takes a JSON array (or, with the `events_envelope` setting, an object holding it under that
    name) of `{eventType: non-empty string, timestamp: ISO 8601 date-time with a zone, payload?: object,
    metadata?: object}` (other keys are kept; the four names are the `event_fields` setting); any invalid
    item refuses the whole batch with 400 `{"error", "invalid": [{"index", "errors"}]}`; success stores
    the events and answers 200 `{"accepted": <count>}`.
- `playerConfig` is the device's own config, else the default one: an object whose `playerStatus` entries
  are exactly `{value, defaultValue, expiredAt}` with `expiredAt` an ISO 8601 date-time with a zone or
  null. It is sent as set: applying `expiredAt` is the client's job.
- `userId` is `<deviceId>_<12 hex digits>`, stable for a tenant and device (also across restarts).
- Every answer's HTTP `Date` header comes from the sandbox clock (`now()`), which `set_clock_offset`
  shifts, so a client can learn the server's time from it.
- Request bodies over 1 MB answer 413; bodies that are not JSON answer 400.
- Every call is one line on the logger `bridge.sandbox.gameramp` (a refused one as a warning, with its real
  reason) and one call record; secrets and tokens are never logged.

Admin routes under `/_sandbox/` (JSON, no authentication: keep the sandbox on loopback, its default):

| method and path | does |
| --- | --- |
| `GET calls?route=&device_id=&since=&limit=` | every call on a provider route: `{"calls": [record...], "next"}` |
| `GET events?device_id=&since=&limit=` | accepted events: `{"events": [record...], "next"}` |
| `GET counts` | answers per route and status, events accepted, live tokens, faults fired |
| `GET faults`, `POST faults` (a `Fault` as JSON), `DELETE faults` | list, add, clear faults |
| `GET tenants`, `PUT tenants` `{api_key, api_secret, tenant_id?, game_id?}` | tenants (no secrets), add one |
| `GET player-configs?device_id=` | `{"device_id", "playerConfig"}` the device gets (no device_id: the default) |
| `PUT player-configs` `{"device_id"?, "playerConfig"}` | set a device's config (null removes it) or the default |
| `PUT clock` `{"offset_seconds": n}` | shift the sandbox clock (time window, token expiry, `Date`) |
| `GET settings`, `PUT settings` `{"expires_in"?, "rotate_refresh_tokens"?}` | token settings |
| `PUT settings` `{"status_config_field"?, "events_route"?, "events_envelope"?, "event_fields"?}` | untold shapes |
| `POST revoke` `{"device_id"?, "refresh"?: bool}` | revoke the device's (or everyone's) access tokens, to force |
| | a refresh; with `refresh` its refresh tokens too, to force a new login; answers `{"revoked": n}` |
| `POST reset` | forget calls, events, counts, faults, tokens, player configs, clock offset and settings; tenants stay |

A call record is `{"index", "route", "status", "received_at" (epoch s), "error"?}` plus what the call named
(`api_key`, `device_id`, `timestamp`, `count`); an event record is `{"index", "received_at", "api_key",
"tenant_id", "game_id", "device_id", "user_id", "event"}`.

This module also holds the machinery the GameRamp and staq emulators share (`JsonApiSandbox`, `Journal`,
`Refused`, `serve_sandbox`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.sandbox.api import (
    ADMIN_PREFIX,
    DEFAULT_KEEP,
    Journal,
    JsonApiSandbox,
    Refused,
    Route,
    check_batch,
    check_json,
    key_pairs,
    required_field,
    serve_sandbox,
    string_field,
    summarize,
)
from bridge.sandbox.server import Request, Response

LOGGER_NAME = "bridge.sandbox.gameramp"
log = logging.getLogger(LOGGER_NAME)

# The development credentials of the docs' Testing section; always registered. The docs' example login
# answer names this tenant and game.
DEV_API_KEY = "test_tenant_4Dqms3ygG9FVC"
DEV_API_SECRET = "b815ebac-9744-43db-b5e6-89f90620297e-Wjl8qlWrJn2r4OEB7UXJ_L8iYOLTR8p10t83Wi_79Q"
DEV_TENANT_ID = "test_tenant_1752523421"
DEV_GAME_ID = "default_game"

DEFAULT_EXPIRES_IN = 3600  # the docs' example
TIME_WINDOW_S = 300  # "within 5 minutes of server time"
INVALID_CREDENTIALS = {"error": "Invalid authentication credentials"}
OUTSIDE_WINDOW = {"error": "Request timestamp is outside the acceptable time window"}
DEFAULT_PLAYER_CONFIG: Mapping[str, Any] = {
    "playerStatus": {"isPayer": {"value": False, "defaultValue": False, "expiredAt": None}},
    "storeConfig": {"activeSkus": []},
}


_LOGIN_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)


# ---------------------------------------------------------------------------------------------------
# Player configs and timestamps
# ---------------------------------------------------------------------------------------------------

def parse_iso_datetime(value: Any, what: str) -> datetime:
    """An ISO 8601 date-time with a zone (`Z` or an offset); raises ValueError naming `what`."""
    if isinstance(value, str) and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    raise ValueError(f"{what} must be an ISO 8601 date-time with a zone, e.g. 2025-07-15T19:44:26Z, not {value!r}")


def check_player_config(config: Any) -> dict[str, Any]:
    """A copy of `config` if it is a valid player config; raises ValueError naming the broken part."""
    if not isinstance(config, Mapping):
        raise ValueError("a player config must be a JSON object such as "
                         '{"playerStatus": {"isPayer": {"value": true, "defaultValue": false, "expiredAt": null}}}')
    copy: dict[str, Any] = check_json(config, "the player config")
    status = copy.get("playerStatus", {})
    if not isinstance(status, dict):
        raise ValueError("playerStatus must be an object of status entries")
    for name, entry in status.items():
        if not isinstance(entry, dict) or set(entry) != {"value", "defaultValue", "expiredAt"}:
            raise ValueError(f"playerStatus.{name} must be an object of exactly value, defaultValue and expiredAt")
        if entry["expiredAt"] is not None:
            parse_iso_datetime(entry["expiredAt"], f"playerStatus.{name}.expiredAt")
    return copy


def login_timestamp(value: str) -> int:
    """Epoch seconds of a login timestamp, which must be exactly `YYYY-MM-DDThh:mm:ssZ`."""
    try:
        if not _LOGIN_TIMESTAMP.fullmatch(value):
            raise ValueError(value)
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise Refused(400, f"timestamp must be UTC as YYYY-MM-DDThh:mm:ssZ, not {value!r}") from None
    return int(moment.timestamp())


_ROUTES = {  # the documented routes; the events route is a setting (Shape)
    "/auth/login": ("login", "POST"),
    "/auth/refresh": ("refresh", "POST"),
    "/v1/player/status": ("player_status", "GET"),
}
EVENT_FIELDS = {"type": "eventType", "timestamp": "timestamp", "payload": "payload", "metadata": "metadata"}


@dataclass(frozen=True)
class Shape:
    """What the docs leave out, as this sandbox serves it: where the status answer holds the player config
    ("": the answer is the config), the events route, the name the events array travels under ("": the body
    is the array) and the names of an event's fields (`type`, `timestamp`, `payload`, `metadata`)."""

    status_config_field: str = "playerConfig"
    events_route: str = "/v1/events"
    events_envelope: str = ""
    event_fields: Mapping[str, str] = field(default_factory=lambda: dict(EVENT_FIELDS))

    def __post_init__(self) -> None:
        for name in ("status_config_field", "events_envelope"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, not {getattr(self, name)!r}")
        if not isinstance(self.events_route, str) or not self.events_route.startswith("/") \
                or self.events_route in _ROUTES or self.events_route.startswith(ADMIN_PREFIX):
            raise ValueError(f"events_route must be a path of its own, such as /v1/events, not {self.events_route!r}")
        fields = self.event_fields
        if not isinstance(fields, Mapping) or set(fields) != set(EVENT_FIELDS) \
                or not all(isinstance(v, str) and v for v in fields.values()) or len(set(fields.values())) != 4:
            raise ValueError(f"event_fields must name {', '.join(EVENT_FIELDS)} with four distinct names, "
                             f"not {fields!r}")

    def event_errors(self, event: Any) -> list[str]:
        """What is wrong with one item of an events batch."""
        if not isinstance(event, dict):
            return ["not a JSON object"]
        kind, moment = self.event_fields["type"], self.event_fields["timestamp"]
        errors = []
        if not isinstance(event.get(kind), str) or not event[kind]:
            errors.append(f"{kind} must be a non-empty string, not {event.get(kind)!r}")
        try:
            parse_iso_datetime(event.get(moment), moment)
        except ValueError as exc:
            errors.append(str(exc))
        for name in (self.event_fields["payload"], self.event_fields["metadata"]):
            if event.get(name) is not None and not isinstance(event[name], dict):
                errors.append(f"{name} must be a JSON object or absent, not {event[name]!r}")
        return errors


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_JWT_HEADER = _b64url(b'{"alg":"HS256","typ":"JWT"}')


# ---------------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------------

@dataclass
class _Tenant:
    secret: bytes
    tenant_id: str
    game_id: str


@dataclass(frozen=True)
class _Grant:
    """Who a token speaks for; `expires_at` on the sandbox clock, None for a refresh token."""

    api_key: str
    tenant_id: str
    game_id: str
    device_id: str
    user_id: str
    expires_at: float | None


class GameRampSandbox(JsonApiSandbox):
    """GameRamp's authentication, player status and events; serve it with `SandboxServer(sandbox).start()`.

    The Python methods below do what the admin routes do, for tests that run the sandbox in-process.
    `clock` is the time source before the offset (time.time by default); a test may pass a fixed one to
    pin the window's edges to the second.
    """

    label = "GameRamp"
    call_filters = ("route", "device_id")

    def __init__(self, tenants: Mapping[str, str] | None = None, *, expires_in: int = DEFAULT_EXPIRES_IN,
                 rotate_refresh_tokens: bool = True, clock: Callable[[], float] = time.time,
                 keep: int = DEFAULT_KEEP) -> None:
        super().__init__(log, keep)
        if not callable(clock):
            raise ValueError("clock must be a function answering epoch seconds, such as time.time")
        self._clock = clock
        self._initial_settings = self._check_settings(expires_in, rotate_refresh_tokens)
        self._expires_in, self._rotate = self._initial_settings
        self._shape = Shape()
        self._clock_offset = 0
        self._token_key = secrets.token_bytes(32)
        self._tenants: dict[str, _Tenant] = {}
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._default_config = check_player_config(DEFAULT_PLAYER_CONFIG)
        self._device_configs: dict[str, dict[str, Any]] = {}
        self._events = Journal(keep)
        self._accepted_events = 0
        self.register_tenant(DEV_API_KEY, DEV_API_SECRET, tenant_id=DEV_TENANT_ID, game_id=DEV_GAME_ID)
        for api_key, api_secret in (tenants or {}).items():
            self.register_tenant(api_key, api_secret)

    # -- Python API (the admin routes call these too) --------------------------------------------------

    def register_tenant(self, api_key: str, api_secret: str, *, tenant_id: str | None = None,
                        game_id: str = DEV_GAME_ID) -> None:
        """Accept logins with `api_key` signed with `api_secret`; `tenant_id` defaults to the api key.
        Registering a key again replaces its secret and ids (tokens already issued keep theirs)."""
        for name, value in (("api_key", api_key), ("api_secret", api_secret), ("game_id", game_id),
                            ("tenant_id", api_key if tenant_id is None else tenant_id)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, not {value!r}")
        with self._lock:
            self._tenants[api_key] = _Tenant(api_secret.encode(), tenant_id or api_key, game_id)

    def tenants(self) -> list[dict[str, str]]:
        """The registered tenants, without their secrets."""
        with self._lock:
            return [{"api_key": k, "tenant_id": t.tenant_id, "game_id": t.game_id} for k, t in self._tenants.items()]

    def set_player_config(self, config: Mapping[str, Any] | None, device_id: str | None = None) -> None:
        """Set the config `device_id` gets at login and in its status (None: the default for every device
        without its own); a None config removes the device's own."""
        if device_id is not None and (not isinstance(device_id, str) or not device_id):
            raise ValueError(f"device_id must be a non-empty string or None (the default), not {device_id!r}")
        if config is None and device_id is None:
            raise ValueError("the default player config cannot be removed; set another one")
        checked = None if config is None else check_player_config(config)
        with self._lock:
            if device_id is None:
                self._default_config = checked  # type: ignore[assignment]  # not None, checked above
            elif checked is None:
                self._device_configs.pop(device_id, None)
            else:
                self._device_configs[device_id] = checked
        log.info("player config of %s set", device_id or "every other device")

    def player_config(self, device_id: str | None = None) -> dict[str, Any]:
        """The config `device_id` gets (None: the default)."""
        with self._lock:
            config = self._device_configs.get(device_id, self._default_config) if device_id else self._default_config
            copy: dict[str, Any] = json.loads(json.dumps(config))  # the caller may change its copy
            return copy

    def set_clock_offset(self, seconds: int) -> None:
        """Shift the sandbox clock by `seconds`: the time window, token expiry and the `Date` header follow."""
        if type(seconds) is not int:
            raise ValueError(f"offset_seconds must be an integer, not {seconds!r}")
        self._clock_offset = seconds

    def now(self) -> float:
        """The sandbox clock, epoch seconds; the HTTP server writes `Date` from it."""
        return self._clock() + self._clock_offset

    def settings(self) -> dict[str, Any]:
        shape = self._shape
        return {"expires_in": self._expires_in, "rotate_refresh_tokens": self._rotate,
                "status_config_field": shape.status_config_field, "events_route": shape.events_route,
                "events_envelope": shape.events_envelope, "event_fields": dict(shape.event_fields)}

    def configure(self, *, expires_in: int | None = None, rotate_refresh_tokens: bool | None = None,
                  **shape: Any) -> dict[str, Any]:
        """Change the token settings for tokens issued from now on, or the shapes the docs leave out (the
        fields of `Shape`); answers the settings in force."""
        unknown = set(shape) - set(Shape.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        new_shape = replace(self._shape, **shape)
        self._expires_in, self._rotate = self._check_settings(
            self._expires_in if expires_in is None else expires_in,
            self._rotate if rotate_refresh_tokens is None else rotate_refresh_tokens)
        self._shape = new_shape
        return self.settings()

    def revoke_tokens(self, device_id: str | None = None, *, refresh: bool = False) -> int:
        """Revoke the access tokens of `device_id` (None: of every device), so its next call answers 401
        and it must refresh; with `refresh`, its refresh tokens too, so it must log in again. Answers how
        many tokens were revoked."""
        if type(refresh) is not bool:
            raise ValueError(f"refresh must be true or false, not {refresh!r}")
        if device_id is not None and not isinstance(device_id, str):
            raise ValueError(f"device_id must be a string or None (every device), not {device_id!r}")
        stores = (self._access, self._refresh) if refresh else (self._access,)
        revoked = 0
        with self._lock:
            for store in stores:
                doomed = [t for t, g in store.items() if device_id is None or g.device_id == device_id]
                for token in doomed:
                    del store[token]
                revoked += len(doomed)
        log.info("revoked %d token(s) of %s", revoked, device_id or "every device")
        return revoked

    def events(self, device_id: str | None = None, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Accepted event records from index `since`, oldest first."""
        return self._select(self._events, {} if device_id is None else {"device_id": device_id}, since, limit)[0]

    def received_events(self, device_id: str | None = None) -> list[dict[str, Any]]:
        """Just the accepted events themselves, oldest first: what a test usually asserts on."""
        return [record["event"] for record in self.events(device_id)]

    def counts(self) -> dict[str, Any]:
        now = self.now()
        with self._lock:
            live = sum(1 for g in self._access.values() if g.expires_at is not None and g.expires_at > now)
            extra = {"events": self._accepted_events, "tokens": {"access": live, "refresh": len(self._refresh)}}
        return {**super().counts(), **extra}

    def reset(self) -> None:
        """Forget calls, events, counts, faults, tokens, player configs, the clock offset and setting
        changes; tenants stay."""
        super().reset()
        with self._lock:
            self._events.clear()
            self._accepted_events = 0
            self._access.clear()
            self._refresh.clear()
            self._default_config = check_player_config(DEFAULT_PLAYER_CONFIG)
            self._device_configs.clear()
            self._clock_offset = 0
            self._expires_in, self._rotate = self._initial_settings
            self._shape = Shape()

    def credentials(self) -> list[str]:
        return [f"apiKey {DEV_API_KEY} apiSecret {DEV_API_SECRET}",
                f"tenantId {DEV_TENANT_ID} gameId {DEV_GAME_ID}"]

    # -- routes ----------------------------------------------------------------------------------------

    def match(self, path: str) -> Route | None:
        found = ("events", "POST") if path == self._shape.events_route else _ROUTES.get(path)
        return Route(found[0], found[1], {}) if found else None

    def serve_route(self, route: Route, request: Request, call: dict[str, Any]) -> Response:
        if route.name == "login":
            return Response.json(200, self._login(request, call))
        if route.name == "refresh":
            return Response.json(200, self._refresh_tokens(request, call))
        grant = self._authorize(request, call)
        if route.name == "player_status":
            config, field_name = self.player_config(grant.device_id), self._shape.status_config_field
            return Response.json(200, {"userId": grant.user_id, "deviceId": grant.device_id, "gameId": grant.game_id,
                                       "tenantId": grant.tenant_id, field_name: config} if field_name else config)
        return self._take_events(request, grant, call)

    def _login(self, request: Request, call: dict[str, Any]) -> dict[str, Any]:
        body = self.json_object(request, ("apiKey", "deviceId", "timestamp", "signature"))
        api_key, device_id, timestamp, signature = (string_field(body, name)
                                                    for name in ("apiKey", "deviceId", "timestamp", "signature"))
        call.update(api_key=api_key, device_id=device_id, timestamp=timestamp)
        instant = login_timestamp(timestamp)
        with self._lock:
            tenant = self._tenants.get(api_key)
        if tenant is None:
            raise Refused(401, f"unknown apiKey {api_key!r}", INVALID_CREDENTIALS)
        message = f"{api_key}|{device_id}|{timestamp}".encode()
        expected = base64.b64encode(hmac.new(tenant.secret, message, hashlib.sha256).digest())
        if not hmac.compare_digest(signature.encode(), expected):
            raise Refused(401, "signature is not base64(HMAC-SHA256(apiSecret, apiKey|deviceId|timestamp))",
                          INVALID_CREDENTIALS)
        skew = instant - math.floor(self.now())
        if abs(skew) > TIME_WINDOW_S:
            raise Refused(400, f"timestamp is {skew:+d} s from the sandbox clock (allowed: ±{TIME_WINDOW_S} s)",
                          OUTSIDE_WINDOW)
        return self._issue(api_key, tenant.tenant_id, tenant.game_id, device_id)

    def _refresh_tokens(self, request: Request, call: dict[str, Any]) -> dict[str, Any]:
        token = string_field(self.json_object(request, ("refreshToken",)), "refreshToken")
        with self._lock:
            grant = self._refresh.pop(token, None) if self._rotate else self._refresh.get(token)
        if grant is None:
            raise Refused(401, "unknown, spent or revoked refresh token", INVALID_CREDENTIALS)
        call.update(api_key=grant.api_key, device_id=grant.device_id)
        return self._issue(grant.api_key, grant.tenant_id, grant.game_id, grant.device_id)

    def _issue(self, api_key: str, tenant_id: str, game_id: str, device_id: str) -> dict[str, Any]:
        """Fresh access and refresh tokens for `device_id`: the login and refresh answer."""
        now = self.now()
        user_id = f"{device_id}_{hashlib.sha256(f'{tenant_id}|{device_id}'.encode()).hexdigest()[:12]}"
        with self._lock:
            expires_in = self._expires_in
            access = _Grant(api_key, tenant_id, game_id, device_id, user_id, now + expires_in)
            refresh = _Grant(api_key, tenant_id, game_id, device_id, user_id, None)
            access_token, refresh_token = self._token(access, "access", now), self._token(refresh, "refresh", now)
            self._access[access_token] = access
            self._refresh[refresh_token] = refresh
        return {"accessToken": access_token, "refreshToken": refresh_token, "tokenType": "Bearer",
                "expiresIn": expires_in, "userId": user_id, "deviceId": device_id, "gameId": game_id,
                "tenantId": tenant_id, "playerConfig": self.player_config(device_id)}

    def _token(self, grant: _Grant, kind: str, now: float) -> str:
        """A JWT-shaped token for `grant`, unique by its `jti`."""
        claims = {"sub": grant.user_id, "deviceId": grant.device_id, "tenantId": grant.tenant_id,
                  "gameId": grant.game_id, "typ": kind, "iat": int(now), "jti": secrets.token_hex(12)}
        if grant.expires_at is not None:
            claims["exp"] = int(grant.expires_at)
        signing_input = _JWT_HEADER + "." + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._token_key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(signature)}"

    def _authorize(self, request: Request, call: dict[str, Any]) -> _Grant:
        """The grant of the request's bearer token, which must be live and match X-Tenant-ID and X-Game-Id."""
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "no Authorization: Bearer <accessToken> header", INVALID_CREDENTIALS)
        now = self.now()
        with self._lock:
            grant = self._access.get(token.strip())
            if grant is not None and grant.expires_at is not None and grant.expires_at <= now:
                del self._access[token.strip()]
                call["device_id"] = grant.device_id
                raise Refused(401, f"access token expired {now - grant.expires_at:.1f} s ago", INVALID_CREDENTIALS)
        if grant is None:
            raise Refused(401, "unknown or revoked access token", INVALID_CREDENTIALS)
        call.update(api_key=grant.api_key, device_id=grant.device_id)
        for header, expected in (("X-Tenant-ID", grant.tenant_id), ("X-Game-Id", grant.game_id)):
            sent = request.headers.get(header)
            if sent is None:
                raise Refused(400, f"missing {header} header")
            if sent != expected:
                raise Refused(403, f"{header} {sent!r} is not the access token's ({expected!r})")
        return grant

    def _take_events(self, request: Request, grant: _Grant, call: dict[str, Any]) -> Response:
        shape = self._shape
        body = self.json_body(request)
        envelope = shape.events_envelope
        batch = (body.get(envelope) if isinstance(body, dict) else None) if envelope else body
        if not isinstance(batch, list):
            layout = "{" + ", ".join(shape.event_fields.values()) + "}"
            raise Refused(400, f"the body must be a JSON array of {layout}" +
                          (f", under {envelope!r} in an object" if envelope else ""))
        call["count"] = len(batch)
        check_batch(batch, shape.event_errors)
        received_at = time.time()
        with self._lock:
            for event in batch:
                self._events.append({"received_at": received_at, "api_key": grant.api_key,
                                     "tenant_id": grant.tenant_id, "game_id": grant.game_id,
                                     "device_id": grant.device_id, "user_id": grant.user_id, "event": event})
            self._accepted_events += len(batch)
        call["summary"] = summarize([event[shape.event_fields["type"]] for event in batch])
        return Response.json(200, {"accepted": len(batch)})

    # -- admin routes ----------------------------------------------------------------------------------

    def admin_action(self, method: str, name: str, query: Mapping[str, str], body: dict[str, Any]) -> Response:
        if (method, name) == ("GET", "events"):
            return self.page(self._events, "events", query, ("device_id",))
        if (method, name) == ("GET", "tenants"):
            return Response.json(200, {"tenants": self.tenants()})
        if (method, name) == ("PUT", "tenants"):
            self.register_tenant(required_field(body, "api_key"), required_field(body, "api_secret"),
                                 tenant_id=body.get("tenant_id"), game_id=body.get("game_id", DEV_GAME_ID))
            return Response.json(201, {"tenants": self.tenants()})
        if (method, name) == ("GET", "player-configs"):
            device_id = query.get("device_id")
            return Response.json(200, {"device_id": device_id, "playerConfig": self.player_config(device_id)})
        if (method, name) == ("PUT", "player-configs"):
            device_id = body.get("device_id")
            self.set_player_config(required_field(body, "playerConfig"), device_id)
            return Response.json(200, {"device_id": device_id, "playerConfig": self.player_config(device_id)})
        if (method, name) == ("PUT", "clock"):
            self.set_clock_offset(required_field(body, "offset_seconds"))
            return Response.json(200, {"offset_seconds": self._clock_offset, "now": self.now()})
        if (method, name) == ("GET", "settings"):
            return Response.json(200, self.settings())
        if (method, name) == ("PUT", "settings"):
            return Response.json(200, self.configure(**body))
        if (method, name) == ("POST", "revoke"):
            return Response.json(200, {"revoked": self.revoke_tokens(body.get("device_id"),
                                                                     refresh=body.get("refresh", False))})
        return super().admin_action(method, name, query, body)

    @staticmethod
    def _check_settings(expires_in: Any, rotate: Any) -> tuple[int, bool]:
        if type(expires_in) is not int or expires_in < 1:
            raise ValueError(f"expires_in must be a whole number of seconds >= 1, not {expires_in!r}")
        if type(rotate) is not bool:
            raise ValueError(f"rotate_refresh_tokens must be true or false, not {rotate!r}")
        return expires_in, rotate


# ---------------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------------

def serve(host: str = "127.0.0.1", port: int = 0, *, tenants: Mapping[str, str] | None = None,
          expires_in: int = DEFAULT_EXPIRES_IN, player_configs: Mapping[str, Any] | None = None,
          log_events: bool = True) -> None:
    """Run the sandbox until SIGINT or SIGTERM; prints `GameRamp sandbox listening on <url>` and the
    development credentials on stdout, and one log line per call on stderr (if `log_events` is False,
    only per refused call).
    `player_configs` is `{"default"?: config, "devices"?: {device_id: config}}`."""
    serve_sandbox(build(tenants, expires_in, player_configs), host, port, log_events)


def build(tenants: Mapping[str, str] | None = None, expires_in: int = DEFAULT_EXPIRES_IN,
          player_configs: Mapping[str, Any] | None = None) -> GameRampSandbox:
    """A sandbox with extra tenants and the player configs of a `--player-configs` file."""
    sandbox = GameRampSandbox(tenants, expires_in=expires_in)
    if player_configs is not None:
        if not isinstance(player_configs, Mapping) or set(player_configs) - {"default", "devices"}:
            raise ValueError('player configs must be {"default": config, "devices": {device_id: config}}')
        if "default" in player_configs:
            sandbox.set_player_config(player_configs["default"])
        devices = player_configs.get("devices", {})
        if not isinstance(devices, Mapping):
            raise ValueError("player configs: devices must map a device id to its config")
        for device_id, config in devices.items():
            sandbox.set_player_config(config, device_id)
    return sandbox


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bridge.sandbox.gameramp [--port N] ...`: the sandbox on its own."""
    parser = argparse.ArgumentParser(prog="python -m bridge.sandbox.gameramp",
                                     description="A local GameRamp API for development and tests.")
    parser.add_argument("--host", default="127.0.0.1", help="IP address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--tenant", action="append", default=[], metavar="API_KEY:API_SECRET",
                        help="register another tenant (repeatable); the docs' test tenant is always there")
    parser.add_argument("--expires-in", type=int, default=DEFAULT_EXPIRES_IN, help="access token lifetime, s")
    parser.add_argument("--player-configs", type=Path, metavar="FILE.json",
                        help='{"default": config, "devices": {"<deviceId>": config}}')
    parser.add_argument("--quiet", action="store_true", help="log only the refused calls")
    args = parser.parse_args(argv)
    tenants = key_pairs(parser, args.tenant, "--tenant")
    try:
        configs = json.loads(args.player_configs.read_text()) if args.player_configs else None
        serve(args.host, args.port, tenants=tenants, expires_in=args.expires_in, player_configs=configs,
              log_events=not args.quiet)
    except (OSError, ValueError) as exc:
        print(f"gameramp sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
