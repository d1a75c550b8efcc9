"""Delivery: what is due to each provider, what it finished with, what it refused for good.

A lane claims through `Claims`, of which there are two: `CursorClaims` on SQLite (one daemon) and
`LeasedClaims` on PostgreSQL (a fleet of daemons on one database).

On SQLite each provider has a cursor: every event up to it is finished (delivered or dead-lettered). It claims the
events past its cursor in pk order and moves the cursor only after the provider answered. Players' batches
may finish out of order (a dedicated server's players each have their own): an event finished while an older
one is still out is recorded in `delivery_done`, skipped by the next claims, and forgotten once the cursor
passes it. A crash between a send and that record repeats the send, never skips it.

Consent: a player's events are claimed only while their analytics consent allows it (under
`consent = "required"`, once granted: the ingress then moves their held events past every cursor, in order), and
a player's IP address only while their ip_ads consent does. `recheck` tells a lane, before each send, which
claimed events were purged since (a denial, an erasure: never sent) and whose IP was withheld since.

On PostgreSQL pk order is not commit order (several daemons insert at once), so there is no cursor: the ingest
writes a `delivery_queue` row per event and registered provider, a claim leases the oldest free rows of the
players it holds and of as many new players as its lane has room for (`FOR UPDATE SKIP LOCKED`, `claimed_by`,
`claimed_until`: so that a fleet shares a backlog of few players), and finishing deletes them `WHERE claimed_by = me`:
a batch whose lease ran out and was taken over by another daemon finishes there, not here (counted as a lease
lost, and its delivered events as duplicates at the provider). A dead daemon's rows are free again once their
leases run out: no heartbeat. One provider's claims take turns (a transaction advisory lock) so that each sees
every other daemon's leases: a player's event is not claimed while an older one of theirs is leased elsewhere.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import fields as dataclass_fields
from datetime import timedelta
from operator import itemgetter
from typing import Any, Protocol

import msgpack
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Connection,
    Interval,
    Select,
    String,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Result, Row

from .database import ENQUEUE_LOCK, Store, consented, now_ms, purge_count
from .rows import DeadLetter, Requeued, StoredEvent
from .schema import (
    PLAYER_DEVICE,
    dead_letters,
    delivery_cursors,
    delivery_done,
    delivery_queue,
    devices,
    events,
    provider_refs,
    sessions,
)


def _claim_columns(required: bool) -> tuple[ColumnElement[Any], ...]:
    """An event with its session's number and IP (`_stored_events` drops it where the player's ip_ads consent
    withholds it), its player's device (the session's, else the hello's) and its hello's engine: what a provider
    needs of it."""
    ip_ads = consented(events.c.device_id, events.c.user_id, required, "ip_ads")
    return (*events.c, sessions.c.session_num, sessions.c.user_ip,
            *(func.coalesce(sessions.c[name], devices.c[name]).label(name) for name in PLAYER_DEVICE),
            devices.c.engine, (devices.c.user_id == events.c.user_id).label("own"), ip_ads.label("ip_ads"))


_CLAIM_FROM = (events.outerjoin(sessions, sessions.c.session_id == events.c.session_id)
               .outerjoin(devices, devices.c.device_id == events.c.device_id))
_STORED_EVENT_FIELDS = tuple(f.name for f in dataclass_fields(StoredEvent) if f.name != "purges")


def _done_by(provider: str) -> ColumnElement[bool]:
    """The event was finished by `provider` past its cursor."""
    return exists().where(delivery_done.c.provider == provider, delivery_done.c.event_pk == events.c.pk)


def _stored_events(result: Result[Any], purges: int) -> list[tuple[Row[Any], StoredEvent]]:
    """Claimed rows, each with its event: the columns found by name once per result, not per row (a fleet
    daemon reads every event it sends this way; `fields` is msgpack in the store). `purges`: the store's count
    of purges read before the rows (`purge_count`)."""
    at = {name: i for i, name in enumerate(result.keys())}
    fields, own, ip_ads = at["fields"], at["own"], at["ip_ads"]
    pick = itemgetter(*(at[name] for name in _STORED_EVENT_FIELDS))
    out = []
    for row in result.all():
        ev = StoredEvent(*pick(row))
        ev.fields = msgpack.unpackb(row[fields])
        ev.own = None if row[own] is None else bool(row[own])
        ev.ip_ads = bool(row[ip_ads])
        if not ev.ip_ads:
            ev.user_ip = None
        ev.purges = purges
        out.append((row, ev))
    return out


def _provider_lock(provider: str) -> int:
    """The advisory lock key under which one provider's claims take turns across the fleet."""
    return zlib.crc32(provider.encode()) | 0x6562_0000_0000


