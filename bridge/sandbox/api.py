"""What the provider emulators share beyond HTTP itself: journals of calls, JSON body checks, admin pages,
the command-line plumbing. `server.py` carries requests; this module is the common ground of the emulators
built on it (GameRamp, staq; GameAnalytics uses the body helpers).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from bridge.sandbox.faults import Fault, FaultPlan
from bridge.sandbox.server import JSON_HEADERS, Request, Response, SandboxServer, serve_until_signalled

MAX_BODY_BYTES = 1_000_000  # ours: the docs give no limit
MAX_ADMIN_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_KEEP = 100_000  # records kept per journal; counts stay exact beyond it
DEFAULT_PAGE = 1000
ADMIN_PREFIX = "/_sandbox/"


def required_field(body: Mapping[str, Any], name: str) -> Any:
    """A required field of an admin body."""
    if name not in body:
        raise ValueError(f"the body needs {name!r}")
    return body[name]


def not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON value")


def query_int(query: Mapping[str, str], name: str, default: int, lowest: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < lowest:
        raise ValueError(f"{name} must be an integer >= {lowest}, not {text!r}")
    return int(text)


def admin_body(request: Request) -> dict[str, Any] | None:
    """The JSON object an admin call carries ({} for none); None when it is too large to read (left unread:
    the server closes the connection). ValueError when it is not a JSON object."""
    if request.content_length > MAX_ADMIN_BODY_BYTES:
        return None
    raw = request.read_body()
    body = json.loads(raw) if raw else {}
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def key_pairs(parser: argparse.ArgumentParser, items: Iterable[str], option: str) -> dict[str, str]:
    """`KEY:SECRET` command-line values (one per repeat of `option`) as a dict; a malformed one is a usage error."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, secret = item.partition(":")
        if not sep:
            parser.error(f"{option} wants KEY:SECRET, not {item!r}")
        pairs[key] = secret
    return pairs


class Journal:
    """The last `keep` records of one kind, each numbered from 0 in arrival order. Not locked: its owner
    holds its lock around every call."""

    def __init__(self, keep: int) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=keep)
        self._next = 0

    def append(self, record: dict[str, Any]) -> None:
        record["index"] = self._next
        self._next += 1
        self._items.append(record)

    def select(self, filters: Mapping[str, Any], since: int, limit: int | None) -> tuple[list[dict[str, Any]], int]:
        """Records from index `since` whose fields equal `filters`, at most `limit`; and the index to ask
        from next time."""
        first = self._next - len(self._items)
        out: list[dict[str, Any]] = []
        for record in itertools.islice(self._items, max(0, since - first), None):
            if limit is not None and len(out) >= limit:
                return out, record["index"]
            if all(record.get(name) == value for name, value in filters.items()):
                out.append(dict(record))
        return out, max(since, self._next)

    def clear(self) -> None:
        self._items.clear()
        self._next = 0


class Refused(Exception):
    """A provider call answered with an error: `body` is what the client gets (by default `{"error":
    reason}`), the reason is what the live log and the call record say."""

    def __init__(self, status: int, reason: str, body: Any = None) -> None:
        super().__init__(reason)
        self.status = status
        self.body = {"error": reason} if body is None else body


@dataclass(frozen=True)
class Route:
    """A provider route as matched: its name (what faults and records call it), method and path values."""

    name: str
    method: str
    params: Mapping[str, str]


