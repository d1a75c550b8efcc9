"""A lane: one provider's loop, claim → build → send → classify → finish, with batches in flight side by side.

Its store calls run in threads, off the event loop, so that a stalled database (a lock held elsewhere, a
slow disk) delays no other lane's HTTP.

A lane keeps up to `max_in_flight` batches out at once (and as many requests, bounded by its `Sender`), so a
provider that answers slowly is not also a provider that receives slowly. The cursor moves only past
batches that are wholly finished, oldest first: a later batch done early waits for the ones before it, so a
crash repeats batches, never skips one. Calls of one player go out one after another, in the order they
were built, whichever batch they belong to. A batch is finished once every routed event of it was delivered
or refused for good; until then its rest is built again and sent after a capped, jittered backoff (or the
provider's Retry-After), however long the outage lasts.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from .providers.base import Call, Outcome, Paused, Provider, TryLater
from .providers.settings import LaneSettings
from .retry import backoff_delay
from .sender import Sender, retry_after, says_later
from .store import Delivery, StoredEvent, error_text, now_ms

log = logging.getLogger(__name__)

POISON_AFTER_CRASHES = 3
TICK_S = 1.0  # between turns of a provider's timers (`tick`)


@dataclass
class _Batch:
    """A claimed batch on its way: finished (cursor, dead letters) only once `task` is done and every batch
    before it is too."""

    events: list[StoredEvent]
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    dead: list[tuple[int, str, str]] = field(default_factory=list)


class Lane:
    """One provider's loop; `sender` is the only way its requests leave."""

    def __init__(self, provider: Provider, delivery: Delivery, settings: LaneSettings, sender: Sender) -> None:
        self.provider = provider
        self.name = provider.name
        self.delivery = delivery
        self.settings = settings
        self.sender = sender
        self.nudge = asyncio.Event()
        self.started = False
        self.attempt = 0
        self.last_error: str | None = None
        self.last_error_at: int | None = None
        self.next_retry_at: int | None = None
        self.paused: str | None = None
        self._batches: deque[_Batch] = deque()
        self._tails: dict[str, asyncio.Future[None]] = {}  # per key: the last call sent or waiting
        self._building = asyncio.Lock()
        self._cursor = 0  # the store's cursor: every event up to it is finished
        self._flushing = False  # a flush asked for: part-filled batches go at once until the store is drained

    # --- the loop ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        self._batches.clear()
        self._cursor = await asyncio.to_thread(self.delivery.cursor, self.name)
        try:
            while True:
                await self._finish_done()
                await self._send_requeued()
                if len(self._batches) < self.settings.max_in_flight:
                    if self.nudge.is_set():  # cleared before the claim: a flush during it counts next turn
                        self.nudge.clear()
                        self._flushing = True
                    claimed = await asyncio.to_thread(self.delivery.claim, self._claimed_up_to(),
                                                    self.provider.batch_size)
                    full = len(claimed) >= self.provider.batch_size
                    go_now = full or self._flushing
                    if not full:
                        self._flushing = False  # a flush ends with what is stored now
                    if claimed and (go_now or not self._should_wait(claimed)):
                        batch = _Batch(claimed)
                        batch.task = asyncio.create_task(self._deliver(batch), name=f"{self.name} batch")
                        self._batches.append(batch)
                        continue
                    await self._wait(self._wait_time(claimed), wake_on_nudge=True)
                else:
                    await self._wait(None, wake_on_nudge=False)  # as many batches out as allowed
        finally:
            for batch in self._batches:  # repeated from the store's cursor when the lane resumes
                if batch.task is not None:
                    batch.task.cancel()

    def _claimed_up_to(self) -> int:
        return self._batches[-1].events[-1].pk if self._batches else self._cursor

    async def _finish_done(self) -> None:
        """Move the cursor past the oldest batches that are done, in order."""
        while self._batches and self._batches[0].task is not None and self._batches[0].task.done():
            batch = self._batches[0]
            assert batch.task is not None
            batch.task.result()  # a store error in the batch ends the loop here (see _supervised)
            await asyncio.to_thread(self.delivery.finish, self.name, batch.events[-1].pk, batch.delivered, batch.dead)
            self._cursor = batch.events[-1].pk
            self._batches.popleft()
            if batch.dead:
                log.warning("%s: %d event(s) dead-lettered, e.g. %s", self.name, len(batch.dead), batch.dead[0][2])

    async def _wait(self, seconds: float | None, wake_on_nudge: bool) -> None:
        """Until the oldest batch is done, a flush (nudge) if asked, or `seconds`."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.nudge.wait())] if wake_on_nudge else []
        if self._batches and self._batches[0].task is not None:
            waits.append(self._batches[0].task)
        if not waits:
            await asyncio.sleep(seconds or 0)
            return
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if wake_on_nudge:
                waits[0].cancel()

    def _should_wait(self, claimed: list[StoredEvent]) -> bool:
        """A part-filled batch waits for more until its oldest event is `interval` old (or a flush came)."""
        return now_ms() - claimed[0].received_at < self.settings.interval * 1000

    def _wait_time(self, claimed: list[StoredEvent]) -> float:
        if not claimed:
            return self.settings.interval
        return max(0.01, self.settings.interval - (now_ms() - claimed[0].received_at) / 1000)

    # --- one batch --------------------------------------------------------------------------------------

    async def _deliver(self, batch: _Batch) -> None:
        """Send until every routed event of the batch is delivered or dead.

        A part a hook raises on is halved, and an event it raises on alone (a few times in a row, as a raise
        may be a fluke) is dead-lettered: one poison event costs about 2·log2(batch) requests and the lane
        goes on, instead of one request per event of the batch."""
        parts = [[ev for ev in batch.events if self.provider.accepts(ev)]]
        crashes = 0
        while parts:
            part = parts[0]
            if not part:
                parts.pop(0)
                continue
            outcome = await self._exchange(part)
            done = outcome.delivered | {pk for pk, _, _ in outcome.dead}
            rest = [ev for ev in part if ev.pk not in done]
            if outcome.crashed and len(rest) > 1:
                parts[0:1] = [rest[:len(rest) // 2], rest[len(rest) // 2:]]
            else:
                crashes = crashes + 1 if outcome.crashed else 0
                if crashes >= POISON_AFTER_CRASHES and rest:
                    crashes = 0
                    outcome.dead.append((rest[0].pk, "provider_error", outcome.error or "the provider raised"))
                    rest = rest[1:]
                parts[0] = rest
            batch.delivered += len(outcome.delivered)
            batch.dead.extend(outcome.dead)
            if outcome.refs:
                await asyncio.to_thread(self.delivery.save_refs, self.name, outcome.refs)
            if parts[0] and not done and not outcome.crashed:
                await self._back_off(outcome)

    async def _send_requeued(self) -> None:
        """Dead letters an operator re-queued go first, once; those refused again are dead once more."""
        letters = await asyncio.to_thread(self.delivery.take_requeued, self.name, self.provider.batch_size)
        if not letters:
            return
        outcome = await self._exchange([ev for _, ev in letters])
        by_event = {ev.pk: letter for letter, ev in letters}
        done = [by_event[pk] for pk in outcome.delivered]
        again = [(by_event[pk], code, reason) for pk, code, reason in outcome.dead]
        if outcome.crashed:  # back to the dead letters, rather than raising on them at every turn
            again = [(letter, "provider_error", outcome.error or "the provider raised") for letter, _ in letters]
        if outcome.refs:
            await asyncio.to_thread(self.delivery.save_refs, self.name, outcome.refs)
        await asyncio.to_thread(self.delivery.settle_requeued, done, again)

    async def _exchange(self, events: list[StoredEvent]) -> Outcome:
        """Build, send and classify once: what became of `events` this time. Batches are built one at a time,
        so that calls take their places in their keys' order as their batches were claimed."""
        try:
            async with self._building:
                await self._start()
                built = await self.provider.build(events)
                queued = [(call, *self._queue(call)) for call in built.calls]
            outcome = built.settled
            results = await asyncio.gather(*(self._in_order(*q) for q in queued), return_exceptions=True)
        except Paused as exc:
            outcome, results = Outcome(paused=str(exc)), []
        except TryLater as exc:
            outcome, results = Outcome(error=str(exc)), []
        except SQLAlchemyError:
            raise  # the store, not the provider, failed: the lane pauses and resumes (see _supervised)
        except Exception as exc:  # a provider bug or an answer it could not read: keep the events, retry
            log.exception("%s: building a batch failed", self.name)
            outcome, results = Outcome(error=f"{type(exc).__name__}: {exc}", crashed=True), []
        for result in results:
            if isinstance(result, SQLAlchemyError):
                raise result
            if isinstance(result, BaseException):
                log.error("%s: reading an answer failed", self.name, exc_info=result)
                outcome.merge(Outcome(error=f"{type(result).__name__}: {result}", crashed=True))
            else:
                outcome.merge(result)
        self._note(outcome)
        return outcome

    async def _start(self) -> None:
        if self.started:
            return
        self.started = True
        try:
            await self.provider.start()
        except TryLater as exc:
            log.warning("%s: start: %s", self.name, exc)
        except Exception as exc:  # a provider's start-up must not end its lane: sending retries it
            log_failure(f"{self.name}: start failed", exc)

    def _queue(self, call: Call) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        """`call`'s place in its key's line: the call before it (if any) and its own marker."""
        before = self._tails.get(call.key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[call.key] = mine
        return before, mine

    async def _in_order(self, call: Call, before: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> Outcome:
        """Send `call` once the call before it in its key's line is done."""
        try:
            if before is not None:
                await asyncio.shield(before)
            return await self._call(call)
        finally:
            mine.set_result(None)
            if self._tails.get(call.key) is mine:
                del self._tails[call.key]

    async def _call(self, call: Call) -> Outcome:
        """One call and the calls its answers put in its place (a body split in halves)."""
        outcome = Outcome()
        queue = [call]
        while queue:
            current = queue.pop(0)
            try:
                answer = await self.sender.send(current.request, current.auth)
            except Paused as exc:
                outcome.paused = str(exc)
                break
            except TryLater as exc:
                outcome.error = str(exc)
                break
            if says_later(answer):
                outcome.error = f"HTTP {answer.status_code} from {answer.request.url.path}"
                outcome.retry_after = retry_after(answer)
                break
            classified = self.provider.classify(current, answer)
            queue[0:0] = classified.then
            outcome.merge(classified)
        return outcome

    def _note(self, outcome: Outcome) -> None:
        self.paused = outcome.paused
        if outcome.error or outcome.paused:
            self.last_error = outcome.paused or outcome.error
            self.last_error_at = now_ms()
        if outcome.delivered and not outcome.error:
            self.attempt = 0

    async def _back_off(self, outcome: Outcome) -> None:
        self.attempt += 1
        if outcome.paused:
            delay = self.settings.paused_retry
        elif outcome.retry_after is not None:
            delay = min(outcome.retry_after, self.settings.retry_cap)
        else:
            delay = backoff_delay(self.attempt, self.settings.retry_base, self.settings.retry_cap)
        log.info("%s: %s; retry %d in %.1f s", self.name, self.last_error, self.attempt, delay)
        self.next_retry_at = now_ms() + int(delay * 1000)
        await asyncio.sleep(delay)
        self.next_retry_at = None

    # --- timers and figures -----------------------------------------------------------------------------

    async def tick_forever(self) -> None:
        await self.start()  # timers run from the start, events or not (configs before the first event)
        while True:
            await asyncio.sleep(TICK_S)
            await self.tick()

    async def start(self) -> None:
        """Start the provider, once: before its first batch or its first timer, whichever comes first."""
        async with self._building:
            await self._start()

    async def tick(self) -> None:
        """One turn of the provider's timers: every TICK_S in the daemon, at a test's word in-process."""
        try:
            await self.provider.tick()
        except TryLater as exc:
            log.warning("%s: timer: %s", self.name, exc)
        except Exception as exc:
            log_failure(f"{self.name}: timer failed", exc)

    def status(self) -> dict[str, Any]:
        in_flight = sum(len(b.events) for b in self._batches)
        figures: dict[str, Any] = {**self.delivery.figures(self.name), "in_flight": in_flight,
                                   "requests": self.sender.requests, "last_error": self.last_error,
                                   "last_error_at": self.last_error_at, "next_retry_at": self.next_retry_at}
        figures.update(self.provider.status())
        return figures


def log_failure(what: str, exc: Exception) -> str:
    """A store error in one line (its statement and parameters may hold tokens), anything else, a bug, with
    its traceback; returns the reason for the next line."""
    if isinstance(exc, SQLAlchemyError):
        reason = error_text(exc)
        log.error("%s: %s", what, reason)
        return reason
    log.error("%s", what, exc_info=exc)
    return f"{type(exc).__name__}: {exc}"

