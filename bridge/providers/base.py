"""The one interface every provider implements, and the `Outcome` it returns for each batch it sends.

The dispatcher never knows which provider it drives: it claims stored events, asks the provider which it
takes (`accepts`), hands it a batch (`send`), and applies the `Outcome`. The ingress asks `check` as
events arrive, so an engine learns in its ack that a provider will refuse an event. A provider implements
only the hooks it needs; authentication, retries of its own protocol (re-login, splitting a too-large body)
and config sources live inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

if TYPE_CHECKING:
    from ..store import Purchase, PurchaseResult, StoredEvent, StoreViews


@dataclass
class Outcome:
    """What became of a batch. Events in none of the lists are retried later (transient failure)."""

    delivered: set[int] = field(default_factory=set)  # event pks the provider accepted
    dead: list[tuple[int, str, str]] = field(default_factory=list)  # (pk, code, reason): refused for good
    error: str | None = None  # why the rest was not delivered, for `status`
    retry_after: float | None = None  # seconds the provider asked us to wait (Retry-After)
    paused: str | None = None  # the provider must not be sent to now (disabled, wrong keys): why
    crashed: bool = False  # send() raised: set by the dispatcher, never by a provider


@dataclass
class ProviderContext:
    """What the daemon lends a provider: its settings, HTTP, the store's provider state, config publishing."""

    name: str
    settings: dict[str, Any]
    http: httpx.AsyncClient
    store: StoreViews
    publish: Callable[[str, dict[str, Any], str, dict[str, Any] | None], bool]
    log: logging.Logger


class Provider:
    """Base class: routing rules from the settings, and no-op hooks a provider overrides."""

    kind: ClassVar[str] = ""
    categories: ClassVar[frozenset[str]] = frozenset()  # categories this provider understands
    batch_size: ClassVar[int] = 500
    verifies_purchases: ClassVar[bool] = False  # True: the dispatcher hands it purchases too

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.name = ctx.name
        routes = ctx.settings.get("categories")
        self.route_categories = frozenset(routes) if routes else self.categories
        self.route_prefixes = tuple(ctx.settings.get("event_id_prefixes") or ())

    def accepts(self, event: StoredEvent) -> bool:
        """Routing: the configured categories (default: all this provider understands) and event id prefixes."""
        if event.category not in self.route_categories:
            return False
        if self.route_prefixes and "event_id" in event.fields:
            return str(event.fields["event_id"]).startswith(self.route_prefixes)
        return True

    def check(self, category: str, fields: dict[str, Any]) -> str | None:
        """The provider's own rules for an event's fields, asked by the ingress so the engine hears of a
        problem in its ack: None if valid, else the rule broken. `send` must still refuse (as `dead`) what
        it cannot deliver; this is only the early word."""
        return None

    async def start(self) -> None:
        """Authenticate or initialise; called once before the first send."""

    async def send(self, events: list[StoredEvent]) -> Outcome:
        raise NotImplementedError

    async def verify_purchase(self, purchase: Purchase) -> PurchaseResult | None:
        """The provider's verdict on a purchase, or None when it could not be had now (retried later)."""
        raise NotImplementedError

    async def tick(self) -> None:
        """Called about once a second: timers such as remote config refreshes."""

    def status(self) -> dict[str, Any]:
        """Provider-specific figures for `engine-bridge status`."""
        return {}