def _any_pk(column: ColumnElement[Any], pks: Iterable[int]) -> ColumnElement[bool]:
    """PostgreSQL: `column` is one of `pks`, passed as one array: a batch's or a claim's pks as hundreds of
    parameters cost the lane's thread more than the statement costs the database."""
    return column == any_(bindparam("pks", list(pks), type_=ARRAY(BigInteger)))


def _read_events(conn: Connection, columns: tuple[ColumnElement[Any], ...], pks: list[int]) -> list[StoredEvent]:
    """Claimed events by pk, oldest first (PostgreSQL)."""
    purges = purge_count(conn)
    rows = conn.execute(select(*columns).select_from(_CLAIM_FROM).where(_any_pk(events.c.pk, pks))
                        .order_by(events.c.pk))
    return [ev for _, ev in _stored_events(rows, purges)]


class Claims(Protocol):
    """One provider's claims, as its lane makes them: the same calls on a cursor and on leases. Every call
    blocks (the lane makes them in a thread); a lane makes them one at a time, `renew` aside."""

    @property
    def claimed_up_to(self) -> int:
        """The highest pk claimed so far (a flush sends every bucket begun by then)."""

    def start(self) -> None:
        """Before the first claim, and again when the lane resumes: nothing claimed is held in memory."""

    def claim(self, limit: int, new_players: int | None = None) -> list[StoredEvent]:
        """Up to `limit` more events due to the provider, oldest first. On leases, of at most `new_players`
        players whose events this lane holds none of (None: any): a fleet shares its players, so a lane takes
        on no more of them than it will send soon. A cursor, alone on its store, takes any."""

    def skip(self, pks: list[int]) -> None:
        """Claimed events the provider does not take (not routed to it): finished with at the next `sync`."""

    def sync(self) -> None:
        """Record what `skip` left, while no batch is out."""

    def finish(self, pks: list[int], delivered: int, dead: list[tuple[int, str, str]]) -> int:
        """A batch done: each event delivered (`delivered` of them) or dead-lettered (`dead`: pk, code,
        reason). Returns how many of its events another daemon had taken over (0 on a cursor)."""

    def renew(self) -> int:
        """Extend every lease this lane holds; returns how many (0 on a cursor, which needs none)."""

    def release(self) -> None:
        """Give back what this lane holds but did not finish (stopping): other daemons take it at once."""


class _Finished:
    """Which claimed events are finished: the cursor is the last pk before the oldest unfinished one."""

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor  # every event up to it finished
        self.claimed_up_to = cursor
        self._open: deque[int] = deque()  # claimed pks, in order, until every one before is finished too
        self._done: set[int] = set()  # finished pks still behind an unfinished one

    def claimed(self, pk: int) -> None:
        self._open.append(pk)
        self.claimed_up_to = pk

    def finish(self, pks: list[int]) -> list[int]:
        """Mark `pks` finished; returns those still past the cursor."""
        self._done.update(pks)
        while self._open and self._open[0] in self._done:
            self._done.discard(self._open.popleft())
        self.cursor = self._open[0] - 1 if self._open else self.claimed_up_to
        return [pk for pk in pks if pk > self.cursor]


