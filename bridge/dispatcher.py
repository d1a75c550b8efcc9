"""The dispatcher: a lane per configured provider (see lane.py), the purchase lane, and housekeeping.

All of them run as asyncio tasks in the dispatcher's own thread, each lane with its own `Sender`, so a
provider that is slow or down only delays its own lane. A task that fails (a store error, a bug) pauses and
resumes from the store's state. Housekeeping keeps the store under its cap (on PostgreSQL one daemon of the
fleet at a time). On PostgreSQL each lane also renews its leases, and gives back those it holds at a stop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
import zmq
from sqlalchemy.exc import SQLAlchemyError

from .lane import Lane, Report, log_failure
from .providers.base import Clock, Provider, ProviderContext, ProviderStore
from .providers.registry import UnknownProvider, provider_class
from .providers.settings import parse_settings
from .publisher import Publisher
from .purchases import PurchaseLane
from .retry import backoff_delay
from .sender import Sender
from .store import HOUSEKEEPING_LOCK, PurchaseResult, Store, StoreViews

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY_S = 5.0
ERASE_EVERY_S = 1.0  # forgotten players' ledger entries taken by their providers
STORE_RETRY_BASE_S = 0.5  # a task whose store call failed (disk full, database away) resumes after a pause
STORE_RETRY_CAP_S = 30.0
TRIM_TO_FRACTION = 0.9  # trimming goes a little below the cap, so it does not run again at once


class Dispatcher:
    """Builds a lane per configured provider and runs them all on one event loop in its own thread."""

    def __init__(self, providers: dict[str, dict[str, Any]], store: Store, publisher: Publisher,
                 store_cap_mb: float | None, keep_delivered_s: float, clock: Clock | None = None,
                 data_dir: Path | None = None, hold_s: float | None = None) -> None:
        self.views = StoreViews(store)
        self.store = store
        self.publisher = publisher
        self.hold_s = hold_s  # under consent "required": how long a player's events wait for their consent
        self.store_cap_bytes = int(store_cap_mb * 1024 * 1024) if store_cap_mb else None
        self.keep_delivered_s = keep_delivered_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lanes: dict[str, Lane] = {}
        clock = clock or Clock()  # the providers' time; a test hands in one it moves by hand
        for name, spec in providers.items():
            kind = provider_class(str(spec.get("type", name)))  # an unknown type fails start-up, not later
            settings = parse_settings(name, kind.Settings, spec)  # so does a misspelt or mistyped setting
            transport = kind.transport(settings, data_dir) if data_dir is not None else None
            sender = Sender(settings.timeout, settings.max_in_flight, transport)
            ctx = ProviderContext(name, settings, sender.send, ProviderStore(self.views, name), publisher.publish,
                                  logging.getLogger(f"bridge.providers.{name}"), clock, data_dir)
            self.lanes[name] = Lane(kind(ctx), self.views.delivery, settings, sender)
        self.verdicts: zmq.Socket[bytes] | None = None  # to the ingress, made on the dispatcher's own thread
        verifiers = [lane for lane in self.lanes.values() if lane.provider.verifies_purchases]
        if len(verifiers) > 1:
            raise UnknownProvider(f"only one provider may verify purchases; configured: "
                                  f"{', '.join(v.name for v in verifiers)}")
        self.purchase_lane = PurchaseLane(verifiers[0].provider, self.views.purchases, publisher.publish,
                                          self._tell_ingress,
                                          verifiers[0].settings) if verifiers else None

    def run(self, stop: threading.Event, ctx: zmq.Context[Any], verdicts: str) -> None:
        """The dispatcher thread; purchase verdicts go to the ingress on `verdicts` (an inproc endpoint)."""
        self.verdicts = ctx.socket(zmq.PUSH)
        self.verdicts.linger = 0
        self.verdicts.connect(verdicts)
        try:
            asyncio.run(self._main(stop))
        finally:
            self.verdicts.close(0)

    def _tell_ingress(self, device_id: str, purchase_id: str, result: PurchaseResult) -> None:
        """A verdict for a client that may be waiting on its `purchase` request. Never waits: if the ingress is
        that far behind, the client hears "pending" and gets the verdict from `purchase/<device_id>`."""
        assert self.verdicts is not None
        try:
            self.verdicts.send(msgpack.packb([device_id, purchase_id, result.to_wire()]), zmq.NOBLOCK)
        except zmq.Again:
            log.warning("purchase %s: verdict not handed to the ingress (it is behind); it is published", purchase_id)

    async def _main(self, stop: threading.Event) -> None:
        self.loop = asyncio.get_running_loop()
        loops: dict[str, Callable[[], Awaitable[None]]] = {"housekeeping": self._housekeeping,
                                                            "erasures": self._erase_forever}
        for name, lane in self.lanes.items():
            loops[name] = lane.run
            loops[f"{name} timer"] = lane.tick_forever
            if self.store.leased:
                loops[f"{name} leases"] = lane.keep_leases
        if self.purchase_lane is not None:
            loops["purchases"] = self.purchase_lane.run
        tasks = [asyncio.create_task(_supervised(name, loop), name=name) for name, loop in loops.items()]
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in self.lanes.values():
            await lane.sender.aclose()
            try:
                await lane.record_done()
                await lane.release()
            except SQLAlchemyError as exc:  # the database is away: the leases run out by themselves
                log_failure(f"{lane.name}: recording its last batches or giving back its leases failed", exc)

    def flush(self) -> None:
        """From any thread: every lane sends what it holds now instead of waiting for a fuller batch."""
        if self.loop is None:
            return
        for lane in list(self.lanes.values()):
            self.loop.call_soon_threadsafe(lane.nudge.set)

    def report_outcomes(self, report: Report) -> None:
        """Every lane tells `report` what became of each exchange (the operator's feed: `tap`, the inspector)."""
        for lane in self.lanes.values():
            lane.report = report

    def nudge_purchases(self) -> None:
        """From any thread: a purchase was stored, verify it now."""
        if self.loop is not None and self.purchase_lane is not None:
            self.loop.call_soon_threadsafe(self.purchase_lane.nudge.set)

    def checkers(self) -> dict[str, list[Provider]]:
        """Per category, the providers whose rules an event of it must pass: asked by the ingress, so an engine
        hears in its ack that a provider will refuse an event. Categories no provider checks are absent."""
        by_category: dict[str, list[Provider]] = {}
        for lane in self.lanes.values():
            if type(lane.provider).check is not Provider.check:
                for category in lane.provider.route_categories:
                    by_category.setdefault(category, []).append(lane.provider)
        return by_category

    def status(self) -> dict[str, Any]:
        figures = {name: lane.status() for name, lane in list(self.lanes.items())}
        if self.purchase_lane is not None:
            figures[self.purchase_lane.provider.name]["purchases_verified"] = self.purchase_lane.verified
        return figures

    def trimmed(self) -> int:
        return self.views.housekeeping.trimmed()

    async def _erase_forever(self) -> None:
        while True:
            await asyncio.sleep(ERASE_EVERY_S)
            await self.erase_pending()

    async def erase_pending(self) -> int:
        """Each provider's pending erasure entries: the provider forgets the player and asks for its copy to go
        (or says what to ask by hand), its kept state of the player is erased, the player's topics dropped, and
        the entry settled. Returns how many were settled. A provider that raises leaves its entry pending."""
        settled = 0
        for lane in list(self.lanes.values()):
            for entry in await asyncio.to_thread(self.views.ledger.pending, lane.name):
                try:
                    erased = await lane.provider.erase(entry)
                except Exception as exc:  # a provider bug, or no answer: asked again next turn
                    log_failure(f"{lane.name}: erasing a player failed", exc)
                    continue
                await asyncio.to_thread(self.views.state.delete, lane.name, lane.provider.player_keys(entry.user_id))
                await asyncio.to_thread(self.publisher.drop_player, entry.device_id, entry.user_id, entry.own)
                await asyncio.to_thread(self.views.ledger.settle, entry.pk, erased.status, erased.ids, erased.detail)
                log.info("%s: a forgotten player's entry in the erasure ledger is %s", lane.name, erased.status)
                settled += 1
        return settled

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_EVERY_S)
            await asyncio.to_thread(self._purge_and_trim)  # long deletes: off the lanes' event loop

    def _purge_and_trim(self) -> None:
        """Housekeeping's turn, taken by one daemon of a fleet at a time (the others skip theirs)."""
        with self.store.try_exclusive(HOUSEKEEPING_LOCK) as alone:
            if alone:
                self._purge_and_trim_now()

    def _purge_and_trim_now(self) -> None:
        """Drop events every provider is done with (after `keep_delivered`), then trim to the cap."""
        self.views.housekeeping.purge_delivered(list(self.lanes), time.time() - self.keep_delivered_s)
        if self.hold_s is not None:
            held = self.views.housekeeping.purge_held(time.time() - self.hold_s)
            if held:
                log.info("%d event(s) of players who never gave consent purged after %.0f h", held, self.hold_s / 3600)
        if self.store_cap_bytes is None or self.views.housekeeping.size_bytes() <= self.store_cap_bytes:
            return
        rows, row_bytes = self.views.housekeeping.live_event_bytes()
        if rows * row_bytes <= self.store_cap_bytes:
            return
        self.views.housekeeping.purge_delivered(list(self.lanes), time.time())  # delivered events go before undelivered
        rows, row_bytes = self.views.housekeeping.live_event_bytes()
        excess = int(rows - TRIM_TO_FRACTION * self.store_cap_bytes / row_bytes)
        trimmed = 0
        while trimmed < excess:
            gone = self.views.housekeeping.trim_oldest_sessions()
            if not gone:
                break
            trimmed += gone
        if trimmed:
            log.warning("store over its cap of %.1f MB: trimmed %d undelivered events of the oldest sessions",
                        self.store_cap_bytes / 2**20, trimmed)


async def _supervised(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run a loop for the daemon's life. A store error costs it a pause (logged in one line: the statement and
    its parameters may hold tokens), a bug a logged traceback; neither ends it. It resumes from the store's
    state, so a batch in flight is repeated, never skipped."""
    failures = 0
    while True:
        started = time.monotonic()
        try:
            await loop()
        except Exception as exc:
            reason = log_failure(f"{name} failed", exc)
        failures = 1 if time.monotonic() - started > STORE_RETRY_CAP_S else failures + 1
        delay = backoff_delay(failures, STORE_RETRY_BASE_S, STORE_RETRY_CAP_S)
        log.error("%s stopped (%s); resuming in %.1f s", name, reason, delay)
        await asyncio.sleep(delay)