class JsonApiSandbox:
    """What a JSON API emulator shares: route dispatch with 404/405, call records and counts, the live log,
    JSON bodies, and the admin routes for calls, counts, faults and reset. A subclass names its routes
    (`match`), serves them (`serve_route`), and adds admin actions (`admin_action`) and state (`reset`)."""

    label: ClassVar[str]  # the provider's name, as the start-up line prints it
    call_filters: ClassVar[tuple[str, ...]] = ("route",)  # query keys `GET calls` filters on

    def __init__(self, logger: logging.Logger, keep: int) -> None:
        if type(keep) is not int or keep < 1:
            raise ValueError(f"keep must be an integer >= 1, not {keep!r}")
        self.faults = FaultPlan()
        self.logger = logger
        self._lock = threading.Lock()
        self._calls = Journal(keep)
        self._by_route: dict[str, dict[str, int]] = {}

    # -- what a subclass provides ----------------------------------------------------------------------

    def match(self, path: str) -> Route | None:
        raise NotImplementedError

    def serve_route(self, route: Route, request: Request, call: dict[str, Any]) -> Response:
        """The answer on `route`; raises `Refused` for an error answer. Adds what it learns to `call`."""
        raise NotImplementedError

    def admin_action(self, method: str, name: str, query: Mapping[str, str], body: dict[str, Any]) -> Response:
        """An admin route of the subclass; it ends by deferring to this one, which knows the shared ones."""
        if (method, name) == ("GET", "calls"):
            return self.page(self._calls, "calls", query, self.call_filters)
        if (method, name) == ("GET", "counts"):
            return Response.json(200, self.counts())
        if (method, name) == ("GET", "faults"):
            return Response.json(200, {"faults": self.faults.pending()})
        if (method, name) == ("POST", "faults"):
            self.faults.add(Fault.from_json(body))
            return Response.json(201, {"faults": self.faults.pending()})
        if (method, name) == ("DELETE", "faults"):
            self.faults.clear()
            return Response.json(200, {"faults": []})
        if (method, name) == ("POST", "reset"):
            self.reset()
            return Response.json(200, {})
        return Response.json(404, {"error": f"no admin route {method} {ADMIN_PREFIX}{name}"})

    def credentials(self) -> list[str]:
        """Lines telling a developer what to configure, printed under the start-up line."""
        raise NotImplementedError

    # -- shared Python API -------------------------------------------------------------------------------

    def calls(self, route: str | None = None, since: int = 0, limit: int | None = None,
              **filters: Any) -> list[dict[str, Any]]:
        """Records of the calls on provider routes from index `since`, oldest first; `filters` match
        record fields (e.g. `device_id=`)."""
        if route is not None:
            filters["route"] = route
        return self._select(self._calls, filters, since, limit)[0]

    def counts(self) -> dict[str, Any]:
        """Answers per route and status since start or reset, and the faults fired."""
        with self._lock:
            routes = {k: dict(v) for k, v in self._by_route.items()}
        return {"routes": routes, "faults_fired": self.faults.fired()}

    def reset(self) -> None:
        """Forget calls, counts and faults (a subclass forgets its own state too)."""
        with self._lock:
            self._calls.clear()
            self._by_route.clear()
        self.faults.clear()

    # -- HTTP ------------------------------------------------------------------------------------------

    def fault_route(self, method: str, path: str) -> str | None:
        """A provider route's name; admin and unknown paths are never faulted."""
        route = self.match(path)
        return route.name if route else None

    def handle(self, request: Request) -> Response:
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        route = self.match(request.path)
        if route is None:
            return Response.json(404, {"error": f"no route {request.path}"})
        if request.method != route.method:
            return Response.json(405, {"error": f"use {route.method}"}, (*JSON_HEADERS, ("Allow", route.method)))
        call: dict[str, Any] = {"route": route.name, "received_at": time.time()}
        try:
            response = self.serve_route(route, request, call)
        except Refused as refused:
            response = Response.json(refused.status, refused.body)
            call["error"] = str(refused)
        call["status"] = response.status
        with self._lock:
            self._calls.append(call)
            statuses = self._by_route.setdefault(route.name, {})
            statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
        level = logging.INFO if response.status < 400 else logging.WARNING  # --quiet still shows refusals
        if self.logger.isEnabledFor(level):
            who = call.get("device_id") or call.get("uid") or "-"
            detail = call.get("error") or call.get("summary") or ""
            self.logger.log(level, "%-14s %d %s%s", route.name, response.status, who, f": {detail}" if detail else "")
        return response

    def json_body(self, request: Request) -> Any:
        """The request's JSON value; 413 over the size limit, 400 when not JSON (NaN and Infinity are not)."""
        if request.content_length > MAX_BODY_BYTES:  # left unread: the server closes the connection
            raise Refused(413, f"request body of {request.content_length} bytes is over the "
                               f"{MAX_BODY_BYTES}-byte limit")
        try:
            return json.loads(request.read_body(), parse_constant=not_json)
        except ValueError as exc:
            raise Refused(400, f"body is not valid JSON: {exc}") from None

    def json_object(self, request: Request, required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, Any]:
        """The request's JSON object, with every `required` key and no key outside `required` and `optional`."""
        body = self.json_body(request)
        required = tuple(required)
        if not isinstance(body, dict):
            raise Refused(400, f"the body must be a JSON object with {', '.join(required)}")
        missing = [name for name in required if name not in body]
        if missing:
            raise Refused(400, f"the body lacks {', '.join(missing)}")
        unknown = sorted(set(body) - set(required) - set(optional))
        if unknown:
            raise Refused(400, f"unknown field(s) {', '.join(unknown)}; the body takes "
                               f"{', '.join((*required, *optional))}")
        return body

    def _admin(self, request: Request) -> Response:
        name = request.path[len(ADMIN_PREFIX):].rstrip("/")
        try:
            body = admin_body(request)
            if body is None:
                return Response.json(413, {"error": "admin body too large"})
            return self.admin_action(request.method, name, request.query, body)
        except ValueError as exc:
            return Response.json(400, {"error": str(exc)})

    def page(self, journal: Journal, key: str, query: Mapping[str, str], filter_keys: Iterable[str]) -> Response:
        """`GET <key>?<filter>=&since=&limit=` on `journal`: `{key: [record...], "next": index}`."""
        filters = {name: query[name] for name in filter_keys if name in query}
        items, next_index = self._select(journal, filters, query_int(query, "since", 0, 0),
                                         query_int(query, "limit", DEFAULT_PAGE, 1))
        return Response.json(200, {key: items, "next": next_index})

    def _select(self, journal: Journal, filters: Mapping[str, Any], since: int,
                limit: int | None) -> tuple[list[dict[str, Any]], int]:
        if type(since) is not int or since < 0:
            raise ValueError(f"since must be an integer >= 0, not {since!r}")
        if limit is not None and (type(limit) is not int or limit < 1):
            raise ValueError(f"limit must be an integer >= 1 or None, not {limit!r}")
        with self._lock:
            return journal.select(filters, since, limit)


