"""The operator's feed: what becomes of events as it happens, for `engine-bridge tap` and the inspector page.

Nothing here is on the ingress's path. Stored events are read back from the store by the feed's own thread,
at most `SHOW_PER_TURN` a turn (past that it skips ahead and says how many it did not show); the lanes tell
their outcomes through a hook that only queues; config changes are read from the publisher's last-value cache.
Every reader has a bounded queue of its own: one that cannot keep up loses its own lines, counted and told,
and never slows the ingress, the lanes or another reader.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ..providers.base import Outcome, Provider
from ..stats import Counters
from ..store import Store, StoredEvent, error_text
from ..store.schema import events

log = logging.getLogger(__name__)

TURN_S = 0.5
SHOW_PER_TURN = 50  # stored events shown per turn at most: 100/s, more than a person reads
RECENT = 500  # lines kept for a reader that joins (the page shows the latest events at once)
QUEUE_LINES = 2000  # a reader's queue; beyond it the reader's new lines are dropped, and counted
STATE_EVERY_S = 2.0  # the page's state (health, providers, dead letters) while someone looks
EVENT_KINDS = frozenset({"stored", "delivered", "dead_lettered", "retry", "duplicates", "skipped"})

Item = dict[str, Any]


@dataclass(frozen=True)
class Filter:
    """Which lines a reader wants; None takes every value. A line without the field (a `duplicates` count has
    no category) passes only a filter that does not ask for it."""

    kinds: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    providers: frozenset[str] | None = None
    users: frozenset[str] | None = None

    def matches(self, item: Item) -> bool:
        if self.kinds is not None and item["kind"] not in self.kinds:
            return False
        for wanted, key in ((self.categories, "category"), (self.users, "user_id")):
            if wanted is not None and item.get(key) not in wanted:
                return False
        if self.providers is not None:
            named = item.get("provider")
            if named is not None:
                return named in self.providers
            return item["kind"] == "stored" and any(p in self.providers for p in item.get("verdicts", {}))
        return True


class Reader:
    """One reader's bounded queue. `dropped` counts the lines it lost; `next` tells it, before its next line."""

    def __init__(self, wanted: Filter, size: int = QUEUE_LINES) -> None:
        self.wanted = wanted
        self._lines: queue.Queue[Item] = queue.Queue(size)
        self._lock = threading.Lock()  # producers are two threads (the feed's, the lanes')
        self.dropped = 0
        self._told = 0

    def offer(self, item: Item) -> None:
        if not self.wanted.matches(item):
            return
        try:
            self._lines.put_nowait(item)
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def next(self, timeout_s: float) -> Item | None:
        """The next line (a `dropped` notice first, when lines were lost since the last one), or None."""
        with self._lock:
            lost = self.dropped - self._told
            self._told = self.dropped
        if lost:
            return {"kind": "dropped", "at": _now_ms(), "count": lost, "total": self._told}
        try:
            return self._lines.get(timeout=timeout_s)
        except queue.Empty:
            return None