class CursorClaims:
    """SQLite's claims: one daemon, pk order is commit order. The cursor moves past every event finished with
    as soon as all before it are; one finished past the cursor is recorded so that a restart does not send it
    again. Skipped events cost no write of their own: the next write of the cursor carries them."""

    def __init__(self, delivery: Delivery, provider: str) -> None:
        self.delivery = delivery
        self.provider = provider
        self._finished = _Finished(0)
        self._stored = 0

    @property
    def claimed_up_to(self) -> int:
        return self._finished.claimed_up_to

    def start(self) -> None:
        self._stored = self.delivery.cursor(self.provider)
        self._finished = _Finished(self._stored)

    def claim(self, limit: int, new_players: int | None = None) -> list[StoredEvent]:
        claimed = self.delivery.claim(self.provider, self._finished.claimed_up_to, limit)
        for ev in claimed:
            self._finished.claimed(ev.pk)
        return claimed

    def skip(self, pks: list[int]) -> None:
        self._finished.finish(pks)

    def sync(self) -> None:
        if self._finished.cursor > self._stored:
            self._store([], 0, [])

    def finish(self, pks: list[int], delivered: int, dead: list[tuple[int, str, str]]) -> int:
        self._store(self._finished.finish(pks), delivered, dead)
        return 0

    def _store(self, past: list[int], delivered: int, dead: list[tuple[int, str, str]]) -> None:
        cursor = self._finished.cursor
        self.delivery.finish(self.provider, cursor, delivered, dead, tuple(past))
        self._stored = cursor

    def renew(self) -> int:
        return 0

    def release(self) -> None:
        """Nothing to give back: a restart claims again from the stored cursor."""


_WINDOW = 4  # a claim of n rows picks its new players among the n * _WINDOW oldest free rows


