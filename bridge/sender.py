"""The one place provider HTTP requests are sent: a lane's client, its bound on requests in flight, and
what an answer without a verdict means (no answer, "later" statuses, Retry-After).

Providers build requests and read answers; they never hold a client nor catch a transport error. A request
an `httpx.Auth` flow adds (a login, a token refresh, GameAnalytics' signature) goes through here as part of
the request it serves, inside the same slot.
"""

from __future__ import annotations

import asyncio
import math
import time
from email.utils import parsedate_to_datetime

import httpx

from .providers.base import TryLater

# No answer at all (time-out, refused or dropped connection): what was asked is kept and retried.
TRANSIENT = (httpx.TimeoutException, httpx.TransportError)
# Answers that judge nothing of what was sent (these and every 5xx): retried after a backoff (or Retry-After).
LATER = frozenset({408, 425, 429})
CONNECTIONS_PER_POOL = 4


class Sender:
    """Sends for one lane: at most `max_in_flight` requests at once, each within `timeout_s`."""

    def __init__(self, timeout_s: float, max_in_flight: int, transport: httpx.AsyncBaseTransport | None = None) -> None:
        # httpcore looks at every connection of a pool (two system calls each) whenever a request starts or ends,
        # which took a third of a dedicated server's event loop with 32 in flight: several small pools instead,
        # a request handed one with a connection free (the most recently used first, so that they stay warm).
        count = 1 if transport is not None else math.ceil(max_in_flight / CONNECTIONS_PER_POOL)
        size = math.ceil(max_in_flight / count)
        pool = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self.clients = [httpx.AsyncClient(timeout=timeout_s, limits=pool, transport=transport) for _ in range(count)]
        self._free: asyncio.LifoQueue[httpx.AsyncClient] = asyncio.LifoQueue()
        for n in range(max_in_flight):
            self._free.put_nowait(self.clients[n % count])
        self.requests = 0

    async def send(self, request: httpx.Request, auth: httpx.Auth | None = None) -> httpx.Response:
        """The answer, whatever its status; TryLater when none came."""
        client = await self._free.get()
        try:
            self.requests += 1
            return await client.send(request, auth=auth)
        except TRANSIENT as exc:
            raise TryLater(f"{type(exc).__name__} talking to {request.url.host}") from None
        finally:
            self._free.put_nowait(client)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


def says_later(answer: httpx.Response) -> bool:
    return answer.status_code in LATER or answer.status_code >= 500


def retry_after(answer: httpx.Response) -> float | None:
    """Seconds the answer's Retry-After asks for (delta-seconds or an HTTP date), None if it has none."""
    value = answer.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
