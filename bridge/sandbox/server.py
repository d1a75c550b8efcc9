"""The HTTP side of the local provider sandboxes: a loopback server on a background thread.

An emulator (such as `GameAnalyticsSandbox`) turns a `Request` into a `Response` and owns a `FaultPlan`;
this module owns everything else: sockets, HTTP/1.1 keep-alive, carrying out faults, a standing latency
(`latency_s`: every request on a provider route answered that much later, as a collector far away would),
and starting and stopping cleanly, in-process (tests: `SandboxServer(...).start()`, `.url`, `.stop()`) or
until a signal (the `engine-bridge sandbox` command: `serve_until_signalled`). Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from bridge.sandbox.faults import MAX_DELAY_S, FaultPlan

log = logging.getLogger("bridge.sandbox.http")

IDLE_TIMEOUT_S = 120.0  # a keep-alive connection idle this long is closed, so its thread ends
JSON_HEADERS = (("Content-Type", "application/json"),)


class Request:
    """One HTTP request as an emulator sees it; the body is read only when the emulator asks for it, so an
    emulator can refuse an oversized body (or drop the connection) without reading it."""

    __slots__ = ("_body", "_rfile", "content_length", "headers", "method", "path", "query")

    def __init__(self, method: str, path: str, query: Mapping[str, str], headers: Message,
                 content_length: int, rfile: BufferedIOBase) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.content_length = content_length
        self._rfile = rfile
        self._body: bytes | None = None

    @property
    def body_read(self) -> bool:
        return self._body is not None

    def read_body(self) -> bytes:
        """The exact body bytes as sent; raises ConnectionError if the client hangs up before the end."""
        if self._body is None:
            body = self._rfile.read(self.content_length) if self.content_length else b""
            if len(body) != self.content_length:
                raise ConnectionError("client closed the connection before the end of the body")
            self._body = body
        return self._body


@dataclass(frozen=True)
class Response:
    """What to answer: a status, body and headers, or (`drop`) nothing at all but a closed connection."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = JSON_HEADERS
    drop: bool = False

    @classmethod
    def json(cls, status: int, value: Any, headers: tuple[tuple[str, str], ...] = JSON_HEADERS) -> Response:
        return cls(status, json.dumps(value, separators=(",", ":")).encode(), headers)


DROP = Response(0, drop=True)


