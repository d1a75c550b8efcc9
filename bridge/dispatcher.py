"""The dispatcher: one lane per provider, each claiming due events, sending them and recording the answer.

All lanes run as asyncio tasks in the dispatcher's own thread, each with its own HTTP client, so a provider
that is slow or down only delays its own lane. A lane finishes a batch (cursor moved, dead letters written)
only once every event of it was delivered or refused for good; until then it retries the rest with capped
exponential backoff and jitter, however long the outage lasts. Housekeeping keeps the store under its cap.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgpack
import zmq
from sqlalchemy.exc import SQLAlchemyError

from .providers.base import Outcome, Provider, ProviderContext
from .providers.registry import UnknownProvider, provider_class
from .publisher import Publisher
from .purchases import PurchaseLane
from .retry import backoff_delay
from .store import Delivery, PurchaseResult, Store, StoredEvent, StoreViews, error_text, now_ms

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0  # how long a lane lets a part-filled batch wait for more events
DEFAULT_RETRY_BASE_S = 1.0
DEFAULT_RETRY_CAP_S = 300.0
DEFAULT_TIMEOUT_S = 10.0
PAUSED_RETRY_S = 60.0
POISON_AFTER_CRASHES = 3
HOUSEKEEPING_EVERY_S = 5.0
STORE_RETRY_BASE_S = 0.5  # a task whose store call failed (disk full, database away) resumes after a pause
STORE_RETRY_CAP_S = 30.0
TRIM_TO_FRACTION = 0.9  # trimming goes a little below the cap, so it does not run again at once


class Lane:
    """One provider's loop: claim → check → send → finish or back off."""

    def __init__(self, provider: Provider, delivery: Delivery, settings: dict[str, Any]) -> None:
        self.provider = provider
        self.name = provider.name
        self.delivery = delivery
        self.interval_s = float(settings.get("interval", DEFAULT_INTERVAL_S))
        self.retry_base_s = float(settings.get("retry_base", DEFAULT_RETRY_BASE_S))
        self.retry_cap_s = float(settings.get("retry_cap", DEFAULT_RETRY_CAP_S))
        self.paused_retry_s = float(settings.get("paused_retry", PAUSED_RETRY_S))
        self.nudge = asyncio.Event()
        self.started = False
        self.in_flight = 0
        self.attempt = 0
        self.last_error: str | None = None
        self.last_error_at: int | None = None
        self.next_retry_at: int | None = None
        self.paused: str | None = None

    async def run(self) -> None:
        cursor = self.delivery.cursor(self.name)
        while True:
            await self._send_requeued()
            claimed = self.delivery.claim(cursor, self.provider.batch_size)
            if not claimed or self._should_wait(claimed):
                await self._sleep(self._wait_time(claimed), wake_on_nudge=True)
                continue
            self.nudge.clear()
            await self._deliver_batch(claimed)
            cursor = claimed[-1].pk

    def _should_wait(self, claimed: list[StoredEvent]) -> bool:
        """A part-filled batch waits for more until its oldest event is `interval` old or a flush came."""
        if len(claimed) >= self.provider.batch_size or self.nudge.is_set():
            return False
        return now_ms() - claimed[0].received_at < self.interval_s * 1000

    def _wait_time(self, claimed: list[StoredEvent]) -> float:
        if not claimed:
            return self.interval_s
        return max(0.01, self.interval_s - (now_ms() - claimed[0].received_at) / 1000)

    async def _deliver_batch(self, claimed: list[StoredEvent]) -> None:
        """Send until every routed event of the batch is delivered or dead, then move the cursor past it.

        A part the provider raises on is halved, and an event it raises on alone (a few times in a row, as a
        raise may be a fluke) is dead-lettered: one poison event costs about 2·log2(batch) requests and the
        lane goes on, instead of one request per event of the batch."""
        dead: list[tuple[int, str, str]] = []
        parts = [[ev for ev in claimed if self.provider.accepts(ev)]]
        delivered = 0
        crashes = 0
        while parts:
            part = parts[0]
            if not part:
                parts.pop(0)
                continue
            outcome = await self._send(part)
            if outcome.crashed and len(part) > 1:
                parts[0:1] = [part[:len(part) // 2], part[len(part) // 2:]]
                continue
            crashes = crashes + 1 if outcome.crashed else 0
            if crashes >= POISON_AFTER_CRASHES:
                crashes = 0
                outcome.dead.append((part[0].pk, "provider_error", outcome.error or "the provider raised"))
            delivered += len(outcome.delivered)
            dead.extend(outcome.dead)
            done = outcome.delivered | {pk for pk, _, _ in outcome.dead}
            parts[0] = [ev for ev in part if ev.pk not in done]
            if parts[0] and not done and not outcome.crashed:
                await self._back_off(outcome)
        self.delivery.finish(self.name, claimed[-1].pk, delivered, dead)
        if dead:
            log.warning("%s: %d event(s) dead-lettered, e.g. %s", self.name, len(dead), dead[0][2])

    async def _send_requeued(self) -> None:
        """Dead letters an operator re-queued go first, once; those refused again are dead once more."""
        letters = self.delivery.take_requeued(self.name, self.provider.batch_size)
        if not letters:
            return
        outcome = await self._send([ev for _, ev in letters])
        by_event = {ev.pk: letter for letter, ev in letters}
        done = [by_event[pk] for pk in outcome.delivered]
        again = [(by_event[pk], code, reason) for pk, code, reason in outcome.dead]
        if outcome.crashed:  # back to the dead letters, rather than raising on them at every turn
            again = [(letter, "provider_error", outcome.error or "the provider raised") for letter, _ in letters]
        self.delivery.settle_requeued(done, again)

    async def _send(self, events: list[StoredEvent]) -> Outcome:
        if not self.started:
            self.started = True
            try:
                await self.provider.start()
            except Exception as exc:  # a provider's start-up must not end its lane: sending retries it
                _log_failure(f"{self.name}: start failed", exc)
        self.in_flight = len(events)
        try:
            outcome = await self.provider.send(events)
        except SQLAlchemyError:
            raise  # the store, not the provider, failed: the lane pauses and resumes (see _supervised)
        except Exception as exc:  # a provider bug or an answer it could not read: keep the events, retry
            log.exception("%s: send failed", self.name)
            outcome = Outcome(error=f"{type(exc).__name__}: {exc}", crashed=True)
        finally:
            self.in_flight = 0
        self.paused = outcome.paused
        if outcome.error or outcome.paused:
            self.last_error = outcome.paused or outcome.error
            self.last_error_at = now_ms()
        if outcome.delivered and not outcome.error:
            self.attempt = 0
        return outcome

    async def _back_off(self, outcome: Outcome) -> None:
        self.attempt += 1
        if outcome.paused:
            delay = self.paused_retry_s
        elif outcome.retry_after is not None:
            delay = min(outcome.retry_after, self.retry_cap_s)
        else:
            delay = backoff_delay(self.attempt, self.retry_base_s, self.retry_cap_s)
        log.info("%s: %s; retry %d in %.1f s", self.name, self.last_error, self.attempt, delay)
        self.next_retry_at = now_ms() + int(delay * 1000)
        await self._sleep(delay, wake_on_nudge=False)
        self.next_retry_at = None

    async def _sleep(self, seconds: float, wake_on_nudge: bool) -> None:
        if not wake_on_nudge:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(self.nudge.wait(), seconds)
        except TimeoutError:
            pass

    async def tick_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.provider.tick()
            except Exception as exc:
                _log_failure(f"{self.name}: timer failed", exc)

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {**self.delivery.figures(self.name), "in_flight": self.in_flight,
                                   "last_error": self.last_error, "last_error_at": self.last_error_at,
                                   "next_retry_at": self.next_retry_at}
        figures.update(self.provider.status())
        return figures


class Dispatcher:
    """Builds a lane per configured provider and runs them all on one event loop in its own thread."""

    def __init__(self, providers: dict[str, dict[str, Any]], store: Store, publisher: Publisher,
                 store_cap_mb: float | None, keep_delivered_s: float) -> None:
        self.views = StoreViews(store)
        self.store_cap_bytes = int(store_cap_mb * 1024 * 1024) if store_cap_mb else None
        self.keep_delivered_s = keep_delivered_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: list[httpx.AsyncClient] = []
        self.lanes: dict[str, Lane] = {}
        for name, spec in providers.items():
            kind = provider_class(str(spec.get("type", name)))  # an unknown type fails start-up, not later
            client = httpx.AsyncClient(timeout=float(spec.get("timeout", DEFAULT_TIMEOUT_S)))
            self.clients.append(client)
            ctx = ProviderContext(name, spec, client, self.views, publisher.publish,
                                  logging.getLogger(f"bridge.providers.{name}"))
            self.lanes[name] = Lane(kind(ctx), self.views.delivery, spec)
        self.verdicts: zmq.Socket[bytes] | None = None  # to the ingress, made on the dispatcher's own thread
        verifiers = [lane for lane in self.lanes.values() if lane.provider.verifies_purchases]
        if len(verifiers) > 1:
            raise UnknownProvider(f"only one provider may verify purchases; configured: "
                                  f"{', '.join(v.name for v in verifiers)}")
        self.purchase_lane = PurchaseLane(verifiers[0].provider, self.views.purchases, publisher.publish,
                                          self._tell_ingress,
                                          verifiers[0].retry_base_s, verifiers[0].retry_cap_s) if verifiers else None

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
        loops: dict[str, Callable[[], Awaitable[None]]] = {"housekeeping": self._housekeeping}
        for name, lane in self.lanes.items():
            loops[name] = lane.run
            loops[f"{name} timer"] = lane.tick_forever
        if self.purchase_lane is not None:
            loops["purchases"] = self.purchase_lane.run
        tasks = [asyncio.create_task(_supervised(name, loop), name=name) for name, loop in loops.items()]
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in self.clients:
            await client.aclose()

    def flush(self) -> None:
        """From any thread: every lane sends what it holds now instead of waiting for a fuller batch."""
        if self.loop is None:
            return
        for lane in list(self.lanes.values()):
            self.loop.call_soon_threadsafe(lane.nudge.set)

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

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_EVERY_S)
            self._purge_and_trim()

    def _purge_and_trim(self) -> None:
        """Drop events every provider is done with (after `keep_delivered`), then trim to the cap."""
        self.views.housekeeping.purge_delivered(list(self.lanes), time.time() - self.keep_delivered_s)
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
            reason = _log_failure(f"{name} failed", exc)
        failures = 1 if time.monotonic() - started > STORE_RETRY_CAP_S else failures + 1
        delay = backoff_delay(failures, STORE_RETRY_BASE_S, STORE_RETRY_CAP_S)
        log.error("%s stopped (%s); resuming in %.1f s", name, reason, delay)
        await asyncio.sleep(delay)


def _log_failure(what: str, exc: Exception) -> str:
    """A store error in one line (its statement and parameters may hold tokens), anything else, a bug, with
    its traceback; returns the reason for the next line."""
    if isinstance(exc, SQLAlchemyError):
        reason = error_text(exc)
        log.error("%s: %s", what, reason)
        return reason
    log.error("%s", what, exc_info=exc)
    return f"{type(exc).__name__}: {exc}"