class Feed:
    """Reads what happened and hands it to every reader; keeps the figures only it sees (each provider's last
    success, retries and invalid events per category) for the metrics."""

    def __init__(self, store: Store, providers: Sequence[Provider], counters: Counters,
                 configs: Callable[[str], tuple[dict[str, Any], int]],
                 state: Callable[[], Item] | None = None) -> None:
        self.store = store
        self.providers = list(providers)
        self.counters = counters
        self.configs = configs
        self.state = state
        self._readers: list[Reader] = []
        self._recent: deque[Item] = deque(maxlen=RECENT)
        self._lock = threading.Lock()
        self.invalid: Counter[tuple[str, str]] = Counter()  # (provider, category)
        self.last_success: dict[str, float] = {}  # provider -> when it last delivered (s since the epoch)
        self.retries: Counter[str] = Counter()  # provider -> exchanges that failed and are retried
        self.failing: dict[str, str] = {}  # provider -> why its latest exchange failed, while it does
        self.store_error: str | None = None  # why the feed's latest read of the store failed, while it does
        self._cursor: int | None = None  # the last event shown as stored (or skipped); None: not read yet
        self._held: deque[tuple[int, Item]] = deque(maxlen=QUEUE_LINES)  # outcomes of events not shown yet
        self._duplicates = 0
        self._versions: dict[str, int] = {}

    # --- readers ------------------------------------------------------------------------------------

    def join(self, wanted: Filter, recent: bool = False) -> Reader:
        """A new reader; with `recent`, handed the recent lines it wants first (the page shows them)."""
        reader = Reader(wanted)
        with self._lock:
            if recent:
                for item in self._recent:
                    reader.offer(item)
            self._readers.append(reader)
        return reader

    def leave(self, reader: Reader) -> None:
        with self._lock:
            if reader in self._readers:
                self._readers.remove(reader)

    def emit(self, item: Item, keep: bool = True) -> None:
        with self._lock:
            if keep:
                self._recent.append(item)
            readers = list(self._readers)
        for reader in readers:
            reader.offer(item)

    # --- the lanes' hook (on the lanes' event loop: it only queues) ---------------------------------

    def outcome(self, provider: str, sent: list[StoredEvent], outcome: Outcome) -> None:
        try:
            self._outcome(provider, sent, outcome)
        except Exception:  # a bug here must never cost a lane its loop
            log.exception("the feed could not read an outcome of %s", provider)

    def _outcome(self, provider: str, sent: list[StoredEvent], outcome: Outcome) -> None:
        now = _now_ms()
        if outcome.delivered:
            self.last_success[provider] = now / 1000
        problem = outcome.paused or outcome.error
        if not problem:
            self.failing.pop(provider, None)
        else:
            self.failing[provider] = problem
            self.retries[provider] += 1
        by_pk = {ev.pk: ev for ev in sent} if self._readers or outcome.dead else {}
        for pk, code, _ in outcome.dead:
            if code == "invalid" and pk in by_pk:
                self.invalid[(provider, by_pk[pk].category)] += 1
        if not self._readers:  # nobody looks: the figures only
            return
        for pk in sorted(outcome.delivered):
            self._emit_outcome(pk, {"kind": "delivered", "at": now, "provider": provider,
                                    **_event_ref(by_pk.get(pk), pk)})
        for pk, code, reason in outcome.dead:
            self._emit_outcome(pk, {"kind": "dead_lettered", "at": now, "provider": provider, "code": code,
                                    "reason": reason, **_event_ref(by_pk.get(pk), pk)})
        if problem:
            settled = len(outcome.delivered) + len(outcome.dead)
            self.emit({"kind": "retry", "at": now, "provider": provider, "error": problem,
                       "paused": outcome.paused is not None, "events": len(sent) - settled}, keep=False)

    def _emit_outcome(self, pk: int, item: Item) -> None:
        """An event's outcome after its `stored` line: held while the feed has not read the event yet (a lane
        can deliver it before the feed's next turn)."""
        with self._lock:
            if self._cursor is None or pk > self._cursor:
                self._held.append((pk, item))
                return
        self.emit(item)

    # --- the feed's thread --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Every turn: new stored events, new duplicates, changed configs, and now and then the state."""
        self._duplicates = self.counters.duplicates
        self._versions = {t: p["version"] for t, p in self.configs("")[0].items()}
        last_state = 0.0
        while not stop.wait(TURN_S):
            state = self.state if self._readers and time.monotonic() - last_state >= STATE_EVERY_S else None
            if state is not None:
                last_state = time.monotonic()
            try:
                self._turn(state)
            except Exception:  # a bug of the operator's window costs a turn of it, never the daemon
                log.exception("feed: a turn failed")

    def _turn(self, state: Callable[[], Item] | None) -> None:
        try:
            self._stored()
            self.store_error = None
        except SQLAlchemyError as exc:  # the store is away: the health says so; the feed tries again
            self.store_error = error_text(exc)
        self._duplicated()
        self._configs()
        if state is not None:
            self.emit({"kind": "state", "at": _now_ms(), **state()}, keep=False)

    def _stored(self) -> None:
        """The events stored since the last turn, the latest SHOW_PER_TURN of them read back (while someone
        looks); nothing else of the store is read (a count of every new row cost more CPU than the ingress can
        spare). The first turn only takes its bearings: what was stored before is not news."""
        with self.store.engine.connect() as conn:
            top = int(conn.execute(select(func.max(events.c.pk))).scalar() or 0)
            after = top if self._cursor is None else self._cursor
            rows = [] if not self._readers or top <= after else conn.execute(  # nobody looks: the top only
                select(events).where(events.c.pk > max(after, top - SHOW_PER_TURN))
                .order_by(events.c.pk)).mappings().all()
        unseen = top - after - SHOW_PER_TURN  # pks are not reused: a close count, gaps being rare
        if unseen > 0 and self._readers:
            self.emit({"kind": "skipped", "at": _now_ms(), "count": unseen}, keep=False)
        for row in rows:
            self.emit(self._stored_item(row))
        with self._lock:
            self._cursor = max(top, after)
            ready = [item for pk, item in self._held if pk <= self._cursor]
            kept = [(pk, item) for pk, item in self._held if pk > self._cursor]
            self._held.clear()
            self._held.extend(kept)
        for item in ready:
            self.emit(item)

    def _stored_item(self, row: Any) -> Item:
        """A stored event with each provider's early word: where it goes, and the rule it breaks if any (what
        the ack's `invalid` said)."""
        fields = msgpack.unpackb(row["fields"])
        ev = StoredEvent(pk=row["pk"], device_id=row["device_id"], uid=row["uid"], user_id=row["user_id"],
                         session_id=row["session_id"], category=row["category"], client_ts=row["client_ts"],
                         received_at=row["received_at"], game_build=row["game_build"], fields=fields,
                         session_num=None, user_ip=None, platform=None, os_version=None, device=None,
                         manufacturer=None, engine_version=None, engine=None, own=None)
        verdicts = {p.name: _early_word(p, ev) for p in self.providers}
        return {"kind": "stored", "at": row["received_at"], **_event_ref(ev, ev.pk), "device_id": ev.device_id,
                "session_id": ev.session_id, "ts": ev.client_ts, "fields": plain(fields),
                "verdicts": {name: v for name, v in verdicts.items() if v is not None}}

    def _duplicated(self) -> None:
        now = self.counters.duplicates
        if now > self._duplicates:
            self.emit({"kind": "duplicates", "at": _now_ms(), "count": now - self._duplicates})
        self._duplicates = now

    def _configs(self) -> None:
        for topic, publication in self.configs("")[0].items():
            if self._versions.get(topic) != publication["version"]:
                self._versions[topic] = publication["version"]
                self.emit({"kind": "config", "at": _now_ms(), **plain(publication)}, keep=False)


def _early_word(provider: Provider, ev: StoredEvent) -> str | None:
    """`queued`, `invalid: <rule>`, or None when the provider does not take the event (routing)."""
    if not provider.accepts(ev):
        return None
    rule = provider.check(ev.category, ev.fields) or provider.check_user(ev.user_id)
    return f"invalid: {rule}" if rule else "queued"


def _event_ref(ev: StoredEvent | None, pk: int) -> Item:
    if ev is None:
        return {"pk": pk}
    return {"pk": pk, "id": ev.uid, "category": ev.category, "user_id": ev.user_id}


def plain(value: Any) -> Any:
    """msgpack values as JSON can carry them: bin as text (escaped where it is not UTF-8), map keys as str."""
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def _now_ms() -> int:
    return int(time.time() * 1000)
