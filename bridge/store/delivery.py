"""Delivery: what is due to each provider, what it finished with, what it refused for good.

Each provider has a cursor: every event up to it is finished (delivered or dead-lettered). It claims the
events past its cursor in pk order and moves the cursor only after the provider answered. Players' batches
may finish out of order (a dedicated server's players each have their own): an event finished while an older
one is still out is recorded in `delivery_done`, skipped by the next claims, and forgotten once the cursor
passes it. A crash between a send and that record repeats the send, never skips it.

Consent: a player's events are claimed only while their analytics consent allows it (under
`consent = "required"`, once granted: the ingress then moves their held events past every cursor, in order), and
a player's IP address only while their ip_ads consent does. `recheck` tells a lane, before each send, which
claimed events were purged since (a denial, an erasure: never sent) and whose IP was withheld since.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any

import msgpack
from sqlalchemy import ColumnElement, and_, case, delete, exists, func, insert, select, update
from sqlalchemy.engine import RowMapping

from .database import Store, consented, now_ms
from .rows import DeadLetter, Requeued, StoredEvent
from .schema import (
    PLAYER_DEVICE,
    dead_letters,
    delivery_cursors,
    delivery_done,
    devices,
    events,
    provider_refs,
    sessions,
)


def _claim_columns(required: bool) -> tuple[ColumnElement[Any], ...]:
    """An event with its session's number and IP (unless the player's ip_ads consent withholds it), its player's
    device (the session's, else the hello's) and its hello's engine: what a provider needs of it."""
    ip_ads = consented(events.c.device_id, events.c.user_id, required, "ip_ads")
    return (*events.c, sessions.c.session_num, case((ip_ads, sessions.c.user_ip), else_=None).label("user_ip"),
            *(func.coalesce(sessions.c[name], devices.c[name]).label(name) for name in PLAYER_DEVICE),
            devices.c.engine, (devices.c.user_id == events.c.user_id).label("own"), ip_ads.label("ip_ads"))


_CLAIM_FROM = (events.outerjoin(sessions, sessions.c.session_id == events.c.session_id)
               .outerjoin(devices, devices.c.device_id == events.c.device_id))
_STORED_EVENT_FIELDS = tuple(f.name for f in dataclass_fields(StoredEvent))


def _done_by(provider: str) -> ColumnElement[bool]:
    """The event was finished by `provider` past its cursor."""
    return exists().where(delivery_done.c.provider == provider, delivery_done.c.event_pk == events.c.pk)


def _stored_event(row: RowMapping) -> StoredEvent:
    """A claimed row, by column name (`fields` is msgpack in the store)."""
    values = {name: row[name] for name in _STORED_EVENT_FIELDS}
    values["fields"] = msgpack.unpackb(values["fields"])
    values["own"] = None if values["own"] is None else bool(values["own"])
    values["ip_ads"] = bool(values["ip_ads"])
    return StoredEvent(**values)


class Delivery:
    """Cursors, claims and dead letters of every provider, and the ids providers gave our events."""

    def __init__(self, store: Store) -> None:
        self.dialect = store.dialect
        self.engine = store.engine
        self._columns = _claim_columns(store.consent_required)
        self._may_send = consented(events.c.device_id, events.c.user_id, store.consent_required)
        self._ip_ads = consented(events.c.device_id, events.c.user_id, store.consent_required, "ip_ads")

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
            rows = conn.execute(select(*self._columns).select_from(_CLAIM_FROM)
                                .where(events.c.pk > after_pk, ~_done_by(provider), self._may_send)
                                .order_by(events.c.pk).limit(limit)).mappings().all()
        return [_stored_event(r) for r in rows]

    def recheck(self, events_: list[StoredEvent]) -> list[StoredEvent]:
        """Claimed events as they stand now, before a send: those purged since (a denial, an erasure) left out,
        and the IP address taken off those whose player withheld it since the claim."""
        if not events_:
            return events_
        with self.engine.connect() as conn:
            ip_ok: dict[int, bool] = {pk: bool(ok) for pk, ok in conn.execute(select(events.c.pk, self._ip_ads).where(
                events.c.pk.in_([ev.pk for ev in events_])))}
        kept = [ev for ev in events_ if ev.pk in ip_ok]
        for ev in kept:
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

    def figures(self, provider: str) -> dict[str, int]:
        """Queued (not finished), delivered and dead-lettered counts of one provider."""
        with self.engine.connect() as conn:
            row = conn.execute(select(delivery_cursors.c.last_pk, delivery_cursors.c.delivered)
                               .where(delivery_cursors.c.provider == provider)).first()
            last, delivered = (row[0], row[1]) if row else (0, 0)
            # A range count less the few events finished past the cursor, not a subquery per queued row: a long
            # queue is read often (stats, metrics).
            past = conn.execute(select(func.count()).select_from(events).where(events.c.pk > last)).scalar_one()
            done = conn.execute(select(func.count()).select_from(
                delivery_done.join(events, events.c.pk == delivery_done.c.event_pk)).where(
                delivery_done.c.provider == provider, delivery_done.c.event_pk > last)).scalar_one()
            queued = past - done
            dead = conn.execute(select(func.count()).select_from(dead_letters).where(
                dead_letters.c.provider == provider, dead_letters.c.requeued_at.is_(None))).scalar_one()
        return {"queued": int(queued), "delivered": int(delivered), "dead_lettered": int(dead)}

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
        """Dead letters an operator re-queued, with their events: delivered again before new events."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(dead_letters.c.pk.label("dl_pk"), *self._columns)
                .select_from(_CLAIM_FROM.join(dead_letters, events.c.pk == dead_letters.c.event_pk))
                .where(dead_letters.c.provider == provider, dead_letters.c.requeued_at.is_not(None), self._may_send)
                .order_by(dead_letters.c.pk).limit(limit)).mappings().all()
            return [Requeued(letter_pk=r["dl_pk"], event=_stored_event(r)) for r in rows]

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
