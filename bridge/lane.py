"""A lane: one provider's loop, claim → build → send → classify → finish, with batches in flight side by side.

Its store calls run in threads, off the event loop, so that a stalled database (a lock held elsewhere, a
slow disk) delays no other lane's HTTP.

Events wait in a bucket per player (user) until the bucket's oldest event is `interval` old, it holds a full
batch, or a flush came: then the bucket goes as one batch, so one request carries a player's whole interval
(as GameAnalytics asks of servers: "collect intended events for users inside buckets"), and a dedicated
server's hundreds of players each get a request per interval rather than a sliver of every batch. A game with
one player has one bucket: a batch per interval, as before. Up to `max_in_flight` batches are out at once
(and as many requests, bounded by the lane's `Sender`); one player's batches go one after another, so
concurrency comes from players and each player's events arrive in order. A slot no other player needs may
take a player's next batch early: it is checked and built while the batch before it is sent, and sent once
that one is finished (a game's one player's backlog goes at the pace of the requests, not of requests and
builds one after the other).

Batches finish in any order, each recorded through the provider's `Claims` (store/delivery.py: a cursor on
SQLite, leases on PostgreSQL, where leases held are renewed every third of their length while their events wait
or are retried). The lane's turns at the store (record what is done, claim what is new) come at most every
STORE_TURN_S while batches come back faster: a dedicated server's lane, its batches returning hundreds of
times a second, starts each player's next batch at once and records its done batches ten at a time, not one
store round trip each. A batch is finished once every event of it was delivered or refused for good; until then its
rest is built again and sent after a capped, jittered backoff (or the provider's Retry-After), however long
the outage lasts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from .providers.base import Call, Outcome, Paused, Provider, TryLater
from .providers.settings import LaneSettings
from .retry import backoff_delay
from .sender import Sender, retry_after, says_later
from .store import Delivery, StoredEvent, error_text, now_ms

log = logging.getLogger(__name__)
T = TypeVar("T")

POISON_AFTER_CRASHES = 3
STALE_AFTER_S = 1.0  # a batch built early and kept waiting longer than this is checked and built again
TICK_S = 1.0  # between turns of a provider's timers (`tick`)
CLAIM_ROWS = 1000  # events read from the store at a time
HELD_PER_SLOT = 2  # players with due events a lane holds per request it may have out, before it takes on more
STORE_TURN_S = 0.1  # the least time between two of a lane's turns at the store while batches come back faster

# Told of every exchange's outcome (the lane's name, the events sent, what became of them), on the lanes' loop:
# it must return at once (the operator's feed queues a line and drops it when its reader is behind).
Report = Callable[[str, list[StoredEvent], Outcome], None]


@dataclass
class _Batch:
    """One player's events on their way (the lane keeps it under its player's key): finished (claims, dead
    letters) once `task` is done."""

    events: list[StoredEvent]
    task: asyncio.Task[None] | None = None
    after: asyncio.Task[None] | None = None  # the player's batch before this one, out when this one began
    delivered: int = 0
    dead: list[tuple[int, str, str]] = field(default_factory=list)


class _Buckets:
    """Claimed events waiting to go, one bucket per player, in the order the buckets began (so the buckets
    due first are at the front)."""

    def __init__(self, size: int) -> None:
        self.size = size  # a full batch
        self.by_key: dict[str, list[StoredEvent]] = {}
        self.full: dict[str, None] = {}  # the keys of buckets holding a full batch, wherever they are
        self.count = 0

    def add(self, ev: StoredEvent) -> None:
        bucket = self.by_key.setdefault(ev.user_id, [])
        bucket.append(ev)
        self.count += 1
        if len(bucket) == self.size:
            self.full[ev.user_id] = None

    def take(self, key: str) -> list[StoredEvent]:
        """The bucket's oldest full batch (or all of it); a rest begins a new bucket, at the back."""
        bucket = self.by_key.pop(key)
        taken, rest = bucket[:self.size], bucket[self.size:]
        if rest:
            self.by_key[key] = rest
        if len(rest) < self.size:
            self.full.pop(key, None)
        self.count -= len(taken)
        return taken


