"""The operator's HTTP endpoints on a loopback port: `/health`, `/metrics`, the inspector page and its feed.

The server is the standard library's `ThreadingHTTPServer` in a thread of its own, a thread per connection.
The daemon is threads already (ingress, publisher, reporter; the lanes' asyncio loop is theirs alone, and a
slow browser must never hold a lane up); its clients are a person or two and a Prometheus scraper on loopback;
the inspector's live feed is server-sent events, one long plain HTTP response per page. A framework (aiohttp,
Starlette on uvicorn) would bring an event loop and dependencies for nothing these few routes need.

No login: the port is loopback only (config.check_http), every request must name a loopback host (a web
page elsewhere cannot reach it through DNS rebinding), and the one route that changes anything (re-queue)
wants a custom header, which a cross-site form cannot send.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgpack
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from .. import __version__
from ..config import check_http
from ..providers.base import Provider
from ..stats import Counters
from ..store import Delivery, Store, StoreViews, error_text, now_ms
from ..store.schema import dead_letters, events
from .feed import EVENT_KINDS, Feed, Filter, Reader, plain
from .health import Health, check
from .metrics import BridgeCollector, registry

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "inspector"
PAGES = {"/": ("index.html", "text/html; charset=utf-8"), "/inspector.js": ("inspector.js", "text/javascript"),
         "/inspector.css": ("inspector.css", "text/css")}
LOOPBACK_HOSTS = ("localhost", "::1")
CHANGE_HEADER = "X-Engine-Bridge"  # the re-queue route wants it: a cross-site form cannot send one
KEEPALIVE_S = 15.0
STREAM_SNDBUF = 64 * 1024
LINES_PER_WRITE = 100  # a feed's lines sent in one write at most (a turn shows up to 50 stored events)
DEAD_LETTERS_SHOWN = 200


@dataclass(frozen=True)
class OpsHooks:
    """What the operator's endpoints ask of the rest of the daemon, as callables: they import none of it."""

    stats: Callable[[], dict[str, Any]]  # the `stats` reply's builder (the same figures as `engine-bridge status`)
    status: Callable[[], dict[str, Any]]  # each provider's figures alone, as `stats` has them (no row counts)
    flush: Callable[[], None]  # lanes look at once (a re-queued dead letter goes now)
    configs: Callable[[str], tuple[dict[str, Any], int]]  # the publisher's current topics
    providers: Sequence[Provider]  # for each stored event's early word (routing, the rule it breaks)


