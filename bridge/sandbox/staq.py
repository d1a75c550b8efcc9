"""A local //staq REST API v1 that follows its README, for developers and for tests.

What the docs say (`shared/providers/staq.md`) it does exactly; what they leave open it does as listed
here, and every line of it is a choice a client must not rely on beyond this sandbox. Routes are served
at the root and under `/v1` (the real base URL's path), so either base URL works.

- `POST /apps/{appId}/auth/device`, with the app's secret in the `AppSecret` header (the docs do not name
  the header: a setting), body `{deviceId: non-empty string, deviceInfo?: object}`: 200 `{appId, uid, sid,
  token}`. An unknown app, a missing or wrong secret answer 401 `{"error": <which>}`. `uid` is
  `uid-<16 hex digits>`, stable for an app and device (also across restarts); every authorization starts a
  new session: a new `sid` and `token`. Older tokens stay valid. Logs `server_SESSION_START`, preceded by
  `server_INSTALL` on the device's first authorization since start or reset.
- Routes under `/apps/{appId}/users/{uid}/` take `Auth-Token`: missing, unknown or revoked, or another
  user's or app's token answer 401 `{"error"}`. The docs tie the token to the user and the `sid` to the
  session, so the body's `sid` must be one of the user's sessions (any of them, whichever token comes with
  it), else 400 `{"error"}` naming the sid.
  - `events`, body `{sid, events: [{timestamp, event, value?, metadata?}]}`: `timestamp` is the Microsoft
    JSON date `/Date(<ms>[+-]hhmm)/` (in JSON text usually `"\\/Date(...)\\/"`; the offset may be left out
    and does not shift the instant), `event` a non-empty string, `value` a string, number, boolean or
    null, `metadata` an object or null. One invalid event refuses the batch with 400 `{"error", "invalid":
    [{"index", "errors"}]}`; so does an event whose name was made refused (`refuse_event`: staq's rules
    are not all documented, and a test stands for one the client cannot know with it). Success answers
    200 with the new event ids in order, `["eventid-000001", ...]`, unique for the sandbox's life (a reset
    does not reuse them).
  - `iap/apple` `{sid, receipt, priceUsd, status, comment?, metadata?}` and `iap/googleplay` (plus
    `signature`): `receipt` and `signature` must be standard base64, `priceUsd` a number >= 0, `status`
    `processing` or `completed`, `comment` a string or null, `metadata` an object or null (400 otherwise).
    Answers 200 `{"isValid", "isDuplicated"}` as the docs' examples spell it (their field list says
    `isDuplicate`: a setting). A receipt is valid as registered (`register_receipt`), an unknown one as the
    `unknown_receipts_valid` setting says (false by default). A valid receipt verified with status
    `completed` is spent for that app and store: from then on every verification of it answers the
    duplicate flag true. The first completion logs `server_IAP_COMPLETED` (value: priceUsd); a
    `processing` verification logs nothing and spends nothing.
- Request bodies over 1 MB answer 413; bodies that are not JSON, or have fields outside the documented
  ones, answer 400.
- Every call is one line on the logger `bridge.sandbox.staq` (a refused one as a warning, with its reason)
  and one call record.

Admin routes under `/_sandbox/` (JSON, no authentication: keep the sandbox on loopback, its default):

| method and path | does |
| --- | --- |
| `GET calls?route=&uid=&app_id=&device_id=&since=&limit=` | every call on a provider route |
| `GET events?uid=&event=&source=&since=&limit=` | client and server events: `{"events": [record...], "next"}` |
| `GET purchases?uid=&store=&since=&limit=` | every valid or invalid verification: `{"purchases": [...], "next"}` |
| `GET counts` | answers per route and status, events, server events, purchases, live sessions, faults fired |
| `GET faults`, `POST faults` (a `Fault` as JSON), `DELETE faults` | list, add, clear faults |
| `GET apps`, `PUT apps` `{"app_id", "app_secret"}` | registered apps (no secrets), add one |
| `GET receipts`, `PUT receipts` `{"receipt", "valid"}` | registered receipts, register one valid or invalid |
| `GET refused-events`, `PUT refused-events` `{"event", "reason"}` | event names answered 400 with the reason |
| `GET settings`, `PUT settings` `{"secret_header"?, "unknown_receipts_valid"?, "duplicate_field"?}` | switches |
| `POST revoke` `{"uid"?}` | revoke the tokens of a user (no uid: everyone's), forcing a new authorization |
| `POST reset` | forget calls, events, purchases, counts, faults, sessions, installs, receipts, refused |
| | events and setting changes; apps stay |

An event record is `{"index", "id", "app_id", "uid", "sid", "source" ("client" or "server"), "event",
"value", "timestamp" (as sent; null for server events), "time_ms", "metadata", "received_at"}`; a purchase
record is `{"index", "app_id", "uid", "sid", "store" ("apple" or "googleplay"), "receipt", "signature",
"priceUsd", "status", "comment", "metadata", "isValid", "isDuplicate", "received_at"}`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import itertools
import logging
import math
import re
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args
from urllib.parse import unquote

from bridge.sandbox.api import (
    DEFAULT_KEEP,
    Journal,
    JsonApiSandbox,
    Refused,
    Route,
    check_batch,
    key_pairs,
    required_field,
    serve_sandbox,
    string_field,
    summarize,
)
from bridge.sandbox.server import Request, Response

LOGGER_NAME = "bridge.sandbox.staq"
log = logging.getLogger(LOGGER_NAME)

# The app id of the docs' examples; the docs show no secret, so this one is ours. Always registered.
DEFAULT_APP_ID = "app-000001"
DEFAULT_APP_SECRET = "staq-sandbox-secret-000001"
DEFAULT_SECRET_HEADER = "AppSecret"

DuplicateField = Literal["isDuplicate", "isDuplicated"]
Store = Literal["apple", "googleplay"]
MAX_MS = 8_640_000_000_000_000  # the range of a JavaScript Date, which this format comes from

_USER_ROUTE = re.compile(r"(?:/v1)?/apps/([^/]+)/users/([^/]+)/(events|iap/apple|iap/googleplay)")
_AUTH_ROUTE = re.compile(r"(?:/v1)?/apps/([^/]+)/auth/device")
_MS_DATE = re.compile(r"/Date\((-?\d{1,16})(?:[+-](\d{2})(\d{2}))?\)/", re.ASCII)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DATE_FORM = '"\\/Date(<ms since the epoch>[+-]hhmm)\\/" in JSON, e.g. "\\/Date(1330848000000-0800)\\/"'


def ms_date(value: Any) -> int:
    """Milliseconds since the epoch of a `/Date(<ms>[+-]hhmm)/` timestamp; raises ValueError."""
    match = _MS_DATE.fullmatch(value) if isinstance(value, str) else None
    if match is None or abs(int(match[1])) > MAX_MS or (match[2] and (int(match[2]) > 14 or int(match[3]) > 59)):
        raise ValueError(f"timestamp must be {_DATE_FORM}, not {value!r}")
    return int(match[1])


def _event_errors(event: Any) -> list[str]:
    """What is wrong with one item of an events body."""
    if not isinstance(event, dict):
        return ["not a JSON object"]
    errors = []
    unknown = sorted(set(event) - {"timestamp", "event", "value", "metadata"})
    if unknown:
        errors.append(f"unknown field(s) {', '.join(unknown)}; an event takes timestamp, event, value, metadata")
    try:
        ms_date(event.get("timestamp"))
    except ValueError as exc:
        errors.append(str(exc))
    if not isinstance(event.get("event"), str) or not event["event"]:
        errors.append(f"event must be a non-empty string, not {event.get('event')!r}")
    if isinstance(event.get("value"), (dict, list)):
        errors.append("value must be a string, number, boolean or null")
    if event.get("metadata") is not None and not isinstance(event["metadata"], dict):
        errors.append(f"metadata must be a JSON object or null, not {event['metadata']!r}")
    return errors


def _base64required_field(body: Mapping[str, Any], name: str) -> str:
    value = string_field(body, name)
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, f"{name} must be standard base64 (A-Z a-z 0-9 + /, padded with =)") from None
    return value


def _optional(body: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise Refused(400, f"{name} must be {what} or null, not {value!r}")
    return value


@dataclass(frozen=True)
class _Session:
    app_id: str
    uid: str
    sid: str
    device_id: str


@dataclass(frozen=True)
class _Settings:
    secret_header: str = DEFAULT_SECRET_HEADER
    unknown_receipts_valid: bool = False
    duplicate_field: DuplicateField = "isDuplicated"

    def __post_init__(self) -> None:
        if not isinstance(self.secret_header, str) or not _HEADER_NAME.fullmatch(self.secret_header):
            raise ValueError(f"secret_header must be an HTTP header name, not {self.secret_header!r}")
        if type(self.unknown_receipts_valid) is not bool:
            raise ValueError(f"unknown_receipts_valid must be true or false, not {self.unknown_receipts_valid!r}")
        if self.duplicate_field not in get_args(DuplicateField):
            raise ValueError(f"duplicate_field must be isDuplicate or isDuplicated, not {self.duplicate_field!r}")


class StaqSandbox(JsonApiSandbox):
    """staq's device authorization, custom events and purchase verification; serve it with
    `SandboxServer(sandbox).start()`. The Python methods do what the admin routes do."""

    label = "staq"
    call_filters = ("route", "uid", "app_id", "device_id")

    def __init__(self, apps: Mapping[str, str] | None = None, *, secret_header: str = DEFAULT_SECRET_HEADER,
                 unknown_receipts_valid: bool = False, duplicate_field: DuplicateField = "isDuplicated",
                 keep: int = DEFAULT_KEEP) -> None:
        super().__init__(log, keep)
        self._initial_settings = _Settings(secret_header, unknown_receipts_valid, duplicate_field)
        self._settings = self._initial_settings
        self._apps: dict[str, str] = {}
        self._installed: set[tuple[str, str]] = set()
        self._sessions: dict[str, _Session] = {}  # by token
        self._user_sids: dict[tuple[str, str], set[str]] = {}  # (app, uid) -> every sid it was given
        self._refused_events: dict[str, str] = {}  # event name -> the reason staq gives
        self._receipts: dict[str, bool] = {}
        self._spent: set[tuple[str, str, str]] = set()  # (app, store, receipt) completed once
        self._events = Journal(keep)
        self._purchases = Journal(keep)
        self._event_ids = itertools.count(1)
        self._totals = {"events": 0, "server_events": 0, "purchases": 0}
        self.register_app(DEFAULT_APP_ID, DEFAULT_APP_SECRET)
        for app_id, app_secret in (apps or {}).items():
            self.register_app(app_id, app_secret)

    # -- Python API (the admin routes call these too) --------------------------------------------------

    def register_app(self, app_id: str, app_secret: str) -> None:
        """Accept device authorizations for `app_id` with `app_secret` (again: replaces the secret)."""
        if not isinstance(app_id, str) or not app_id or "/" in app_id:
            raise ValueError(f"app_id must be a non-empty string without '/', not {app_id!r}")
        if not isinstance(app_secret, str) or not app_secret:
            raise ValueError("app_secret must be a non-empty string")
        with self._lock:
            self._apps[app_id] = app_secret

    def apps(self) -> list[dict[str, str]]:
        """The registered apps, without their secrets."""
        with self._lock:
            return [{"app_id": app_id} for app_id in self._apps]

    def register_receipt(self, receipt: str, valid: bool = True) -> None:
        """Make verifications of `receipt` (the base64 text as sent) answer `isValid: valid`."""
        if not isinstance(receipt, str) or not receipt:
            raise ValueError("receipt must be a non-empty string (the base64 text the client sends)")
        if type(valid) is not bool:
            raise ValueError(f"valid must be true or false, not {valid!r}")
        with self._lock:
            self._receipts[receipt] = valid

    def refuse_event(self, event: str, reason: str) -> None:
        """Make every events post holding an event named `event` answer 400 with `reason` for it: a rule of
        staq's that a client cannot know beforehand."""
        if not isinstance(event, str) or not event:
            raise ValueError(f"event must be a non-empty string (an event name), not {event!r}")
        if not isinstance(reason, str) or not reason:
            raise ValueError("reason must be a non-empty string")
        with self._lock:
            self._refused_events[event] = reason

    def refused_events(self) -> list[dict[str, str]]:
        with self._lock:
            return [{"event": event, "reason": reason} for event, reason in self._refused_events.items()]

    def receipts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"receipt": receipt, "valid": valid} for receipt, valid in self._receipts.items()]

    def settings(self) -> dict[str, Any]:
        settings = self._settings
        return {"secret_header": settings.secret_header, "unknown_receipts_valid": settings.unknown_receipts_valid,
                "duplicate_field": settings.duplicate_field}

    def configure(self, *, secret_header: str | None = None, unknown_receipts_valid: bool | None = None,
                  duplicate_field: DuplicateField | None = None) -> dict[str, Any]:
        """Change the header the app secret travels in, what an unknown receipt is, and how the duplicate
        flag is spelled; answers the settings in force."""
        current = self._settings
        self._settings = _Settings(
            current.secret_header if secret_header is None else secret_header,
            current.unknown_receipts_valid if unknown_receipts_valid is None else unknown_receipts_valid,
            current.duplicate_field if duplicate_field is None else duplicate_field)
        return self.settings()

    def revoke_tokens(self, uid: str | None = None) -> int:
        """Revoke the tokens of `uid` (None: everyone's): its next call answers 401 until it authorizes
        again. Answers how many were revoked."""
        if uid is not None and not isinstance(uid, str):
            raise ValueError(f"uid must be a string or None (every user), not {uid!r}")
        with self._lock:
            doomed = [token for token, s in self._sessions.items() if uid is None or s.uid == uid]
            for token in doomed:
                del self._sessions[token]
        log.info("revoked %d token(s) of %s", len(doomed), uid or "every user")
        return len(doomed)

    def events(self, uid: str | None = None, event: str | None = None, source: str | None = None,
               since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Event records (client and server) from index `since`, oldest first, matching the filters given."""
        filters = {k: v for k, v in (("uid", uid), ("event", event), ("source", source)) if v is not None}
        return self._select(self._events, filters, since, limit)[0]

    def purchases(self, uid: str | None = None, store: Store | None = None, since: int = 0,
                  limit: int | None = None) -> list[dict[str, Any]]:
        """Verification records from index `since`, oldest first."""
        filters = {k: v for k, v in (("uid", uid), ("store", store)) if v is not None}
        return self._select(self._purchases, filters, since, limit)[0]

    def counts(self) -> dict[str, Any]:
        with self._lock:
            extra = {**self._totals, "sessions": len(self._sessions)}
        return {**super().counts(), **extra}

    def reset(self) -> None:
        """Forget calls, events, purchases, counts, faults, sessions, installs, receipts, refused events and
        setting changes; apps stay, and event ids are never reused."""
        super().reset()
        with self._lock:
            self._installed.clear()
            self._sessions.clear()
            self._user_sids.clear()
            self._refused_events.clear()
            self._receipts.clear()
            self._spent.clear()
            self._events.clear()
            self._purchases.clear()
            self._totals = dict.fromkeys(self._totals, 0)
            self._settings = self._initial_settings

    def credentials(self) -> list[str]:
        return [f"appId {DEFAULT_APP_ID} AppSecret {DEFAULT_APP_SECRET} "
                f"(sent in the {self._settings.secret_header} header)"]

    # -- routes ----------------------------------------------------------------------------------------

    def match(self, path: str) -> Route | None:
        found = _AUTH_ROUTE.fullmatch(path)
        if found:
            return Route("auth", "POST", {"app_id": unquote(found[1])})
        found = _USER_ROUTE.fullmatch(path)
        if found:
            return Route(found[3].replace("/", "_"), "POST", {"app_id": unquote(found[1]), "uid": unquote(found[2])})
        return None

    def serve_route(self, route: Route, request: Request, call: dict[str, Any]) -> Response:
        if route.name == "auth":
            return Response.json(200, self._authorize_device(route.params["app_id"], request, call))
        session = self._session(route.params["app_id"], route.params["uid"], request, call)
        if route.name == "events":
            return Response.json(200, self._take_events(session, request, call))
        store: Store = "apple" if route.name == "iap_apple" else "googleplay"
        return Response.json(200, self._verify(session, store, request, call))

    def _authorize_device(self, app_id: str, request: Request, call: dict[str, Any]) -> dict[str, str]:
        call["app_id"] = app_id
        header = self._settings.secret_header
        with self._lock:
            secret = self._apps.get(app_id)
        if secret is None:
            raise Refused(401, f"unknown app {app_id!r}")
        sent = request.headers.get(header)
        if sent is None:
            raise Refused(401, f"missing {header} header")
        if not hmac.compare_digest(sent.encode(), secret.encode()):
            raise Refused(401, f"{header} is not the secret of app {app_id!r}")
        body = self.json_object(request, ("deviceId",), ("deviceInfo",))
        device_id = string_field(body, "deviceId")
        device_info = _optional(body, "deviceInfo", dict, "a JSON object")
        uid = "uid-" + hashlib.sha256(f"{app_id}\0{device_id}".encode()).hexdigest()[:16]
        session = _Session(app_id, uid, "sid-" + secrets.token_hex(8), device_id)
        token = secrets.token_urlsafe(24)
        metadata = {"deviceId": device_id, "deviceInfo": device_info}
        with self._lock:
            install = (app_id, device_id) not in self._installed
            self._installed.add((app_id, device_id))
            self._sessions[token] = session
            self._user_sids.setdefault((app_id, uid), set()).add(session.sid)
            if install:
                self._server_event(session, "server_INSTALL", None, metadata)
            self._server_event(session, "server_SESSION_START", None, metadata)
        call.update(device_id=device_id, uid=uid, sid=session.sid, summary="install" if install else "new session")
        return {"appId": app_id, "uid": uid, "sid": session.sid, "token": token}

    def _session(self, app_id: str, uid: str, request: Request, call: dict[str, Any]) -> _Session:
        """The session of the request's Auth-Token, which must be the path's user's."""
        call.update(app_id=app_id, uid=uid)
        token = request.headers.get("Auth-Token")
        if not token:
            raise Refused(401, "missing Auth-Token header")
        with self._lock:
            session = self._sessions.get(token)
        if session is None:
            raise Refused(401, "unknown or revoked Auth-Token")
        if (session.app_id, session.uid) != (app_id, uid):
            raise Refused(401, f"the Auth-Token is user {session.uid!r}'s of app {session.app_id!r}")
        call["device_id"] = session.device_id
        return session

    def _body_session(self, body: Mapping[str, Any], session: _Session) -> _Session:
        """The session the body's `sid` names, which must be one of the token's user's."""
        sid = string_field(body, "sid")
        with self._lock:
            known = sid in self._user_sids.get((session.app_id, session.uid), ())
        if not known:
            raise Refused(400, f"sid {sid!r} is not a session of user {session.uid!r}")
        return replace(session, sid=sid)

    def _take_events(self, session: _Session, request: Request, call: dict[str, Any]) -> list[str]:
        body = self.json_object(request, ("sid", "events"))
        session = self._body_session(body, session)
        batch = body["events"]
        if not isinstance(batch, list):
            raise Refused(400, "events must be a JSON array of {timestamp, event, value, metadata}")
        call["count"] = len(batch)
        with self._lock:
            refused = dict(self._refused_events)
        check_batch(batch, lambda e: _event_errors(e) or ([refused[e["event"]]] if e["event"] in refused else []))
        with self._lock:
            ids = [self._record_event(session, "client", e["event"], e.get("value"), e.get("metadata"),
                                      e["timestamp"], ms_date(e["timestamp"])) for e in batch]
            self._totals["events"] += len(batch)
        call["summary"] = summarize([e["event"] for e in batch])
        return ids

    def _verify(self, session: _Session, store: Store, request: Request, call: dict[str, Any]) -> dict[str, bool]:
        required = ("sid", "receipt", "priceUsd", "status", *(("signature",) if store == "googleplay" else ()))
        body = self.json_object(request, required, ("comment", "metadata"))
        session = self._body_session(body, session)
        receipt = _base64required_field(body, "receipt")
        signature = _base64required_field(body, "signature") if store == "googleplay" else None
        price = body["priceUsd"]
        if type(price) not in (int, float) or not math.isfinite(price) or price < 0:
            raise Refused(400, f"priceUsd must be a number of dollars >= 0, such as 9.99, not {price!r}")
        status = body["status"]
        if status not in ("processing", "completed"):
            raise Refused(400, f"status must be processing or completed, not {status!r}")
        comment = _optional(body, "comment", str, "a string")
        metadata = _optional(body, "metadata", dict, "a JSON object")
        with self._lock:
            settings = self._settings
            valid = self._receipts.get(receipt, settings.unknown_receipts_valid)
            key = (session.app_id, store, receipt)
            duplicate = valid and key in self._spent
            if valid and not duplicate and status == "completed":
                self._spent.add(key)
                self._server_event(session, "server_IAP_COMPLETED", price,
                                   {"store": store, "comment": comment, "metadata": metadata})
            self._purchases.append({"app_id": session.app_id, "uid": session.uid, "sid": session.sid,
                                    "store": store, "receipt": receipt, "signature": signature, "priceUsd": price,
                                    "status": status, "comment": comment, "metadata": metadata, "isValid": valid,
                                    "isDuplicate": duplicate, "received_at": time.time()})
            self._totals["purchases"] += 1
        call["summary"] = f"{store} {status} {price} USD: {'valid' if valid else 'invalid'}" + \
            (", duplicate" if duplicate else "")
        return {"isValid": valid, settings.duplicate_field: duplicate}

    def _server_event(self, session: _Session, name: str, value: Any, metadata: dict[str, Any]) -> None:
        """Log an event the way staq's server does on its own; call with the lock held."""
        self._record_event(session, "server", name, value, metadata, None, int(time.time() * 1000))
        self._totals["server_events"] += 1

    def _record_event(self, session: _Session, source: str, name: str, value: Any, metadata: Any,
                      timestamp: str | None, time_ms: int) -> str:
        """Store one event and answer its new id; call with the lock held."""
        event_id = f"eventid-{next(self._event_ids):06d}"
        self._events.append({"id": event_id, "app_id": session.app_id, "uid": session.uid, "sid": session.sid,
                             "source": source, "event": name, "value": value, "timestamp": timestamp,
                             "time_ms": time_ms, "metadata": metadata, "received_at": time.time()})
        return event_id

    # -- admin routes ----------------------------------------------------------------------------------

    def admin_action(self, method: str, name: str, query: Mapping[str, str], body: dict[str, Any]) -> Response:
        if (method, name) == ("GET", "events"):
            return self.page(self._events, "events", query, ("uid", "event", "source"))
        if (method, name) == ("GET", "purchases"):
            return self.page(self._purchases, "purchases", query, ("uid", "store"))
        if (method, name) == ("GET", "apps"):
            return Response.json(200, {"apps": self.apps()})
        if (method, name) == ("PUT", "apps"):
            self.register_app(required_field(body, "app_id"), required_field(body, "app_secret"))
            return Response.json(201, {"apps": self.apps()})
        if (method, name) == ("GET", "receipts"):
            return Response.json(200, {"receipts": self.receipts()})
        if (method, name) == ("PUT", "receipts"):
            self.register_receipt(required_field(body, "receipt"), required_field(body, "valid"))
            return Response.json(201, {"receipts": self.receipts()})
        if (method, name) == ("GET", "refused-events"):
            return Response.json(200, {"refused_events": self.refused_events()})
        if (method, name) == ("PUT", "refused-events"):
            self.refuse_event(required_field(body, "event"), required_field(body, "reason"))
            return Response.json(201, {"refused_events": self.refused_events()})
        if (method, name) == ("GET", "settings"):
            return Response.json(200, self.settings())
        if (method, name) == ("PUT", "settings"):
            unknown = set(body) - set(self.settings())
            if unknown:
                raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
            return Response.json(200, self.configure(**body))
        if (method, name) == ("POST", "revoke"):
            return Response.json(200, {"revoked": self.revoke_tokens(body.get("uid"))})
        return super().admin_action(method, name, query, body)


# ---------------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------------

def serve(host: str = "127.0.0.1", port: int = 0, *, apps: Mapping[str, str] | None = None,
          secret_header: str = DEFAULT_SECRET_HEADER, receipts: Mapping[str, bool] | None = None,
          unknown_receipts_valid: bool = False, duplicate_field: DuplicateField = "isDuplicated",
          log_events: bool = True) -> None:
    """Run the sandbox until SIGINT or SIGTERM; prints `staq sandbox listening on <url>` and the default
    app's credentials on stdout, and one log line per call on stderr (if `log_events` is False, only per
    refused call)."""
    sandbox = StaqSandbox(apps, secret_header=secret_header, unknown_receipts_valid=unknown_receipts_valid,
                          duplicate_field=duplicate_field)
    for receipt, valid in (receipts or {}).items():
        sandbox.register_receipt(receipt, valid)
    serve_sandbox(sandbox, host, port, log_events)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bridge.sandbox.staq [--port N] ...`: the sandbox on its own."""
    parser = argparse.ArgumentParser(prog="python -m bridge.sandbox.staq",
                                     description="A local staq REST API for development and tests.")
    parser.add_argument("--host", default="127.0.0.1", help="IP address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--app", action="append", default=[], metavar="APP_ID:APP_SECRET",
                        help=f"register another app (repeatable); {DEFAULT_APP_ID} is always there")
    parser.add_argument("--secret-header", default=DEFAULT_SECRET_HEADER, help="header carrying the app secret")
    parser.add_argument("--valid-receipt", action="append", default=[], metavar="BASE64", help="(repeatable)")
    parser.add_argument("--invalid-receipt", action="append", default=[], metavar="BASE64", help="(repeatable)")
    parser.add_argument("--unknown-receipts", choices=("valid", "invalid"), default="invalid",
                        help="what a receipt registered neither way is (default invalid)")
    parser.add_argument("--duplicate-field", choices=get_args(DuplicateField), default="isDuplicated",
                        help="how answers spell the duplicate flag")
    parser.add_argument("--quiet", action="store_true", help="log only the refused calls")
    args = parser.parse_args(argv)
    apps = key_pairs(parser, args.app, "--app")
    receipts = {**dict.fromkeys(args.valid_receipt, True), **dict.fromkeys(args.invalid_receipt, False)}
    try:
        serve(args.host, args.port, apps=apps, secret_header=args.secret_header, receipts=receipts,
              unknown_receipts_valid=args.unknown_receipts == "valid", duplicate_field=args.duplicate_field,
              log_events=not args.quiet)
    except (OSError, ValueError) as exc:
        print(f"staq sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