class Lane:
    """One provider's loop; `sender` is the only way its requests leave."""

    def __init__(self, provider: Provider, delivery: Delivery, settings: LaneSettings, sender: Sender) -> None:
        self.provider = provider
        self.name = provider.name
        self.delivery = delivery
        self.claims = delivery.claims(provider.name, provider.batch_size)
        self._claims_lock = threading.Lock()  # see `_at_store`
        self.settings = settings
        self.sender = sender
        self.nudge = asyncio.Event()
        self.started = False
        self.attempt = 0
        self.last_error: str | None = None
        self.last_error_at: int | None = None
        self.next_retry_at: int | None = None
        self.paused: str | None = None
        self._buckets = _Buckets(provider.batch_size)
        self._batches: dict[str, _Batch] = {}  # per player: its batch out now
        self._next: dict[str, _Batch] = {}  # per player: their next batch, built while that one is out
        self._done: list[_Batch] = []  # batches done and not yet recorded in the store
        self._next_turn = 0.0  # monotonic s: the lane's next turn at the store, at the earliest
        self._tails: dict[str, asyncio.Future[None]] = {}  # per key: the last call sent or waiting
        self._building = asyncio.Lock()
        self._flush_up_to = 0  # a flush asked for: every bucket begun by this pk goes at once
        self.report: Report | None = None

    # --- the loop ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        await self._at_store(self.claims.start)
        self._buckets = _Buckets(self.provider.batch_size)
        self._batches.clear()
        self._next.clear()
        self._done.clear()  # resumed from the store: they go again
        try:
            while True:
                self._collect_done()
                self._send_due()  # a done batch's player's next batch goes at once, not after the store turn
                turn = self.nudge.is_set() or time.monotonic() >= self._next_turn
                if turn:
                    self._next_turn = time.monotonic() + STORE_TURN_S
                    await self.record_done()
                    await self._send_requeued()
                    flush = self.nudge.is_set()
                    self.nudge.clear()  # before the claim: a flush during it counts next turn
                    await self._claim()
                    if flush:
                        self._flush_up_to = self.claims.claimed_up_to
                self._send_due()
                if turn and not self._batches:
                    await self._at_store(self.claims.sync)  # events no bucket took (not routed here)
                wait = self._next_due()
                if self._done:  # recorded at the next turn, however long the next bucket waits
                    wait = min(math.inf if wait is None else wait, max(0.0, self._next_turn - time.monotonic()))
                await self._wait(wait)
        finally:
            for batch in self._out():  # repeated from the store when the lane resumes
                if batch.task is not None:
                    batch.task.cancel()

    async def _claim(self) -> None:
        """Read the events stored since the last claim into their players' buckets, up to `max_waiting`; the
        buckets due go as they fill, not once the whole claim is read (a claim of many rows on a shared store
        takes a while, and the lane's requests in flight would run out meanwhile)."""
        while self._buckets.count < self.settings.max_waiting:
            claimed = await self._at_store(self.claims.claim, CLAIM_ROWS, self._room_for_players())
            routed, skipped = [], []
            for ev in claimed:
                if self.provider.accepts(ev):
                    self._buckets.add(ev)
                    routed.append(ev)
                else:
                    skipped.append(ev.pk)
            if skipped:
                self.claims.skip(skipped)
            if routed:
                try:
                    self.provider.claimed(routed)
                except Exception as exc:  # a provider bug: its events still go, when due
                    log_failure(f"{self.name}: claimed failed", exc)
            self._send_due()  # what is due goes while the next rows are read
            if len(claimed) < CLAIM_ROWS:
                return

    def _room_for_players(self) -> int:
        """How many players new to the lane its next claim may take on: while fewer than HELD_PER_SLOT per
        request it may have out have events due or out, so that a fleet's first daemon to claim does not
        hold every player of a backlog while the others idle (a lane alone on its store takes any)."""
        cap = HELD_PER_SLOT * self.settings.max_in_flight
        busy = set(self._batches) | set(self._buckets.full)
        excess = self._buckets.count - self.settings.max_waiting
        for key, bucket in self._buckets.by_key.items():  # the buckets due first are at the front
            if len(busy) >= cap or self._due_in(bucket, excess) > 0:
                break
            busy.add(key)
        return max(0, cap - len(busy))

    def _due_in(self, bucket: list[StoredEvent], excess: int) -> float:
        """Seconds until a bucket goes: 0 if full, flushed, or the lane holds more than `max_waiting`."""
        if bucket[0].pk <= self._flush_up_to or excess > 0:
            return 0.0
        return self.settings.interval - (now_ms() - bucket[0].received_at) / 1000

    def _send_due(self) -> None:
        """Start a batch for each due bucket whose player has none out, up to `max_in_flight`: full buckets
        first, then the others from the front (the oldest) up to the first one not yet due."""
        room = self._room()
        due = [key for key in self._buckets.full if key not in self._batches][:room]
        excess = self._buckets.count - self.settings.max_waiting
        for key, bucket in self._buckets.by_key.items():
            if len(due) >= room:
                break
            if key in self._batches or key in due:
                continue
            if self._due_in(bucket, excess) > 0:
                break
            due.append(key)
            excess -= len(bucket)
        for key in due:
            self._batches[key] = self._start_batch(key, None)
        # the room left: players' next full batches, built while the ones before them are out
        for key in [k for k in self._buckets.full if k in self._batches and k not in self._next]:
            if self._room() <= 0:
                break
            self._next[key] = self._start_batch(key, self._batches[key].task)

    def _start_batch(self, key: str, after: asyncio.Task[None] | None) -> _Batch:
        batch = _Batch(self._buckets.take(key), after=after)
        batch.task = asyncio.create_task(self._deliver(batch), name=f"{self.name} batch")
        return batch

    def _out(self) -> list[_Batch]:
        return [*self._batches.values(), *self._next.values()]

    def _room(self) -> int:
        """Batches that may start now: `max_in_flight` less those out (players' next batches included)."""
        return self.settings.max_in_flight - len(self._batches) - len(self._next)

    def _next_due(self) -> float | None:
        """Seconds until the next bucket is due (None while as many batches are out as allowed)."""
        if self._room() <= 0:
            return None
        for key, bucket in self._buckets.by_key.items():
            if key not in self._batches:  # the first bucket free to go (a full one would have gone)
                return min(self.settings.interval, max(0.01, self._due_in(bucket, 0)))
        return self.settings.interval  # nothing waiting: look for new events then

    def _collect_done(self) -> None:
        """Take the batches that are done off their players, whose next batches may go now."""
        for key, batch in [(k, b) for k, b in self._batches.items() if b.task is not None and b.task.done()]:
            assert batch.task is not None
            batch.task.result()  # a store error in the batch ends the loop here (see _supervised)
            del self._batches[key]
            self._done.append(batch)
            if key in self._next:  # the player's next batch, built meanwhile, goes now
                self._batches[key] = self._next.pop(key)

    async def record_done(self) -> None:
        """Record every batch that is done, in one transaction: their dead letters, and what they finished.
        Also the dispatcher's last word to a stopped lane, so that a clean stop sends nothing twice."""
        if not self._done:
            return
        done, self._done = self._done, []
        pks = [ev.pk for batch in done for ev in batch.events]
        dead = [letter for batch in done for letter in batch.dead]
        lost = await self._at_store(self.claims.finish, pks, sum(batch.delivered for batch in done), dead)
        if lost:
            log.warning("%s: the lease of %d event(s) ran out and another daemon took them over: they were "
                        "sent twice", self.name, lost)
        if dead:
            log.warning("%s: %d event(s) dead-lettered, e.g. %s", self.name, len(dead), dead[0][2])

    async def release(self) -> None:
        """The dispatcher's last word after `record_done`: what the lane holds goes back to the fleet."""
        await self._at_store(self.claims.release)

    async def _at_store(self, call: Callable[..., T], *args: Any) -> T:
        """A call of the lane's `Claims`, in a thread and one at a time: a stop that cancels one midway (its
        thread runs on) must not let the dispatcher's last calls run beside it."""
        def alone() -> T:
            with self._claims_lock:
                return call(*args)
        return await asyncio.to_thread(alone)

    async def keep_leases(self) -> None:
        """Renew this lane's leases every third of their length, however long its batches wait or are retried
        (run beside `run` on PostgreSQL only: a lane's loop may wait for a batch a long while)."""
        while True:
            await asyncio.sleep(self.delivery.lease_s / 3)
            await asyncio.to_thread(self.claims.renew)

    async def _wait(self, seconds: float | None) -> None:
        """Until a batch is done, a flush (nudge), or `seconds`."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.nudge.wait())]
        # a player's next batch is not waited on: it is taken up once the batch before it is done
        waits.extend(batch.task for batch in self._batches.values() if batch.task is not None)
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waits[0].cancel()

    # --- one batch --------------------------------------------------------------------------------------

    async def _deliver(self, batch: _Batch) -> None:
        """Send until every routed event of the batch is delivered or dead.

        A part a hook raises on is halved, and an event it raises on alone (a few times in a row, as a raise
        may be a fluke) is dead-lettered: one poison event costs about 2·log2(batch) requests and the lane
        goes on, instead of one request per event of the batch."""
        parts = [batch.events]
        crashes = 0
        while parts:
            part = parts[0]
            if not part:
                parts.pop(0)
                continue
            now = await asyncio.to_thread(self.delivery.recheck, part)
            if len(now) < len(part):  # purged since the claim (the player denied consent, or was forgotten)
                parts[0] = now
                continue
            outcome = await self._exchange(part, batch.after)
            batch.after = None
            if outcome is None:  # built early and kept waiting: checked and built again
                continue
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
        assert outcome is not None  # only a batch built early is sent back to be built again
        by_event = {ev.pk: letter for letter, ev in letters}
        done = [by_event[pk] for pk in outcome.delivered]
        again = [(by_event[pk], code, reason) for pk, code, reason in outcome.dead]
        if outcome.crashed:  # back to the dead letters, rather than raising on them at every turn
            again = [(letter, "provider_error", outcome.error or "the provider raised") for letter, _ in letters]
        if outcome.refs:
            await asyncio.to_thread(self.delivery.save_refs, self.name, outcome.refs)
        await asyncio.to_thread(self.delivery.settle_requeued, done, again)

    async def _exchange(self, events: list[StoredEvent], after: asyncio.Task[None] | None = None) -> Outcome | None:
        """Build, send and classify once: what became of `events` this time. Batches are built one at a time,
        so that calls take their places in their keys' order as their batches were claimed. A batch built early
        waits for `after`, its player's batch before it, to be finished (retries included) before its calls
        take their places; None if that took longer than STALE_AFTER_S (it is to be checked and built again)."""
        try:
            await self.provider.ready(events)
            async with self._building:
                await self._start()
                built = await self.provider.build(events)
                if after is None:
                    queued = self._places(built.calls)
            if after is not None:
                began = time.monotonic()
                await asyncio.wait([after])
                if time.monotonic() - began > STALE_AFTER_S:
                    return None
                queued = self._places(built.calls)
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
        if self.report is not None:
            self.report(self.name, events, outcome)
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

    def _places(self, calls: list[Call]) -> list[tuple[Call, asyncio.Future[None] | None, asyncio.Future[None]]]:
        """Each call with its place in its key's line (see `_queue`)."""
        return [(call, *self._queue(call)) for call in calls]

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
        in_flight = sum(len(b.events) for b in [*self._out(), *self._done])
        figures: dict[str, Any] = {"in_flight": in_flight,  # on PostgreSQL the fleet's, from the store's figures
                                   **self.delivery.figures(self.name), "waiting": self._buckets.count,
                                   "requests": self.sender.requests, "last_error": self.last_error,
                                   "last_error_at": self.last_error_at, "next_retry_at": self.next_retry_at}
        if self.paused:  # the last outcome said the provider must not be sent to now (present only then)
            figures["paused"] = self.paused
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

