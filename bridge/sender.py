"""The one place provider HTTP requests are sent: a lane's client, its bound on requests in flight, and
what an answer without a verdict means (no answer, "later" statuses, Retry-After).

Providers build requests and read answers; they never hold a client nor catch a transport error. A request
an `httpx.Auth` flow adds (a login, a token refresh, GameAnalytics' signature) goes through here as part of
the request it serves, inside the same slot.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime

import httpx

from .providers.base import TryLater

# No answer at all (time-out, refused or dropped connection): what was asked is kept and retried.
TRANSIENT = (httpx.TimeoutException, httpx.TransportError)
# Answers that judge nothing of what was sent (these and every 5xx): retried after a backoff (or Retry-After).
LATER = frozenset({408, 425, 429})


class Sender:
    """Sends for one lane: at most `max_in_flight` requests at once, each within `timeout_s`."""

    def __init__(self, timeout_s: float, max_in_flight: int, transport: httpx.AsyncBaseTransport | None = None) -> None:
        # As many connections as requests in flight: httpcore looks at every pooled connection (a system call
        # for each idle one) at each request it starts and ends, so a larger pool costs CPU and buys nothing.
        pool = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
        self.client = httpx.AsyncClient(timeout=timeout_s, limits=pool, transport=transport)
        self.slots = asyncio.Semaphore(max_in_flight)
        self.requests = 0

    async def send(self, request: httpx.Request, auth: httpx.Auth | None = None) -> httpx.Response:
        """The answer, whatever its status; TryLater when none came."""
        async with self.slots:
            self.requests += 1
            try:
                return await self.client.send(request, auth=auth)
            except TRANSIENT as exc:
                raise TryLater(f"{type(exc).__name__} talking to {request.url.host}") from None

    async def aclose(self) -> None:
        await self.client.aclose()


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