class LeasedClaims:
    """PostgreSQL's claims: rows of `delivery_queue` leased by this daemon (see the module's docstring)."""

    def __init__(self, delivery: Delivery, provider: str, batch: int | None = None) -> None:
        self.delivery = delivery
        self.provider = provider
        self.batch = batch
        self.me = delivery.daemon_id
        self.claimed_up_to = 0
        self._skipped: list[int] = []
        self._players: dict[int, tuple[str, str]] = {}  # per pk leased here: its player (device, user)
        self._held: dict[tuple[str, str], int] = {}  # per player: how many of their rows are leased here
        self._last: dict[tuple[str, str], int] = {}  # per player held: the newest pk of theirs leased here
        self._lease = bindparam("lease", timedelta(seconds=delivery.lease_s), type_=Interval)
        self._mine = and_(delivery_queue.c.provider == provider, delivery_queue.c.claimed_by == self.me)

    def _may_send(self, queue: Any) -> ColumnElement[bool]:
        """A queued row's player lets their events leave (see `consented`)."""
        return consented(queue.c.device_id, queue.c.user_id, self.delivery.consent_required)

    def start(self) -> None:
        """The provider registered (its cursor row: from then on the ingest queues its events), every event
        stored before queued for it the first time, and what this daemon held of it before given back."""
        registered = select(delivery_cursors.c.provider).where(delivery_cursors.c.provider == self.provider)
        with self.delivery.engine.begin() as conn:
            if conn.execute(registered).first() is None:
                # bursts committing now hold the shared side of this lock: wait for them, so none is missed
                conn.execute(select(func.pg_advisory_xact_lock(ENQUEUE_LOCK)))
            # asked again under the lock: another daemon starting at once may have registered it meanwhile
            if conn.execute(registered).first() is None:
                conn.execute(insert(delivery_cursors).values(provider=self.provider, last_pk=0, delivered=0,
                                                             updated_at=now_ms()))
                conn.execute(insert(delivery_queue).from_select(
                    ["provider", "event_pk", "device_id", "user_id"],
                    select(bindparam("p", self.provider), events.c.pk, events.c.device_id, events.c.user_id)))
        self.release()
        self._skipped = []

    def claim(self, limit: int, new_players: int | None = None) -> list[StoredEvent]:
        """Leases that ran out are swept free first (their `claimed_by` kept, so that their holder's late finish
        still counts until a claim takes them). The players claimed for are those this lane holds events of and
        the `new_players` picked (`_pick_players`); each gets its oldest free rows, up to a `batch` (a share
        that is not a whole batch would go as a short one; with no `batch`, an equal share of `limit`), the
        oldest `limit` of them taken, while the player's oldest queued row is free or leased here (leased
        elsewhere, another daemon's batch of that player is out: it waits). One index probe per player and
        per row read, however long the backlog and however many rows are leased. (An anti-join of the leased
        rows, as the planner chose for a NOT EXISTS, took seconds; a scan of the oldest free rows for this lane's
        players read other players' rows by the thousand.)"""
        now = func.now()
        with self.delivery.engine.begin() as conn:
            conn.execute(select(func.pg_advisory_xact_lock(_provider_lock(self.provider))))
            conn.execute(update(delivery_queue).where(delivery_queue.c.provider == self.provider,
                                                      delivery_queue.c.claimed_until < now)
                         .values(claimed_until=None))
            # this lane's players, but for those with two batches leased here already (one out, one waiting):
            # more of theirs would be held from the fleet for nothing
            players = [player for player, rows in self._held.items() if not self.batch or rows < 2 * self.batch]
            if new_players is None or new_players > 0:
                players += self._pick_players(conn, limit, limit if new_players is None else new_players)
            if not players:
                return []
            free = self._free_rows(players, limit)
            # The rows locked, by their physical address (a TID scan): a join back to the queue, or its pks as an
            # array, is planned from the table's statistics, and a fresh queue's led to a scan of every row.
            taken = conn.execute(
                update(delivery_queue).where(literal_column("delivery_queue.ctid") == any_(func.array(
                    free.scalar_subquery())))
                .values(claimed_by=self.me, claimed_until=now + self._lease, attempts=delivery_queue.c.attempts + 1)
                .returning(delivery_queue.c.event_pk, delivery_queue.c.attempts, delivery_queue.c.device_id,
                           delivery_queue.c.user_id)).all()
            over = sum(1 for _, attempts, _, _ in taken if attempts > 1)
            if over:  # a lease on them ended unfinished (its daemon died, stalled or stopped): perhaps sent already
                conn.execute(update(delivery_cursors).where(delivery_cursors.c.provider == self.provider)
                             .values(taken_over=delivery_cursors.c.taken_over + over))
        if not taken:
            return []
        for pk, _, device_id, user_id in taken:
            self._hold(pk, (device_id, user_id))
        pks = [pk for pk, _, _, _ in taken]
        with self.delivery.engine.begin() as conn:  # leased now: read with the fleet's claims free to go on
            claimed = _read_events(conn, self.delivery.columns, pks)
            gone = set(pks) - {ev.pk for ev in claimed}
            if gone:  # queued rows whose events were trimmed since: nothing left to send
                conn.execute(delete(delivery_queue).where(self._mine, _any_pk(delivery_queue.c.event_pk, gone)))
        self._let_go(list(gone))
        if claimed:
            self.claimed_up_to = max(self.claimed_up_to, claimed[-1].pk)
        return claimed

    def _free_rows(self, players: list[tuple[str, str]], limit: int) -> Select[Any]:
        """The ctids of the rows a claim for `players` takes (see `claim`)."""
        queue = delivery_queue.alias("q")
        share = self.batch or -(-limit // len(players))
        who = (func.unnest(bindparam("devices", [d for d, _ in players], type_=ARRAY(String)),
                           bindparam("users", [u for _, u in players], type_=ARRAY(String)),
                           bindparam("after", [self._last.get(p, 0) for p in players], type_=ARRAY(BigInteger)))
               .table_valued("device_id", "user_id", "after").render_derived(name="who"))
        head = self._head(who, "claimed_by", "claimed_until")
        ctid: ColumnElement[Any] = literal_column(f"{queue.name}.ctid")
        # A player's rows past those leased here (theirs come first: a lane takes a player's oldest), read
        # from the player's index; the free ones are taken. (Asked for free rows, the planner may read the
        # free rows' index, every player's, filtering out the others': 0.3 ms a player where this takes 10 µs.)
        rows = (select(ctid.label("row"), queue.c.event_pk, queue.c.claimed_until)
                .where(queue.c.provider == self.provider, queue.c.device_id == who.c.device_id,
                       queue.c.user_id == who.c.user_id, queue.c.event_pk > who.c.after)
                .order_by(queue.c.event_pk).limit(share)
                .with_for_update(skip_locked=True, of=queue).lateral("rows"))
        return (select(rows.c.row).select_from(who.join(head, true()).join(rows, true()))
                .where(rows.c.claimed_until.is_(None), or_(head.c.claimed_until.is_(None),
                                                            head.c.claimed_by == self.me),
                       self._may_send(who))
                .order_by(rows.c.event_pk).limit(limit))

    def _head(self, players: Any, *columns: str) -> Any:
        """Per row of `players` (device_id, user_id columns), that player's oldest queued row: a lateral of one
        index probe."""
        first = delivery_queue.alias("first")
        return (select(*(first.c[name] for name in columns))
                .where(first.c.provider == self.provider, first.c.device_id == players.c.device_id,
                       first.c.user_id == players.c.user_id)
                .order_by(first.c.event_pk).limit(1).lateral("head"))

    def _pick_players(self, conn: Connection, limit: int, count: int) -> list[tuple[str, str]]:
        """The `count` players new to this lane whose events are oldest: those whose oldest queued row is free,
        among the free rows a claim looks at, in order (one index probe per row read, stopping at `count`)."""
        queue = delivery_queue.alias("q")
        window = (select(queue.c.device_id, queue.c.user_id, queue.c.event_pk)
                  .where(queue.c.provider == self.provider, queue.c.claimed_until.is_(None), self._may_send(queue))
                  .order_by(queue.c.event_pk).limit(limit * _WINDOW).subquery("window"))
        head = self._head(window, "event_pk")
        rows = conn.execute(select(window.c.device_id, window.c.user_id).select_from(window.join(head, true()))
                            .where(head.c.event_pk == window.c.event_pk).order_by(window.c.event_pk).limit(count))
        return [(device, user) for device, user in rows]

    def _hold(self, pk: int, player: tuple[str, str]) -> None:
        self._players[pk] = player
        self._held[player] = self._held.get(player, 0) + 1
        self._last[player] = max(self._last.get(player, 0), pk)

    def _let_go(self, pks: list[int]) -> None:
        """Finished rows: a player none of whose rows are leased here any more is no longer this lane's."""
        for pk in pks:
            player = self._players.pop(pk, None)
            if player is not None:
                self._held[player] -= 1
                if not self._held[player]:
                    del self._held[player], self._last[player]

    def skip(self, pks: list[int]) -> None:
        self._skipped.extend(pks)

    def sync(self) -> None:
        if self._skipped:
            with self.delivery.engine.begin() as conn:
                conn.execute(delete(delivery_queue).where(self._mine,
                                                          _any_pk(delivery_queue.c.event_pk, self._skipped)))
            self._let_go(self._skipped)
            self._skipped = []

    def finish(self, pks: list[int], delivered: int, dead: list[tuple[int, str, str]]) -> int:
        """Only rows still leased to this daemon are finished (deleted), with their dead letters. Of the rest,
        those whose events are still stored were taken over: their delivered ones go out twice."""
        with self.delivery.engine.begin() as conn:
            kept = set(conn.execute(delete(delivery_queue).where(self._mine, _any_pk(delivery_queue.c.event_pk, pks))
                                    .returning(delivery_queue.c.event_pk)).scalars())
            rest = [pk for pk in pks if pk not in kept]
            lost = set(conn.execute(select(events.c.pk).where(_any_pk(events.c.pk, rest))).scalars()) if rest else set()
            dead_kept = [d for d in dead if d[0] in kept]
            dead_pks = {pk for pk, _, _ in dead}
            if dead_kept:
                now = now_ms()
                conn.execute(insert(dead_letters), [
                    {"provider": self.provider, "event_pk": pk, "code": code, "reason": reason, "created_at": now}
                    for pk, code, reason in dead_kept])
            cursors = delivery_cursors.c
            conn.execute(update(delivery_cursors).where(cursors.provider == self.provider).values(
                delivered=cursors.delivered + len(kept - dead_pks), updated_at=now_ms(),
                leases_lost=cursors.leases_lost + (1 if lost else 0),
                duplicates=cursors.duplicates + len(lost - dead_pks)))
        self._let_go(pks)
        return len(lost)

    def renew(self) -> int:
        with self.delivery.engine.begin() as conn:
            return int(conn.execute(update(delivery_queue).where(self._mine).values(
                claimed_until=func.now() + self._lease)).rowcount)

    def release(self) -> None:
        """The leases end now; `claimed_by` stays, so that the next claim counts them as taken over (a batch
        cancelled while out may have reached the provider)."""
        with self.delivery.engine.begin() as conn:
            conn.execute(update(delivery_queue).where(self._mine).values(claimed_until=None))
        self._players.clear()
        self._held.clear()
        self._last.clear()


class Delivery:
    """Cursors, claims and dead letters of every provider, and the ids providers gave our events."""

    def __init__(self, store: Store) -> None:
        self.dialect = store.dialect
        self.engine = store.engine
        self.leased = store.leased
        self.daemon_id = store.daemon_id
        self.lease_s = store.lease_s
        self.consent_required = store.consent_required
        self.columns = _claim_columns(store.consent_required)
        self._may_send = consented(events.c.device_id, events.c.user_id, store.consent_required)
        self._ip_ads = consented(events.c.device_id, events.c.user_id, store.consent_required, "ip_ads")

    def claims(self, provider: str, batch: int | None = None) -> Claims:
        """The provider's claims, as this store makes them: leased on PostgreSQL (a player's share of a claim is
        at most `batch` events, what the provider sends of a player at a time), a cursor on SQLite."""
        return LeasedClaims(self, provider, batch) if self.leased else CursorClaims(self, provider)

    # --- cursors ------------------------------------------------------------------------------------

    def cursor(self, provider: str) -> int:
        """The provider's cursor, created at 0 (everything stored is due) the first time."""
        with self.engine.begin() as conn:
            last = conn.execute(select(delivery_cursors.c.last_pk)
                                .where(delivery_cursors.c.provider == provider)).scalar()
            if last is None:
                conn.execute(insert(delivery_cursors).values(provider=provider, last_pk=0, delivered=0,
                                                             updated_at=now_ms()))
                return 0
            return int(last)

    def claim(self, provider: str, after_pk: int, limit: int) -> list[StoredEvent]:
        """The next events past `after_pk` that the provider has not finished with, oldest first."""
        with self.engine.connect() as conn:
            purges = purge_count(conn)
            rows = conn.execute(select(*self.columns).select_from(_CLAIM_FROM)
                                .where(events.c.pk > after_pk, ~_done_by(provider), self._may_send)
                                .order_by(events.c.pk).limit(limit))
            return [ev for _, ev in _stored_events(rows, purges)]

    def recheck(self, events_: list[StoredEvent]) -> list[StoredEvent]:
        """Claimed events as they stand now, before a send: those purged since (a denial, an erasure) left out,
        and the IP address taken off those whose player withheld it since the claim. Read again only when the
        store counted a purge since they were read (one row read per send, not a row per event)."""
        if not events_:
            return events_
        with self.engine.connect() as conn:
            purges = purge_count(conn)  # before the rows: a purge committed after it counts past it
            if all(ev.purges == purges for ev in events_):
                return events_
            pks = [ev.pk for ev in events_]
            among = _any_pk(events.c.pk, pks) if self.leased else events.c.pk.in_(pks)
            ip_ok: dict[int, bool] = {pk: bool(ok) for pk, ok in conn.execute(select(events.c.pk, self._ip_ads)
                                                                              .where(among))}
        kept = [ev for ev in events_ if ev.pk in ip_ok]
        for ev in kept:
            ev.purges = purges
            if ev.ip_ads and not ip_ok[ev.pk]:
                ev.ip_ads, ev.user_ip = False, None
        return kept

    def finish(self, provider: str, up_to_pk: int, delivered: int, dead: list[tuple[int, str, str]],
               done_past: tuple[int, ...] = ()) -> None:
        """In one transaction: the cursor to `up_to_pk` (every event up to it finished), the dead letters, and
        `done_past`, events finished past the cursor."""
        with self.engine.begin() as conn:
            conn.execute(delete(delivery_done).where(delivery_done.c.provider == provider,
                                                     delivery_done.c.event_pk <= up_to_pk))
            if done_past:
                conn.execute(insert(delivery_done), [{"provider": provider, "event_pk": pk} for pk in done_past])
            if dead:
                now = now_ms()
                conn.execute(insert(dead_letters), [
                    {"provider": provider, "event_pk": pk, "code": code, "reason": reason, "created_at": now}
                    for pk, code, reason in dead])
            conn.execute(update(delivery_cursors).where(delivery_cursors.c.provider == provider).values(
                last_pk=func.max(delivery_cursors.c.last_pk, up_to_pk) if self.dialect == "sqlite"
                else func.greatest(delivery_cursors.c.last_pk, up_to_pk),
                delivered=delivery_cursors.c.delivered + delivered, updated_at=now_ms()))

    def figures(self, provider: str) -> dict[str, Any]:
        """Queued (not finished), delivered and dead-lettered counts of one provider; on PostgreSQL also the
        fleet's: events leased now (`in_flight`), per daemon (`leases`), and the leases lost so far."""
        if self.leased:
            return self._fleet_figures(provider)
        cursor = delivery_cursors.c
        mine = cursor.provider == provider
        last = func.coalesce(select(cursor.last_pk).where(mine).scalar_subquery(), 0)
        # One statement, so one snapshot: read apart, a batch recorded between the reads (its dead letters and
        # the cursor move in one transaction) showed its dead letter with its event still queued. A range count
        # less the few events finished past the cursor, not a subquery per queued row: a long queue is read
        # often (stats, metrics).
        past = select(func.count()).select_from(events).where(events.c.pk > last).scalar_subquery()
        done = select(func.count()).select_from(delivery_done.join(events, events.c.pk == delivery_done.c.event_pk)) \
            .where(delivery_done.c.provider == provider, delivery_done.c.event_pk > last).scalar_subquery()
        dead = select(func.count()).select_from(dead_letters).where(
            dead_letters.c.provider == provider, dead_letters.c.requeued_at.is_(None)).scalar_subquery()
        so_far = func.coalesce(select(cursor.delivered).where(mine).scalar_subquery(), 0)
        with self.engine.connect() as conn:
            queued, delivered, dead = conn.execute(select(past - done, so_far, dead)).one()
        return {"queued": int(queued), "delivered": int(delivered), "dead_lettered": int(dead)}

    def _fleet_figures(self, provider: str) -> dict[str, Any]:
        queue = delivery_queue
        with self.engine.connect() as conn:
            row = conn.execute(select(delivery_cursors.c.delivered, delivery_cursors.c.leases_lost,
                                      delivery_cursors.c.duplicates, delivery_cursors.c.taken_over)
                               .where(delivery_cursors.c.provider == provider)).first()
            queued = conn.execute(select(func.count()).select_from(queue).where(queue.c.provider == provider)
                                   ).scalar_one()
            leases = {holder: int(n) for holder, n in conn.execute(
                select(queue.c.claimed_by, func.count()).where(queue.c.provider == provider,
                                                               queue.c.claimed_until >= func.now())
                .group_by(queue.c.claimed_by))}
            dead = conn.execute(select(func.count()).select_from(dead_letters).where(
                dead_letters.c.provider == provider, dead_letters.c.requeued_at.is_(None))).scalar_one()
        delivered, lost, duplicates, over = (int(v) for v in row) if row else (0, 0, 0, 0)
        return {"queued": int(queued), "delivered": delivered, "dead_lettered": int(dead),
                "in_flight": sum(leases.values()), "leases": leases, "leases_lost": lost, "duplicates": duplicates,
                "taken_over": over}

    # --- dead letters -------------------------------------------------------------------------------

    def dead_letters(self, provider: str | None = None, limit: int = 100) -> list[DeadLetter]:
        query = (select(dead_letters, events.c.category, events.c.uid)
                 .select_from(dead_letters.outerjoin(events, events.c.pk == dead_letters.c.event_pk))
                 .where(dead_letters.c.requeued_at.is_(None)).order_by(dead_letters.c.pk).limit(limit))
        if provider:
            query = query.where(dead_letters.c.provider == provider)
        with self.engine.connect() as conn:
            return [DeadLetter(**r) for r in conn.execute(query).mappings()]

    def take_requeued(self, provider: str, limit: int) -> list[Requeued]:
        """Dead letters an operator re-queued, with their events: delivered again before new events. On
        PostgreSQL none: their events go back into the provider's queue instead (see `_requeue_into_queue`)."""
        if self.leased:
            self._requeue_into_queue(provider)
            return []
        with self.engine.connect() as conn:
            purges = purge_count(conn)
            rows = conn.execute(
                select(dead_letters.c.pk.label("dl_pk"), *self.columns)
                .select_from(_CLAIM_FROM.join(dead_letters, events.c.pk == dead_letters.c.event_pk))
                .where(dead_letters.c.provider == provider, dead_letters.c.requeued_at.is_not(None), self._may_send)
                .order_by(dead_letters.c.pk).limit(limit))
            return [Requeued(letter_pk=row.dl_pk, event=ev) for row, ev in _stored_events(rows, purges)]

    def _requeue_into_queue(self, provider: str) -> None:
        """The provider's re-queued letters leave, their events queued for it again in the same transaction: the
        fleet's leased claims then deliver each once (a letter taken by several daemons at once is deleted by
        one, the others wait for it and find it gone), oldest pk first, so before its player's newer events."""
        letters = (delete(dead_letters).where(dead_letters.c.provider == provider,
                                              dead_letters.c.requeued_at.is_not(None))
                   .returning(dead_letters.c.event_pk).cte("letters"))
        with self.engine.begin() as conn:
            conn.execute(pg_insert(delivery_queue).from_select(
                ["provider", "event_pk", "device_id", "user_id"],
                select(bindparam("p", provider), events.c.pk, events.c.device_id, events.c.user_id)
                .where(events.c.pk.in_(select(letters.c.event_pk)))).on_conflict_do_nothing())

    def requeue(self, provider: str | None = None) -> int:
        """Mark dead letters for another try; returns how many. The provider picks them up at once."""
        now = now_ms()
        cond: ColumnElement[bool] = dead_letters.c.requeued_at.is_(None)
        if provider:
            cond = and_(cond, dead_letters.c.provider == provider)
        with self.engine.begin() as conn:
            return conn.execute(update(dead_letters).where(cond).values(requeued_at=now)).rowcount

    def settle_requeued(self, done: list[int], dead: list[tuple[int, str, str]]) -> None:
        """Delivered re-queued letters leave the table; those that failed again are dead once more."""
        with self.engine.begin() as conn:
            if done:
                conn.execute(delete(dead_letters).where(dead_letters.c.pk.in_(done)))
            for pk, code, reason in dead:
                conn.execute(update(dead_letters).where(dead_letters.c.pk == pk).values(
                    code=code, reason=reason, requeued_at=None, created_at=now_ms()))

    # --- provider refs ------------------------------------------------------------------------------

    def save_refs(self, provider: str, refs: list[tuple[int, str]]) -> None:
        """A provider's own ids for our events (staq's event ids), kept for tracing."""
        if not refs:
            return
        with self.engine.begin() as conn:
            conn.execute(delete(provider_refs).where(provider_refs.c.provider == provider,
                                                     provider_refs.c.event_pk.in_([pk for pk, _ in refs])))
            conn.execute(insert(provider_refs), [{"provider": provider, "event_pk": pk, "ref": ref}
                                                 for pk, ref in refs])
