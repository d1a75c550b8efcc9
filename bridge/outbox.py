"""The providers' view of the store: what is due, what was delivered, what was dead-lettered.

Each provider has a cursor: the highest event pk it has finished with (delivered or dead-lettered). It
claims the next events past its cursor in pk order, so delivery is oldest first, and moves the cursor only
after the provider answered. A crash between a send and the cursor's move repeats that batch, never skips it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

import msgpack
from sqlalchemy import ColumnElement, Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from .store.database import Store, now_ms
from .store.schema import (
    dead_letters,
    delivery_cursors,
    devices,
    events,
    meta,
    provider_refs,
    provider_state,
    purchases,
    sessions,
)

ROW_OVERHEAD_BYTES = 80  # pk, integers, record header and the unique index's entry, beside the text columns


@dataclass(slots=True)
class StoredEvent:
    """An event as a provider sees it: the event, its session and the device that sent it."""

    pk: int
    device_id: str
    uid: str
    user_id: str
    session_id: str | None
    category: str
    client_ts: int
    received_at: int
    game_build: str
    fields: dict[str, Any]
    session_num: int | None
    user_ip: str | None
    platform: str | None
    os_version: str | None
    device: str | None
    manufacturer: str | None
    engine_version: str | None


STORED_EVENT_FIELDS = tuple(f.name for f in dataclass_fields(StoredEvent))


@dataclass(slots=True)
class Purchase:
    """A purchase to verify, with the device context a provider needs to authorize it. `sent_at` is set once
    a verification request went out: a retry may then find the receipt spent by that very request."""

    pk: int
    device_id: str
    purchase_id: str
    user_id: str
    session_id: str | None
    store: str
    receipt: str
    signature: str | None
    price_usd: float
    status: str
    comment: str
    metadata: dict[str, Any]
    device: dict[str, Any]
    sent_at: int | None
    failures: int


@dataclass(slots=True)
class PurchaseResult:
    is_valid: bool
    is_duplicate: bool
    reason: str

    def to_wire(self) -> dict[str, Any]:
        return {"is_valid": self.is_valid, "is_duplicate": self.is_duplicate, "reason": self.reason}


@dataclass(slots=True)
class DeadLetter:
    pk: int
    provider: str
    event_pk: int
    code: str
    reason: str
    created_at: int
    requeued_at: int | None
    category: str | None
    uid: str | None


# An event with its session's number and IP and its device's annotations: what a provider needs of it.
_CLAIM_COLUMNS = (*events.c, sessions.c.session_num, sessions.c.user_ip, devices.c.platform, devices.c.os_version,
                  devices.c.device, devices.c.manufacturer, devices.c.engine_version)
_CLAIM_FROM = (events.outerjoin(sessions, sessions.c.session_id == events.c.session_id)
               .outerjoin(devices, devices.c.device_id == events.c.device_id))


def _stored_event(row: RowMapping) -> StoredEvent:
    """A claimed row, by column name (`fields` is msgpack in the store)."""
    values = {name: row[name] for name in STORED_EVENT_FIELDS}
    values["fields"] = msgpack.unpackb(values["fields"])
    return StoredEvent(**values)


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

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

    def claim(self, after_pk: int, limit: int) -> list[StoredEvent]:
        """The next events past a cursor, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_CLAIM_COLUMNS).select_from(_CLAIM_FROM).where(events.c.pk > after_pk)
                                .order_by(events.c.pk).limit(limit)).mappings().all()
        return [_stored_event(r) for r in rows]

    def finish(self, provider: str, up_to_pk: int, delivered: int,
               dead: list[tuple[int, str, str]]) -> None:
        """Move the cursor past a finished batch and record its dead letters, in one transaction."""
        with self.engine.begin() as conn:
            if dead:
                now = now_ms()
                conn.execute(insert(dead_letters), [
                    {"provider": provider, "event_pk": pk, "code": code, "reason": reason, "created_at": now}
                    for pk, code, reason in dead])
            conn.execute(update(delivery_cursors).where(delivery_cursors.c.provider == provider).values(
                last_pk=func.max(delivery_cursors.c.last_pk, up_to_pk) if self.store.dialect == "sqlite"
                else func.greatest(delivery_cursors.c.last_pk, up_to_pk),
                delivered=delivery_cursors.c.delivered + delivered, updated_at=now_ms()))

    def figures(self, provider: str) -> dict[str, int]:
        """Queued (past the cursor), delivered and dead-lettered counts of one provider."""
        with self.engine.connect() as conn:
            row = conn.execute(select(delivery_cursors.c.last_pk, delivery_cursors.c.delivered)
                               .where(delivery_cursors.c.provider == provider)).first()
            last, delivered = (row[0], row[1]) if row else (0, 0)
            queued = conn.execute(select(func.count()).select_from(events).where(events.c.pk > last)).scalar_one()
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
            return [DeadLetter(**dict(r._mapping)) for r in conn.execute(query)]

    def take_requeued(self, provider: str, limit: int) -> list[tuple[int, StoredEvent]]:
        """Dead letters an operator re-queued, with their events: delivered again before new events."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(dead_letters.c.pk.label("dl_pk"), *_CLAIM_COLUMNS)
                .select_from(_CLAIM_FROM.join(dead_letters, events.c.pk == dead_letters.c.event_pk))
                .where(dead_letters.c.provider == provider, dead_letters.c.requeued_at.is_not(None))
                .order_by(dead_letters.c.pk).limit(limit)).mappings().all()
            return [(r["dl_pk"], _stored_event(r)) for r in rows]

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

    # --- purchases ----------------------------------------------------------------------------------

    def due_purchases(self, limit: int, now: int) -> list[Purchase]:
        """Purchases without a verdict whose next try is due, with their device's row: those never refused
        first, then oldest first, so that a purchase the provider keeps failing never holds up a new one."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(purchases, devices).select_from(
                purchases.outerjoin(devices, devices.c.device_id == purchases.c.device_id))
                .where(purchases.c.verified_at.is_(None),
                       or_(purchases.c.next_try_at.is_(None), purchases.c.next_try_at <= now))
                .order_by(purchases.c.failures, purchases.c.pk).limit(limit)).mappings().all()
        device_columns = [c.name for c in devices.c]
        return [Purchase(r["pk"], r["device_id"], r["purchase_id"], r["user_id"], r["session_id"], r["store"],
                         r["receipt"], r["signature"], r["price_usd"], r["status"], r["comment"],
                         msgpack.unpackb(r["metadata"]), {c: r[devices.c[c]] for c in device_columns},
                         r["sent_at"], r["failures"])
                for r in rows]

    def purchase_sent(self, pk: int) -> None:
        """Committed before a verification request goes out, so that a retry after a lost answer (or a
        crash) knows the provider may already have spent the receipt for this very purchase."""
        with self.engine.begin() as conn:
            conn.execute(update(purchases).where(purchases.c.pk == pk).values(sent_at=now_ms()))

    def retry_purchase_at(self, pk: int, failures: int, at: int) -> None:
        """A try ended without a verdict: this purchase (only) waits until `at`."""
        with self.engine.begin() as conn:
            conn.execute(update(purchases).where(purchases.c.pk == pk).values(failures=failures, next_try_at=at))

    def receipt_granted(self, purchase: Purchase) -> bool:
        """Whether another purchase already got this receipt's grant (valid, not a duplicate)."""
        with self.engine.connect() as conn:
            return conn.execute(select(purchases.c.pk).where(
                purchases.c.pk != purchase.pk, purchases.c.store == purchase.store,
                purchases.c.receipt == purchase.receipt, purchases.c.is_valid.is_(True),
                purchases.c.is_duplicate.is_(False)).limit(1)).first() is not None

    def record_purchase(self, pk: int, result: PurchaseResult) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(purchases).where(purchases.c.pk == pk).values(
                verified_at=now_ms(), is_valid=result.is_valid, is_duplicate=result.is_duplicate,
                reason=result.reason))

    def purchase_result(self, device_id: str, purchase_id: str) -> PurchaseResult | None:
        """The verdict on a purchase if it has one (a client resending a purchase it already sent)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(purchases.c.is_valid, purchases.c.is_duplicate, purchases.c.reason).where(
                purchases.c.device_id == device_id, purchases.c.purchase_id == purchase_id,
                purchases.c.verified_at.is_not(None))).first()
        return None if row is None else PurchaseResult(bool(row[0]), bool(row[1]), row[2] or "")

    def recent_results(self, device_id: str, limit: int) -> dict[str, dict[str, Any]]:
        """The device's latest verdicts by purchase id: the values of its `purchase/<device_id>` topic."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(purchases).where(
                purchases.c.device_id == device_id, purchases.c.verified_at.is_not(None))
                .order_by(purchases.c.verified_at.desc()).limit(limit)).mappings().all()
        return {r["purchase_id"]: {"is_valid": bool(r["is_valid"]), "is_duplicate": bool(r["is_duplicate"]),
                                   "reason": r["reason"] or "", "store": r["store"], "verified_at": r["verified_at"]}
                for r in rows}

    def save_refs(self, provider: str, refs: list[tuple[int, str]]) -> None:
        """A provider's own ids for our events (staq's event ids), kept for tracing."""
        if not refs:
            return
        with self.engine.begin() as conn:
            conn.execute(delete(provider_refs).where(provider_refs.c.provider == provider,
                                                     provider_refs.c.event_pk.in_([pk for pk, _ in refs])))
            conn.execute(insert(provider_refs), [{"provider": provider, "event_pk": pk, "ref": ref}
                                                 for pk, ref in refs])

    # --- provider state -----------------------------------------------------------------------------

    def state(self, provider: str, key: str) -> Any:
        with self.engine.connect() as conn:
            value = conn.execute(select(provider_state.c.value).where(
                provider_state.c.provider == provider, provider_state.c.key == key)).scalar()
        return None if value is None else json.loads(value)

    def set_state(self, provider: str, key: str, value: Any) -> None:
        text = json.dumps(value)
        with self.engine.begin() as conn:
            changed = conn.execute(update(provider_state).where(
                provider_state.c.provider == provider, provider_state.c.key == key).values(
                value=text, updated_at=now_ms())).rowcount
            if not changed:
                conn.execute(insert(provider_state).values(provider=provider, key=key, value=text,
                                                           updated_at=now_ms()))

    def active_players(self, seen_since_s: float) -> list[tuple[str, str, bool]]:
        """Players whose provider sessions are kept fresh, as (device_id, user_id, own): the user of each device
        that said hello since a time (own: True), and the users a device named in sessions since then or
        still open (a dedicated server's players; own when that user is the device's hello user)."""
        since = int(seen_since_s * 1000)
        with self.engine.connect() as conn:
            own = conn.execute(select(devices.c.device_id, devices.c.user_id)
                               .where(devices.c.last_seen >= since)).tuples().all()
            named = conn.execute(
                select(sessions.c.device_id, sessions.c.user_id, sessions.c.user_id == devices.c.user_id)
                .select_from(sessions.outerjoin(devices, devices.c.device_id == sessions.c.device_id)).distinct()
                .where(or_(sessions.c.started_at >= since, sessions.c.ended_at.is_(None)))).tuples().all()
        players = {(device_id, user_id): True for device_id, user_id in own}
        for device_id, user_id, is_own in named:
            players.setdefault((device_id, user_id), bool(is_own))
        return [(device_id, user_id, is_own) for (device_id, user_id), is_own in sorted(players.items())]

    def latest_device(self) -> dict[str, Any] | None:
        """The device that said hello last: whose user remote configs are asked for."""
        with self.engine.connect() as conn:
            row = conn.execute(select(devices).order_by(devices.c.last_seen.desc()).limit(1)).first()
        return dict(row._mapping) if row else None

    # --- the store cap ------------------------------------------------------------------------------

    def live_event_bytes(self) -> tuple[int, float]:
        """Events in the store and their estimated bytes each (a sample of the newest, plus row overhead).

        Deleted rows leave partly filled pages behind, so the file's size lags what it holds: the cap is
        measured on this estimate of the live data instead.
        """
        sample = select(events).order_by(events.c.pk.desc()).limit(1000).subquery()
        width = (func.length(sample.c.fields) + func.length(sample.c.uid) + func.length(sample.c.user_id)
                 + func.length(sample.c.device_id) + func.length(sample.c.category) + func.length(sample.c.game_build)
                 + func.coalesce(func.length(sample.c.session_id), 0))
        with self.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(events)).scalar_one()
            avg = conn.execute(select(func.avg(width))).scalar() or 0
        return int(rows), float(avg) + ROW_OVERHEAD_BYTES

    def size_bytes(self) -> int:
        """Bytes the store's file uses (SQLite: pages in use; PostgreSQL: the database size): a cheap first look."""
        with self.engine.connect() as conn:
            if self.store.dialect == "sqlite":
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
                free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
                size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
                return int((pages - free) * size)
            return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())

    def purge_delivered(self, providers: list[str], received_before_s: float) -> int:
        """Delete events every provider has finished with, received before a time; dead letters keep theirs."""
        if not providers:
            return 0
        with self.engine.begin() as conn:
            low = conn.execute(select(func.min(delivery_cursors.c.last_pk))
                               .where(delivery_cursors.c.provider.in_(providers))).scalar()
            if not low:
                return 0
            return int(conn.execute(delete(events).where(
                events.c.pk <= low, events.c.received_at < int(received_before_s * 1000),
                events.c.pk.not_in(select(dead_letters.c.event_pk)))).rowcount)

    def trim_oldest_sessions(self, sessions_per_step: int = 1) -> int:
        """Delete the events of the oldest sessions that still hold events; returns how many events went.

        The GameAnalytics recommendation for a full offline cache: whole old sessions go, newer play stays.
        """
        with self.engine.begin() as conn:
            oldest = conn.execute(select(events.c.session_id).where(events.c.session_id.is_not(None))
                                  .group_by(events.c.session_id).order_by(func.min(events.c.pk))
                                  .limit(sessions_per_step)).scalars().all()
            if not oldest:
                return 0
            gone = conn.execute(delete(events).where(events.c.session_id.in_(oldest))).rowcount
            self._add_meta_counter(conn, "trimmed_events", gone)
            return int(gone)

    def trimmed(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == "trimmed_events")).scalar()
        return int(value or 0)

    @staticmethod
    def _add_meta_counter(conn: Connection, key: str, amount: int) -> None:
        current = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        if current is None:
            conn.execute(insert(meta).values(key=key, value=str(amount)))
        else:
            conn.execute(update(meta).where(meta.c.key == key).values(value=str(int(current) + amount)))
