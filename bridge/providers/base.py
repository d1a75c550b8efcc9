"""The one interface every provider implements: it builds requests and classifies answers; the lane sends.

The dispatcher never knows which provider it drives. A lane claims stored events, asks the provider which it
takes (`accepts`), has it turn a batch into `Call`s (`build`), sends them itself (one place holds the HTTP
client, time-outs, bounded concurrency, backoff and `Retry-After`) and has the provider read each answer
(`classify`) into an `Outcome`. Authentication rides on the requests as `httpx.Auth` flows, so a re-login or
a token refresh is part of sending, never a provider's own retry loop. The ingress asks `check` as events
arrive, so an engine learns in its ack that a provider will refuse an event. A provider implements only the
hooks it needs (aiosmtpd's handlers are the model).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import httpx

from ..store import Erasure, Player, Purchase, PurchaseResult, StoredEvent, StoreViews
from .settings import LaneSettings


class TryLater(Exception):
    """What was asked cannot be done now and is retried later: no answer (time-out, refused or dropped
    connection, raised by the lane's sending) or a missing prerequisite (a login that failed). The message
    says why, for `status`."""


class Paused(TryLater):
    """The provider must not be sent to for a while (disabled, keys refused): the events are kept."""


@dataclass
class Call:
    """One request a provider built, and what `classify` needs to read its answer."""

    request: httpx.Request
    key: str = ""  # calls of one key (a player) are sent one after another, in the order they were built
    auth: httpx.Auth | None = None
    context: Any = None  # the provider's own, e.g. the event bodies a 400 answer refers to


@dataclass
class Outcome:
    """What became of some events. Events in none of the lists are retried later (transient failure)."""

    delivered: set[int] = field(default_factory=set)  # event pks the provider accepted
    dead: list[tuple[int, str, str]] = field(default_factory=list)  # (pk, code, reason): refused for good
    refs: list[tuple[int, str]] = field(default_factory=list)  # (pk, the provider's id for the event)
    then: list[Call] = field(default_factory=list)  # calls sent instead of the one classified (a split)
    error: str | None = None  # why the rest was not delivered, for `status`
    retry_after: float | None = None  # seconds the provider asked us to wait (Retry-After)
    paused: str | None = None  # the provider must not be sent to now (disabled, wrong keys): why
    crashed: bool = False  # a hook raised: set by the lane, never by a provider

    def merge(self, other: Outcome) -> None:
        self.delivered |= other.delivered
        self.dead.extend(other.dead)
        self.refs.extend(other.refs)
        self.error = other.error or self.error
        self.paused = other.paused or self.paused
        self.crashed = self.crashed or other.crashed
        if other.retry_after is not None:
            self.retry_after = max(self.retry_after or 0.0, other.retry_after)


@dataclass
class Built:
    """A batch turned into calls, with what was settled without a request (invalid events, session starts)."""

    calls: list[Call] = field(default_factory=list)
    settled: Outcome = field(default_factory=Outcome)


@dataclass
class Erased:
    """What a provider did about a forgotten player's copy at the provider: `requested` (its deletion API took
    the request: `detail` is the answer), `manual` (it has none: `detail` says what the studio asks for by hand),
    `failed`; `ids` is what the provider knows the player as."""

    status: str
    ids: dict[str, Any]
    detail: str


class Send(Protocol):
    """The lane's one sending site; raises TryLater when no answer came."""

    def __call__(self, request: httpx.Request, auth: httpx.Auth | None = None) -> Awaitable[httpx.Response]: ...