class Ops:
    """Binds the port at once (a taken port stops start-up), serves from `run`."""

    def __init__(self, address: str, store: Store, counters: Counters, hooks: OpsHooks, data_dir: Path) -> None:
        host, port = check_http(address)
        self.store = store
        self.counters = counters
        self.hooks = hooks
        self.data_dir = data_dir
        self.delivery = Delivery(store)
        self.feed = Feed(store, hooks.providers, counters, hooks.configs, self.state)
        size = StoreViews(store).housekeeping.size_bytes
        self.registry = registry(BridgeCollector(hooks.stats, counters, self.feed, size))
        self.stopping = threading.Event()
        self.server = _Server((host, port), self)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.server.server_address[1]}/"

    def run(self, stop: threading.Event) -> None:
        """The feed in this thread, the server in another; both end at `stop`."""
        self.stopping = stop
        serving = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.25},
                                   name="ops http", daemon=True)
        serving.start()
        log.info("inspector, health and metrics on %s", self.url)
        try:
            self.feed.run(stop)
        finally:
            self.server.shutdown()
            self.server.server_close()

    # --- what the routes read -----------------------------------------------------------------------

    def health(self) -> Health:
        return check(self.hooks.status, self.feed.store_error, self.feed.failing, self.counters, self.data_dir)

    def state(self) -> dict[str, Any]:
        """The page's state: health, figures, providers, dead letters (never a secret: `stats` holds none).
        Pushed every few seconds while a page is open, so it counts no rows of the store (`stats` does)."""
        health = self.health()
        try:
            letters = [asdict(d) for d in self.delivery.dead_letters(None, DEAD_LETTERS_SHOWN)]
        except SQLAlchemyError:
            letters = []  # the health says why
        c = self.counters
        return {"health": health.to_json(), "providers": health.providers,
                "figures": {"daemon_version": __version__, "uptime_s": round(c.uptime(), 3), "clients": c.clients,
                            "received": c.received, "stored": c.stored, "duplicates": c.duplicates,
                            "rejected": c.rejected, "rate_10s": round(c.rate(), 1)},
                "dead_letters": letters}

    def configs(self) -> dict[str, Any]:
        topics: dict[str, Any] = plain(self.hooks.configs("")[0])
        return topics

    def event(self, pk: int) -> dict[str, Any] | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(events).where(events.c.pk == pk)).mappings().first()
        if row is None:
            return None
        found: dict[str, Any] = plain({**row, "fields": msgpack.unpackb(row["fields"])})
        return found

    def requeue(self, pk: int | None, provider: str | None) -> int:
        """Re-queue one dead letter (`pk`), a provider's, or all; the lanes look at once."""
        if pk is None:
            count = self.delivery.requeue(provider)
        else:
            with self.store.engine.begin() as conn:
                count = conn.execute(update(dead_letters).where(dead_letters.c.pk == pk,
                                                                dead_letters.c.requeued_at.is_(None))
                                     .values(requeued_at=now_ms())).rowcount
        if count:
            log.info("re-queued %d dead letter(s) from the inspector", count)
            self.hooks.flush()
        return count


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an open page never holds the daemon's stop

    def __init__(self, address: tuple[str, int], ops: Ops) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.ops = ops
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A reader that left mid-answer is no error; anything else is a bug, logged (never printed)."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("http %s left before its answer", client_address[0])
        else:
            log.exception("http: answering %s failed", client_address[0])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "engine-bridge"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s: " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        if not self._loopback_host():
            return
        url = urlsplit(self.path)
        route, query = url.path, parse_qs(url.query)
        ops = self.server.ops
        if route == "/health":
            health = ops.health()
            self._json(health.to_json(), HTTPStatus.OK if health.status == "ok" else HTTPStatus.SERVICE_UNAVAILABLE)
        elif route == "/metrics":
            self._metrics()
        elif route in PAGES:
            name, kind = PAGES[route]
            self._send(HTTPStatus.OK, (STATIC / name).read_bytes(), kind)
        elif route == "/events":
            self._stream(query)
        elif route == "/api/state":
            self._store_read(lambda: {**ops.state(), "configs": ops.configs()})
        elif route.startswith("/api/events/") and route.rpartition("/")[2].isdigit():
            self._store_read(lambda: ops.event(int(route.rpartition("/")[2])))
        else:
            self._json({"error": f"no such page: {route}"}, HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:
        if not self._loopback_host():
            return
        if urlsplit(self.path).path != "/api/dead-letters/requeue":
            self._json({"error": "no such route"}, HTTPStatus.NOT_FOUND)
            return
        if self.headers.get(CHANGE_HEADER) is None:
            self._json({"error": f"send the {CHANGE_HEADER} header (the inspector does)"}, HTTPStatus.FORBIDDEN)
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            pk, provider = body.get("pk"), body.get("provider")
            if not (pk is None or type(pk) is int) or not (provider is None or isinstance(provider, str)):
                raise ValueError("pk must be an integer, provider a string")
        except (ValueError, AttributeError) as exc:
            self._json({"error": f"a JSON object with pk or provider, please: {exc}"}, HTTPStatus.BAD_REQUEST)
            return
        self._store_read(lambda: {"requeued": self.server.ops.requeue(pk, provider)})

    # --- helpers ------------------------------------------------------------------------------------

    def _loopback_host(self) -> bool:
        host = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        if host in LOOPBACK_HOSTS or host.startswith("127."):
            return True
        self._json({"error": "this endpoint answers requests to a loopback host only"}, HTTPStatus.FORBIDDEN)
        return False

    def _metrics(self) -> None:
        try:
            body = generate_latest(self.server.ops.registry)
        except SQLAlchemyError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, f"the store cannot be read: {error_text(exc)}\n".encode(),
                       "text/plain; charset=utf-8")
            return
        self._send(HTTPStatus.OK, body, CONTENT_TYPE_LATEST)

    def _store_read(self, read: Callable[[], Any]) -> None:
        try:
            found = read()
        except SQLAlchemyError as exc:
            self._json({"error": f"the store cannot be read: {error_text(exc)}"}, HTTPStatus.SERVICE_UNAVAILABLE)
            return
        if found is None:
            self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
        else:
            self._json(found)

    def _json(self, value: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(value, default=str).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, query: dict[str, list[str]]) -> None:
        """Server-sent events: the feed's lines as they come, a `dropped` line when this reader lost some."""
        def wanted(name: str) -> frozenset[str] | None:
            values = {v for raw in query.get(name, []) for v in raw.split(",") if v}
            return frozenset(values) if values else None

        ops = self.server.ops
        reader = ops.feed.join(Filter(wanted("kind") or (None if query.get("all") else EVENT_KINDS),
                                      wanted("category"), wanted("provider"), wanted("user")),
                               recent=bool(query.get("recent")))
        self.close_connection = True
        # A small send buffer: a reader that stops reading fills it soon, and then loses lines from its own
        # queue, counted and told, rather than having megabytes of old lines wait in the kernel for it.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"retry: 1000\n: connected\n\n")
            self._pump(reader)
        except OSError:  # the reader left (a closed page, a stopped tap)
            pass
        finally:
            ops.feed.leave(reader)

    def _pump(self, reader: Reader) -> None:
        """The reader's lines, every one waiting in one write: the feed hands them over a turn's worth at a time,
        and a send (and a wake-up of the reader's side) per line cost the daemon's threads CPU for nothing."""
        idle = 0.0
        while not self.server.ops.stopping.is_set():
            item = reader.next(0.5)
            if item is None:
                idle += 0.5
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    self.wfile.write(b": keepalive\n\n")
                continue
            idle = 0.0
            lines = [item]
            while len(lines) < LINES_PER_WRITE and (more := reader.next(0)) is not None:
                lines.append(more)
            self.wfile.write("".join(f"event: {line['kind']}\ndata: {json.dumps(line, default=str)}\n\n"
                                     for line in lines).encode())
