"""A relay's CURVE-secured ingress: the socket, who may connect (a ZAP handler), and what each client key may
send (a rate and a daily quota), so that one forged client cannot flood the studio's providers. The day's
count is the store's (written in the events' own transaction), so it holds across restarts and across a fleet
of relays on one database; each relay reads it again every QUOTA_READ_S, so relays together may go over by
what the others took in that time.

The socket is a second ROUTER beside the loopback one, served by the same ingress loop; only CURVE
handshakes with the relay's server key get through (a NULL client fails its handshake), and the ZAP
handler, pyzmq's `ThreadAuthenticator`, lets in any client key or only the allow-list. Every message then
carries its client's key and network address as ZeroMQ message properties (`User-Id`, `Peer-Address`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from .keys import KeyPair
from .protocol import Code, ProtocolError

ZAP_DOMAIN = "engine-bridge-relay"
HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH |
                    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
DAY_S = 86_400
QUOTA_READ_S = 5.0  # how old a relay's view of a key's day count may be
MAX_KEYS_COUNTED = 1_000_000  # distinct client keys counted in stats, at most (forged keys cost no memory beyond)


@dataclass(frozen=True)
class RelaySettings:
    """The `[relay]` table: a relay's CURVE ingress and what one client key may send."""

    bind: str  # e.g. tcp://0.0.0.0:5560
    publish: str | None = None  # the CURVE configs socket, e.g. tcp://0.0.0.0:5561 (None: configs stay here)
    allow: tuple[str, ...] = ()  # client public keys (Z85); empty: any key (the limits below still hold)
    events_per_second: float = 200.0  # one client key's sustained rate ...
    burst_events: int = 2_000  # ... and how far above it a burst may go
    events_per_day: int = 500_000  # one client key's events per UTC day


@dataclass
class RelayFigures:
    """What `stats` shows of the relay's clients (written by the ingress thread and the ZAP handler)."""

    handshakes_refused: int = 0  # a NULL client, a wrong server key, a key off the allow-list
    keys_refused: int = 0  # of those, keys off the allow-list (the ZAP handler's word)
    subscriptions_refused: int = 0  # subscriptions to topics outside the subscriber's own devices
    rate_limited: int = 0  # requests refused for a key over its rate
    quota_exceeded: int = 0  # requests refused for a key over its day's quota
    keys_seen: set[bytes] = field(default_factory=set)

    def saw(self, key: bytes) -> None:
        if len(self.keys_seen) < MAX_KEYS_COUNTED:
            self.keys_seen.add(key)

    def to_wire(self) -> dict[str, Any]:
        return {"client_keys": len(self.keys_seen), "handshakes_refused": self.handshakes_refused,
                "keys_refused": self.keys_refused, "subscriptions_refused": self.subscriptions_refused,
                "rate_limited": self.rate_limited,
                "quota_exceeded": self.quota_exceeded}


class _AllowList:
    """The ZAP handler's question for each CURVE client: may this key connect?"""

    def __init__(self, allow: tuple[str, ...], figures: RelayFigures) -> None:
        self.allow = frozenset(key.encode("ascii") for key in allow)
        self.figures = figures

    def callback(self, domain: str, key: bytes) -> bool:
        if not self.allow or key in self.allow:
            return True
        self.figures.keys_refused += 1
        return False


class SecureSocket:
    """The relay's CURVE ROUTER (bound), its ZAP handler, and what its clients may send; `close` stops it.
    With `publish` set, also its CURVE configs socket (`xpub`), which the publisher's thread serves."""

    def __init__(self, ctx: zmq.Context[Any], settings: RelaySettings, keys: KeyPair,
                 counted: Callable[[str, int], int]) -> None:
        self.figures = RelayFigures()
        self.allowance = Allowance(settings, self.figures, counted)
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=_AllowList(settings.allow, self.figures))
        self.sock = _curve_server(ctx, zmq.ROUTER, keys)
        self.monitor = self.sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | HANDSHAKE_FAILED)
        self.xpub: zmq.Socket[bytes] | None = None
        try:
            self.sock.bind(settings.bind)
            if settings.publish is not None:
                # Subscriptions are the publisher's to grant (XPUB_MANUAL): each only to its own devices' topics.
                self.xpub = _curve_server(ctx, zmq.XPUB, keys)
                self.xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
                self.xpub.setsockopt(zmq.XPUB_MANUAL, 1)
                self.xpub.bind(settings.publish)
        except zmq.ZMQError:
            if self.xpub is not None:
                self.xpub.close(0)
            self.close()
            raise

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(0)
        self.auth.stop()


def _curve_server(ctx: zmq.Context[Any], kind: int, keys: KeyPair) -> zmq.Socket[bytes]:
    sock: zmq.Socket[bytes] = ctx.socket(kind)
    sock.linger = 0
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
    return sock


class Allowance:
    """Per client key, a token bucket of events per second and a count of events per UTC day (`counted` reads
    the store's count of a key's day: the caller writes what `take` let through with its events)."""

    def __init__(self, settings: RelaySettings, figures: RelayFigures, counted: Callable[[str, int], int]) -> None:
        self.rate = settings.events_per_second
        self.burst = float(settings.burst_events)
        self.per_day = settings.events_per_day
        self.figures = figures
        self.counted = counted
        self._buckets: dict[bytes, tuple[float, float]] = {}  # key -> (events left, at monotonic)
        self._days: dict[bytes, tuple[int, int, float]] = {}  # key -> (UTC day, events that day, read at monotonic)

    def forget_counts(self) -> None:
        """After a failed commit: what was taken since never reached the store; read the counts again."""
        self._days.clear()

    def take(self, key: bytes, events: int) -> int:
        """Let `events` through for `key`, or raise the error its client gets (nothing is then taken); returns
        the UTC day they count against."""
        wall, now = time.time(), time.monotonic()
        day = int(wall // DAY_S)
        today, used, read_at = self._days.get(key, (day, 0, -QUOTA_READ_S))
        if today != day or now - read_at >= QUOTA_READ_S:  # what this relay and the others have stored
            used, read_at = max(used if today == day else 0, self.counted(key.decode(), day)), now
        if used + events > self.per_day:
            self._days[key] = (day, used, read_at)
            self.figures.quota_exceeded += 1
            retry_ms = math.ceil(((day + 1) * DAY_S - wall) * 1000)
            raise ProtocolError(Code.QUOTA_EXCEEDED, f"this client key has sent its {self.per_day} events for "
                                "today (UTC); keep them and send again then", detail={"retry_after_ms": retry_ms})
        left, at = self._buckets.get(key, (self.burst, now))
        left = min(self.burst, left + (now - at) * self.rate)
        need = min(events, self.burst)  # a request larger than the burst goes once the bucket is full
        if need > left:
            self.figures.rate_limited += 1
            retry_ms = math.ceil((need - left) / self.rate * 1000)
            self._buckets[key] = (left, now)
            raise ProtocolError(Code.RATE_LIMITED, f"this client key is over {self.rate:g} events/s; send again "
                                "later", detail={"retry_after_ms": retry_ms})
        self._buckets[key] = (left - events, now)
        self._days[key] = (day, used + events, read_at)
        return day