class Clock:
    """Wall and monotonic time as a provider reads them; a test hands in one it moves by hand (token expiry,
    refresh timers) instead of sleeping."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


EXCLUSIVE_WAIT_S = 60.0  # how long a section waits for another daemon's: a login and its retry, at long time-outs
EXCLUSIVE_POLL_S = (0.01, 0.25)  # the first and the longest pause between tries of a section held elsewhere


class ProviderStore:
    """The store as a provider sees it: its own kept state and the few facts it asks for. Each call runs in a
    thread, off the event loop, so that a stalled database delays no provider's HTTP."""

    def __init__(self, views: StoreViews, provider: str) -> None:
        self._views = views
        self._provider = provider
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # key -> its lock here, and how many want it

    @property
    def shared(self) -> bool:
        """Other daemons of a fleet read and write this state too (PostgreSQL): what memory holds of it may be
        stale, and the store is the authority; false on SQLite (one daemon: memory is)."""
        return self._views.state.shared

    async def get(self, key: str) -> Any:
        return await asyncio.to_thread(self._views.state.get, self._provider, key)

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The values of these keys that were set, in one query."""
        if not keys:
            return {}
        return await asyncio.to_thread(self._views.state.get_many, self._provider, keys)

    async def set(self, key: str, value: Any) -> None:
        await asyncio.to_thread(self._views.state.set, self._provider, key, value)

    async def set_many(self, values: dict[str, Any]) -> None:
        """Set these keys' values in one transaction."""
        await asyncio.to_thread(self._views.state.set_many, self._provider, values)

    async def take_due(self, keys: list[str], now_s: float, every_s: float) -> list[str]:
        """Of these keys, those no daemon took within `every_s` before `now_s`, now taken by this one: each goes
        to one daemon of a fleet per period."""
        if not keys:
            return []
        return await asyncio.to_thread(self._views.state.take_due, self._provider, keys, int(now_s * 1000),
                                       int(every_s * 1000))

    async def device(self, device_id: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._views.state.device, device_id)

    async def latest_device(self) -> dict[str, Any] | None:
        return await asyncio.to_thread(self._views.state.latest_device)

    async def active_players(self, seen_since_s: float, playing: bool = False) -> list[Player]:
        return await asyncio.to_thread(self._views.state.active_players, seen_since_s, playing)

    async def consents_after(self, after: tuple[int, str, str]) -> list[tuple[int, str, str, str, str]]:
        return await asyncio.to_thread(self._views.state.consents_after, after)

    async def purchase_sent(self, pk: int) -> None:
        await asyncio.to_thread(self._views.purchases.purchase_sent, pk)

    async def receipt_granted(self, purchase: Purchase) -> bool:
        return await asyncio.to_thread(self._views.purchases.receipt_granted, purchase)

    @asynccontextmanager
    async def exclusive(self, key: str, wait_s: float = EXCLUSIVE_WAIT_S) -> AsyncIterator[None]:
        """One holder of `key` at a time: in this daemon (an asyncio lock), and on a shared store across the fleet
        too (the store's advisory lock, held on a connection of its own). Another daemon's hold is tried again
        after pauses on the event loop, never waited for in a thread (the few threads every store call shares);
        TryLater when it was held elsewhere for all of `wait_s`."""
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                if not self.shared:
                    yield
                    return
                section = await self._hold(key, wait_s)
                try:
                    yield
                finally:
                    await asyncio.shield(asyncio.to_thread(section.__exit__, None, None, None))
        finally:
            lock, users = self._locks[key]
            if users > 1:
                self._locks[key] = (lock, users - 1)
            else:
                del self._locks[key]

    async def _hold(self, key: str, wait_s: float) -> AbstractContextManager[bool]:
        """The fleet's section for `key`, entered (the caller leaves it, in a thread)."""
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + wait_s, EXCLUSIVE_POLL_S[0]
        while True:
            section = self._views.state.try_exclusive(self._provider, key)
            entering = asyncio.ensure_future(asyncio.to_thread(section.__enter__))
            try:
                held = await asyncio.shield(entering)
            except asyncio.CancelledError:  # the thread goes on: what it enters is left as soon as it is in
                entering.add_done_callback(functools.partial(_leave_entered, section))
                raise
            if held:
                return section
            await asyncio.to_thread(section.__exit__, None, None, None)
            if loop.time() + pause > deadline:
                raise TryLater(f"{self._provider}: {key} was held by another daemon for over {wait_s:g} s")
            await asyncio.sleep(pause)
            pause = min(pause * 2, EXCLUSIVE_POLL_S[1])


def _leave_entered(section: AbstractContextManager[bool], entering: asyncio.Future[bool]) -> None:
    """Leave a section its thread entered after the task that wanted it was cancelled."""
    if not entering.cancelled() and entering.exception() is None:
        asyncio.get_running_loop().run_in_executor(None, section.__exit__, None, None, None)


