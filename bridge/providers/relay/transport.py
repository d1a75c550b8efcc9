"""Protocol v1 over a CURVE DEALER, as an httpx transport, so that the lane sends to a relay exactly as it sends
to an HTTP provider: the same bound on requests in flight, time-outs, backoff and Retry-After.

httpx's transports are its one narrow interface (its own carry requests to ASGI and WSGI apps, never to the
network); this one carries a `Call`'s request to a relay. A request names its connection (one per device,
as a `hello` is per connection) and holds, in its extensions, the `hello` to say first and the protocol
messages to send in order: a run of `events` requests goes out at once (up to PIPELINED), anything else alone,
once the messages before it have their replies, so that a device's session start is answered before its events
go. The response's body is the list of replies (msgpack), shorter than the messages when the sequence stopped
early; `X-Stopped` then says why, and the rest is sent again later.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgpack
import zmq
import zmq.asyncio

from ...keys import KeyPair
from ...protocol import Code

EXTENSION = "engine_bridge.relay"
# Answers that say "not now": the rest of the sequence waits (the lane backs off, Retry-After from detail).
PIPELINED = 4  # `events` requests out at once on a device's connection: the relay's commit, not the way, sets the pace
LATER_CODES = {Code.RATE_LIMITED: 429, Code.QUOTA_EXCEEDED: 429, Code.UNAVAILABLE: 503, Code.INTERNAL: 503}


@dataclass
class Exchange:
    """What a relay request carries: the connection (a device), its hello, the messages to send in order."""

    connection: str
    hello: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)


class _Link:
    """One device's DEALER to the relay, with the hello it last said on it."""

    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, relay_key: bytes, keys: KeyPair) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.CURVE_SERVERKEY, relay_key)
        self.sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
        self.sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
        self.sock.connect(endpoint)
        self.greeted: dict[str, Any] | None = None
        self.lock = asyncio.Lock()
        self._rids = itertools.count(1)

    async def send(self, message: dict[str, Any]) -> int:
        """Send one message; returns the rid its reply will carry."""
        rid = next(self._rids) & 0xFFFFFFFF
        await self.sock.send(msgpack.packb({**message, "rid": rid}, use_bin_type=True))
        return rid

    async def replies(self, rids: list[int], timeout_s: float) -> list[dict[str, Any]]:
        """The replies to `rids`, in their order, whatever order they come in (replies to earlier, abandoned
        requests are skipped)."""
        wanted = set(rids)
        got: dict[int, dict[str, Any]] = {}
        async with asyncio.timeout(timeout_s):
            while len(got) < len(wanted):
                reply = msgpack.unpackb(await self.sock.recv(), raw=False)
                if isinstance(reply, dict) and reply.get("rid") in wanted:
                    got[reply["rid"]] = reply
        return [got[rid] for rid in rids]

    async def ask(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """One message and its reply."""
        return (await self.replies([await self.send(message)], timeout_s))[0]

    async def greet(self, hello: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        reply = await self.ask({"type": "hello", **hello}, timeout_s)
        self.greeted = hello if reply.get("type") == "welcome" else None
        return reply


class RelayTransport(httpx.AsyncBaseTransport):
    """Requests to one relay, a CURVE connection per device; a connection that timed out is made anew."""

    def __init__(self, endpoint: str, relay_key: bytes, keys: KeyPair, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.relay_key = relay_key
        self.keys = keys
        self.timeout_s = timeout_s
        self.ctx = zmq.asyncio.Context()
        self.links: dict[str, _Link] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        exchange: Exchange = request.extensions[EXTENSION]
        link = self.links.get(exchange.connection)
        if link is None:
            link = self.links[exchange.connection] = _Link(self.ctx, self.endpoint, self.relay_key, self.keys)
        async with link.lock:
            try:
                return await self._run(link, exchange, request)
            except TimeoutError:
                self._drop(exchange.connection)
                raise httpx.ReadTimeout(f"no answer from the relay within {self.timeout_s:g} s",
                                        request=request) from None

    async def _run(self, link: _Link, exchange: Exchange, request: httpx.Request) -> httpx.Response:
        replies: list[dict[str, Any]] = []
        messages = exchange.messages
        greeted_again_at = -1
        while len(replies) < len(messages):
            if link.greeted != exchange.hello:
                welcome = await link.greet(exchange.hello, self.timeout_s)
                if welcome.get("type") != "welcome":
                    return _stopped(replies, welcome, request, "the relay refused the hello")
            window = _window(messages, len(replies))
            answers = await link.replies([await link.send(m) for m in window], self.timeout_s)
            for reply in answers:
                if reply.get("code") == Code.HELLO_REQUIRED and greeted_again_at != len(replies):
                    link.greeted = None  # the relay restarted and forgot us: once more from this message
                    greeted_again_at = len(replies)
                    break
                if reply.get("type") == "error" and reply.get("code") in LATER_CODES:
                    return _stopped(replies, reply, request, f"the relay answered {reply.get('code')}")
                replies.append(reply)
        return httpx.Response(200, content=msgpack.packb(replies, use_bin_type=True), request=request)

    def _drop(self, connection: str) -> None:
        link = self.links.pop(connection, None)
        if link is not None:
            link.sock.close(0)

    async def aclose(self) -> None:
        for connection in list(self.links):
            self._drop(connection)
        self.ctx.term()


def _window(messages: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    """The messages sent before their replies are read: a run of up to PIPELINED `events` requests (their order
    at the relay does not matter: each event is deduplicated there, and a refused one is sent again), or one
    other message alone (a session's start is answered before the events that follow it go)."""
    end = start + 1
    while (end < len(messages) and end - start < PIPELINED and messages[start]["type"] == "events"
           and messages[end]["type"] == "events"):
        end += 1
    return messages[start:end]


def _stopped(replies: list[dict[str, Any]], refusal: dict[str, Any], request: httpx.Request,
             why: str) -> httpx.Response:
    """The replies so far; nothing done at all, a "later" refusal is the lane's to wait on (429/503)."""
    detail = refusal.get("detail")
    detail = detail if isinstance(detail, dict) else {}
    headers = {"X-Stopped": f"{why}: {refusal.get('message', '')}"[:500]}
    if isinstance(detail.get("retry_after_ms"), int):
        headers["Retry-After"] = str(math.ceil(detail["retry_after_ms"] / 1000))
    status = LATER_CODES.get(str(refusal.get("code")), 200) if not replies else 200
    return httpx.Response(status, content=msgpack.packb(replies, use_bin_type=True), headers=headers,
                          request=request)