class Emulator(Protocol):
    """A provider emulator: its routes' behaviour, and the faults queued against them."""

    faults: FaultPlan

    def fault_route(self, method: str, path: str) -> str | None:
        """The route name faults are matched against, or None for a request faults never touch (admin)."""
        ...

    def handle(self, request: Request) -> Response:
        """The answer to `request`; may raise ConnectionError when the client went away."""
        ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes; no 40 ms delayed-ACK stalls
    timeout = IDLE_TIMEOUT_S
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_GET

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header; from the emulator's clock when it keeps one (`now()`), so a shifted sandbox clock
        shows in every answer, faults included."""
        clock = getattr(self.server.emulator, "now", None)
        return super().date_time_string(clock() if timestamp is None and callable(clock) else timestamp)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        emulator = self.server.emulator
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self._write(Response.json(411, {"error": "send a Content-Length; chunked bodies are not read"}))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self.close_connection = True
            self._write(Response.json(400, {"error": "bad Content-Length"}))
            return
        url = urlsplit(self.path)
        request = Request(self.command, url.path, dict(parse_qsl(url.query)), self.headers, length, self.rfile)
        try:
            with self.server.answering_one():
                response = self._answer(emulator, request)
        except ConnectionError:
            self.close_connection = True
            return
        if not request.body_read and length:
            self.close_connection = True  # the unread body would be taken for the next request
        self._write(response)

    def _answer(self, emulator: Emulator, request: Request) -> Response:
        route = emulator.fault_route(request.method, request.path)
        fault = emulator.faults.take(route) if route is not None else None
        # The standing latency and a delay fault are one wait on this connection's own thread: requests on
        # other connections wait side by side, not one after another. Admin routes (route None) never wait.
        late_s = (self.server.latency_s if route is not None else 0.0) + \
            (fault.delay_s if fault is not None and fault.kind == "delay" else 0.0)
        if late_s > 0:
            time.sleep(late_s)
        if fault is not None and fault.kind != "delay":
            request.read_body()
            log.info("fault on %s: %s", route, "connection dropped" if fault.kind == "drop" else fault.status)
            return DROP if fault.kind == "drop" else Response(fault.status, fault.body.encode())
        try:
            return emulator.handle(request)
        except ConnectionError:
            raise
        except Exception as exc:  # a sandbox bug must answer, not leave the client hanging
            log.exception("sandbox error on %s %s", request.method, request.path)
            return Response.json(500, {"error": f"sandbox internal error: {exc!r}"})

    def _write(self, response: Response) -> None:
        if response.drop:
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(response.body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop(); they are shut down instead
    # The listen backlog: socketserver's 5 has the kernel reset connections made side by side before they are
    # accepted (a lane with a few dozen requests in flight opens that many at once), an error no real
    # collector shows. The kernel caps it at net.core.somaxconn.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.answering = 0  # requests being answered now, and the most at once: a client's concurrency
        self.peak_answering = 0
        self.latency_s = 0.0  # set by SandboxServer
        super().__init__(address, _Handler)

    @contextlib.contextmanager
    def answering_one(self) -> Iterator[None]:
        with self._connections_lock:
            self.answering += 1
            self.peak_answering = max(self.peak_answering, self.answering)
        try:
            yield
        finally:
            with self._connections_lock:
                self.answering -= 1

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up before its (delayed) answer is a normal event here, not a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            log.debug("client %s left before its answer: %s", client_address, exc)
            return
        super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection, so a stopped sandbox answers nothing more even on kept-alive sockets."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by its client
                conn.shutdown(socket.SHUT_RDWR)


def _checked_latency(latency_s: float) -> float:
    if type(latency_s) not in (int, float) or not 0 <= latency_s <= MAX_DELAY_S:
        raise ValueError(f"latency_s must be a number of seconds from 0 to {MAX_DELAY_S:g}, not {latency_s!r}")
    return float(latency_s)


class SandboxServer:
    """One emulator served over HTTP on a background thread: `start()`, `.url`, `stop()`, or `with`.

    `latency_s` answers every request on the emulator's provider routes (those its faults can hit; never its
    admin routes) that many seconds late, before anything else happens to it: concurrent requests each wait
    `latency_s`, side by side. Unlike a delay fault it is no entry of the emulator's `FaultPlan`, so it
    outlives a reset or a cleared plan, and faults queued meanwhile fire as usual, late (a delay fault adds to
    it). It can be changed while the server runs.
    """

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0, *,
                 latency_s: float = 0.0) -> None:
        if not hasattr(emulator, "handle") or not isinstance(getattr(emulator, "faults", None), FaultPlan):
            raise TypeError("emulator must have handle(request) and a FaultPlan in .faults")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be an address to bind such as 127.0.0.1, not {host!r}")
        if type(port) is not int or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer from 0 (any free port) to 65535, not {port!r}")
        self.emulator = emulator
        self.host = host
        self._requested_port = port
        self._latency_s = _checked_latency(latency_s)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def latency_s(self) -> float:
        """Seconds every provider-route request waits before it is handled (0: none)."""
        return self._latency_s

    @latency_s.setter
    def latency_s(self, latency_s: float) -> None:
        self._latency_s = _checked_latency(latency_s)
        if self._httpd is not None:
            self._httpd.latency_s = self._latency_s

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the sandbox server is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The base URL to give a client in place of the provider's, e.g. http://127.0.0.1:43117."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def peak_concurrency(self) -> int:
        """The most requests this server was answering at once."""
        return self._httpd.peak_answering if self._httpd is not None else 0

    def start(self) -> SandboxServer:
        """Bind (raising OSError if the port is taken) and serve on a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("the sandbox server is already started")
        self._httpd = _HTTPServer((self.host, self._requested_port), self.emulator)
        self._httpd.latency_s = self._latency_s
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sandbox-http-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection and release the port. Safe to call twice."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_until_signalled(server: SandboxServer,
                          on_started: Callable[[SandboxServer], None] | None = None) -> None:
    """Start `server`, call `on_started` (to print its URL, say), block until SIGINT or SIGTERM, then stop
    it: the main loop of the `engine-bridge sandbox` command."""
    stopping = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stopping.set())
    server.start()
    try:
        if on_started is not None:
            on_started(server)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