@dataclass
class ProviderContext:
    """What the daemon lends a provider: its settings, sending, the store's provider state, config publishing."""

    name: str
    settings: Any  # the provider's own `Settings` dataclass, checked at start-up
    send: Send
    store: ProviderStore
    publish: Callable[[str, dict[str, Any], str, dict[str, Any] | None], bool]
    log: logging.Logger
    clock: Clock = field(default_factory=Clock)
    data_dir: Path | None = None  # the daemon's data directory, for what a provider keeps in files (keys)


class Provider:
    """Base class: routing rules from the settings, and no-op hooks a provider overrides."""

    kind: ClassVar[str] = ""
    Settings: ClassVar[type[LaneSettings]] = LaneSettings  # a provider's own extends LaneSettings
    categories: ClassVar[frozenset[str]] = frozenset()  # categories this provider understands
    batch_size: ClassVar[int] = 500
    verifies_purchases: bool = False  # True: the dispatcher hands it purchases too (a class may set it per instance)

    @classmethod
    def transport(cls, settings: Any, data_dir: Path) -> httpx.AsyncBaseTransport | None:
        """What its requests travel by: None for HTTP (httpx's own); a provider that is no HTTP service (the
        relay) gives its own, so that its lane sends as every lane does."""
        return None

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.name = ctx.name
        settings: LaneSettings = ctx.settings
        self.route_categories = frozenset(settings.categories) if settings.categories else self.categories
        self.route_prefixes = settings.event_id_prefixes

    def accepts(self, event: StoredEvent) -> bool:
        """Routing: the configured categories (default: all this provider understands) and event id prefixes."""
        if event.category not in self.route_categories:
            return False
        if self.route_prefixes and "event_id" in event.fields:
            return str(event.fields["event_id"]).startswith(self.route_prefixes)
        return True

    def check(self, category: str, fields: dict[str, Any]) -> str | None:
        """The provider's own rules for an event's fields, asked by the ingress so the engine hears of a
        problem in its ack: None if valid, else the rule broken. `build` must still refuse (as dead) what
        it cannot deliver; this is only the early word."""
        return None

    def check_user(self, user_id: str) -> str | None:
        """The provider's own rules for an event's user, asked by the ingress beside `check`: None if valid,
        else the rule broken (GameAnalytics: at most 64 characters)."""
        return None

    async def start(self) -> None:
        """Authenticate or initialise; called once before the first batch."""

    def claimed(self, events: list[StoredEvent]) -> None:
        """Events just read from the store for this provider, built once their player's batch is due (up to
        `interval` later): the moment to start slow per-player work early, in tasks of its own (GameAnalytics
        asks a starting player's remote configs). Must not block: the lane is waiting."""

    async def ready(self, batch: list[StoredEvent]) -> None:
        """Wait for what `claimed` started for these events before they are built. The lane asks it outside
        its build order, so one player's wait keeps no other player's batch from being built."""

    async def build(self, batch: list[StoredEvent]) -> Built:
        """The requests that carry `batch`; may send what it needs first (an init) through `ctx.send`."""
        raise NotImplementedError

    def classify(self, call: Call, answer: httpx.Response) -> Outcome:
        """What an answer to `call` means for each of its events. The lane has already taken answers that
        say "later" (408, 425, 429, 5xx) as a retry."""
        raise NotImplementedError

    async def verify_purchase(self, purchase: Purchase) -> PurchaseResult | None:
        """The provider's verdict on a purchase, or None when it could not be had now (retried later)."""
        raise NotImplementedError

    async def tick(self) -> None:
        """Called about once a second: timers such as remote config refreshes."""

    def player_keys(self, user_id: str) -> list[str]:
        """The keys of the provider's kept state that are this player's: erased with the player."""
        return []

    async def erase(self, erasure: Erasure) -> Erased:
        """A player was forgotten: drop what the provider holds of them in memory (their kept state, named by
        `player_keys`, is erased from the store after this), and ask the provider to erase its copy. The
        default, for a provider with no documented deletion API: a manual request for the studio to send."""
        return Erased("manual", {"user_id": erasure.user_id, "device_id": erasure.device_id},
                      f"no documented deletion API: ask {self.kind} to erase the data of user "
                      f"{erasure.user_id!r} (device {erasure.device_id!r})")

    def status(self) -> dict[str, Any]:
        """Provider-specific figures for `engine-bridge status`."""
        return {}