def string_field(body: Mapping[str, Any], name: str) -> str:
    """A body field that must be a non-empty string."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise Refused(400, f"{name} must be a non-empty string, not {value!r}")
    return value


def check_json(value: Any, what: str) -> Any:
    """A deep copy of `value` that proves it is JSON (no NaN, no sets, string keys)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None


def check_batch(batch: list[Any], errors_of: Callable[[Any], list[str]]) -> None:
    """Refuse the whole batch with 400 `{"error", "invalid": [{"index", "errors"}]}` if any item is invalid."""
    invalid = [(i, errors) for i, errors in enumerate(map(errors_of, batch)) if errors]
    if invalid:
        reason = " | ".join(f"event {i}: {'; '.join(errors)}" for i, errors in invalid)
        raise Refused(400, reason, {"error": reason, "invalid": [{"index": i, "errors": e} for i, e in invalid]})


def summarize(names: Sequence[str]) -> str:
    """The first names of a batch for its log line."""
    return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def start_logging(loggers: Iterable[logging.Logger], log_events: bool) -> None:
    """Log lines on stderr: one per call when `log_events`, else only the refused calls (warnings)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(message)s")
    for logger in loggers:
        logger.setLevel(logging.INFO if log_events else logging.WARNING)


def announce(label: str, url: str, credentials: Iterable[str]) -> None:
    """The start-up lines: `<label> sandbox listening on <url>`, then what to configure."""
    print(f"{label} sandbox listening on {url}", flush=True)
    for line in credentials:
        print(f"  {line}", flush=True)


def serve_sandbox(sandbox: JsonApiSandbox, host: str, port: int, log_events: bool) -> None:
    """Serve one emulator until SIGINT or SIGTERM, announcing its URL and credentials on stdout."""
    start_logging([sandbox.logger], log_events)
    serve_until_signalled(SandboxServer(sandbox, host, port),
                          lambda server: announce(sandbox.label, server.url, sandbox.credentials()))
