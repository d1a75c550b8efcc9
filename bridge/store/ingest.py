"""The ingress's side of the store: group commit of a `Burst`, and what it reads back at start and on request.

The ingress commits one `Burst` per transaction: every event, session change and device seen since the last
commit, so that many acknowledgements share one commit. Events are deduplicated on (device_id, client_ts,
uid): a resent event repeats both its id and its time, and a key that starts with the time keeps index
inserts near the end of the index instead of scattered over it (random ids alone made commits grow with the
store).

On PostgreSQL the same transaction queues each new event for every registered provider (`delivery_queue`, see
delivery.py): what is acknowledged is due, whichever daemon of the fleet claims it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, text, true, tuple_, update

from .database import ENQUEUE_LOCK, Store, count_purge, upsert
from .rows import OpenSession
from .schema import (
    DENIED,
    GRANTED,
    UNKNOWN,
    client_quota,
    consent,
    dead_letters,
    delivery_cursors,
    delivery_done,
    delivery_queue,
    devices,
    erasures,
    events,
    provider_refs,
    purchases,
    sessions,
)

EventKey = tuple[str, int, str]  # (device_id, client_ts, uid): what makes an event the same event

EVENT_COLUMNS = ("device_id", "uid", "user_id", "session_id", "category", "client_ts", "received_at",
                 "game_build", "fields")

# Compiled once per dialect (placeholders differ); the hot path hands rows straight to executemany.
INSERT_EVENTS_SQL = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({{marks}}) "
                     "ON CONFLICT (device_id, client_ts, uid) DO NOTHING")


@dataclass
class Burst:
    """What one transaction writes: all the events, sessions and devices since the last commit.

    `stamp` is the `received_at` of every event row in it: ms since the epoch, strictly greater than the
    previous burst's, so a burst's rows can be told from older ones. Event rows stay plain tuples in
    EVENT_COLUMNS order: they go to executemany as they are, on the ack path.
    """

    stamp: int
    events: list[tuple[Any, ...]] = field(default_factory=list)  # in EVENT_COLUMNS order
    purchases: list[dict[str, Any]] = field(default_factory=list)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_sessions: list[dict[str, Any]] = field(default_factory=list)
    ended_sessions: list[dict[str, Any]] = field(default_factory=list)
    seen_sessions: dict[str, int] = field(default_factory=dict)  # in a fleet: session id -> its last activity
    # Applied after the events, in request order: {device_id, user_id, analytics, ip_ads} (None: unchanged)
    consents: list[dict[str, Any]] = field(default_factory=list)
    forgets: list[dict[str, Any]] = field(default_factory=list)  # {device_id, user_id, providers}
    clients: dict[tuple[str, int], int] = field(default_factory=dict)  # at a relay: (client key, day) -> events

    def count_client(self, key: str, day: int, events: int) -> None:
        """A relay client's events, added to its day's count in this transaction (its quota's truth)."""
        self.clients[key, day] = self.clients.get((key, day), 0) + events

    def __bool__(self) -> bool:
        return bool(self.events or self.devices or self.new_sessions or self.ended_sessions or self.seen_sessions
                    or self.purchases or self.consents or self.forgets or self.clients)


class Ingest:
    """The ingress's writes (on its own connection) and the reads it makes of the store."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.consent_required = store.consent_required
        self.leased = store.leased
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql = INSERT_EVENTS_SQL.format(marks=",".join([mark] * len(EVENT_COLUMNS)))

    def commit_burst(self, conn: Connection, burst: Burst) -> set[EventKey] | None:
        """Write a burst in one transaction; returns the keys (device_id, client_ts, uid) of the new events, or
        None when every event was new (the usual case, told by the row count alone).

        One executemany of INSERT ... ON CONFLICT DO NOTHING. Only when the row count says some were
        duplicates are this burst's keys read back: a row this burst wrote carries the burst's own
        `received_at` stamp, unique per burst.
        """
        with conn.begin():
            for device in burst.devices.values():
                _upsert_device(conn, device)
            if burst.new_sessions:
                conn.execute(insert(sessions), burst.new_sessions)
            for ended in burst.ended_sessions:  # once: in a fleet, two daemons may both end a session
                conn.execute(update(sessions).where(sessions.c.session_id == ended["session_id"],
                                                    sessions.c.ended_at.is_(None))
                             .values(ended_at=ended["ended_at"], length=ended["length"]))
            if burst.seen_sessions:
                conn.execute(update(sessions).where(sessions.c.session_id == bindparam("sid"))
                             .values(last_seen=bindparam("seen")),
                             [{"sid": sid, "seen": seen} for sid, seen in burst.seen_sessions.items()])
            for purchase in burst.purchases:
                _insert_purchase(conn, purchase)
            for (key, day), count in burst.clients.items():
                upsert(conn, client_quota, {"client_key": key, "day": day},
                       {"events": client_quota.c.events + count}, {"events": count})
            new: set[EventKey] | None = None
            if burst.events:
                floor = _pk_floor(conn) if self.leased else 0
                written = conn.exec_driver_sql(self._insert_sql, burst.events).rowcount
                if written != len(burst.events):
                    new = _written_by(conn, {(row[0], row[5], row[1]) for row in burst.events}, burst.stamp)
                if self.leased and written:
                    _enqueue(conn, floor)
            for change in burst.consents:
                _set_consent(conn, change, self.consent_required, burst.stamp)
            for erasure in burst.forgets:
                _forget(conn, erasure, burst.stamp)
            return new

    def open_sessions(self) -> list[OpenSession]:
        """Sessions not yet ended: the ingress resumes them after a restart."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_OPEN).where(sessions.c.ended_at.is_(None))).mappings().all()
        return [OpenSession(**r) for r in rows]

    def fleet_sessions(self, users: Collection[str]) -> tuple[list[tuple[OpenSession, int | None]], dict[str, int]]:
        """What the fleet's store says of these users now: their open sessions, each with the last activity a
        daemon wrote, and their highest session numbers (another daemon may have opened or ended one)."""
        users = list(users)
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_OPEN, sessions.c.last_seen).where(
                sessions.c.user_id.in_(users), sessions.c.ended_at.is_(None))).mappings().all()
            nums = _session_nums(conn, users)
        return [(OpenSession(**{k: r[k] for k in _OPEN_NAMES}), r["last_seen"]) for r in rows], nums

    def client_events(self, key: str, day: int) -> int:
        """At a relay, the events a client key sent on a UTC day, as the store (every relay of a fleet) counted."""
        with self.engine.connect() as conn:
            count = conn.execute(select(client_quota.c.events).where(client_quota.c.client_key == key,
                                                                     client_quota.c.day == day)).scalar()
        return int(count or 0)

    def device_owner(self, device_id: str) -> str | None:
        """At a relay, the client key that owns a device (the first to say hello as it), or None."""
        with self.engine.connect() as conn:
            owner: str | None = conn.execute(select(devices.c.client_key).where(devices.c.device_id == device_id)
                                             ).scalar()
        return owner

    def session(self, session_id: str) -> dict[str, Any] | None:
        """A stored session by its id (a client resending a session request names it), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions.c.session_id, sessions.c.device_id, sessions.c.user_id,
                                      sessions.c.session_num, sessions.c.started_at, sessions.c.ended_at,
                                      sessions.c.length).where(sessions.c.session_id == session_id)).mappings().first()
        return dict(row) if row is not None else None

    def last_session_nums(self) -> dict[str, int]:
        """Per user, the highest session number so far, so numbering continues after a restart."""
        with self.engine.connect() as conn:
            return _session_nums(conn)

    def queued_for_device(self, device_id: str) -> int:
        """The device's events some provider has yet to finish with (the `flush` reply)."""
        with self.engine.connect() as conn:
            if self.leased:
                return int(conn.execute(select(func.count(func.distinct(delivery_queue.c.event_pk)))
                                        .where(delivery_queue.c.device_id == device_id)).scalar_one())
            low = conn.execute(select(func.min(delivery_cursors.c.last_pk))).scalar()
            if low is None:
                return 0
            return int(conn.execute(select(func.count()).select_from(events).where(
                events.c.device_id == device_id, events.c.pk > low)).scalar_one())


    def consent(self, device_id: str, user_id: str) -> tuple[str, str]:
        """A player's (analytics, ip_ads) consent as stored ("unknown" without a row)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(consent.c.analytics, consent.c.ip_ads).where(
                consent.c.device_id == device_id, consent.c.user_id == user_id)).first()
        return (row[0], row[1]) if row is not None else (UNKNOWN, UNKNOWN)

    def device_user(self, device_id: str) -> str | None:
        """A device's own (hello) player, or None for a device never seen."""
        with self.engine.connect() as conn:
            user: str | None = conn.execute(select(devices.c.user_id).where(devices.c.device_id == device_id)).scalar()
        return user

    def denied_players(self) -> set[tuple[str, str]]:
        """(device_id, user_id) of every player who denied analytics: their events are discarded on arrival."""
        with self.engine.connect() as conn:
            return {(d, u) for d, u in conn.execute(select(consent.c.device_id, consent.c.user_id)
                                                    .where(consent.c.analytics == DENIED))}


_OPEN = (sessions.c.session_id, sessions.c.device_id, sessions.c.user_id, sessions.c.session_num,
         sessions.c.started_at, sessions.c.user_ip)
_OPEN_NAMES = tuple(column.name for column in _OPEN)


def _session_nums(conn: Connection, users: list[str] | None = None) -> dict[str, int]:
    """Per user (of these, or every one), the highest session number so far."""
    query = select(sessions.c.user_id, func.max(sessions.c.session_num)).group_by(sessions.c.user_id)
    if users is not None:
        query = query.where(sessions.c.user_id.in_(users))
    return {user: int(num) for user, num in conn.execute(query).all()}


def _player(table: Any, device_id: str, user_id: str) -> Any:
    return and_(table.c.device_id == device_id, table.c.user_id == user_id)


def _set_consent(conn: Connection, change: dict[str, Any], required: bool, now: int) -> None:
    """A player's new consent. Denied analytics: every event of theirs goes (nothing undelivered is left to
    send). Granted under "required": their held events are moved past every delivery cursor, in their order,
    so that each lane claims them as new. Denied ip_ads: their sessions' IP addresses go."""
    device_id, user_id = change["device_id"], change["user_id"]
    before = conn.execute(select(consent.c.analytics, consent.c.ip_ads)
                          .where(_player(consent, device_id, user_id))).first()
    was_analytics, was_ip_ads = (before[0], before[1]) if before is not None else (UNKNOWN, UNKNOWN)
    analytics = change["analytics"] or was_analytics
    ip_ads = change["ip_ads"] or was_ip_ads
    upsert(conn, consent, {"device_id": device_id, "user_id": user_id},
           {"analytics": analytics, "ip_ads": ip_ads, "updated_at": now})
    if analytics == DENIED:
        _purge_events(conn, device_id, user_id)
    elif analytics == GRANTED and was_analytics != GRANTED and required:
        _resequence(conn, device_id, user_id)
    if ip_ads == DENIED:
        conn.execute(update(sessions).where(_player(sessions, device_id, user_id)).values(user_ip=None))
        count_purge(conn)


def _pk_floor(conn: Connection) -> int:
    """A pk below every pk this transaction's insert takes (the sequence only grows), so that its rows are found
    through the pk index. The shared side of ENQUEUE_LOCK: a provider registering waits for this burst."""
    conn.execute(select(func.pg_advisory_xact_lock_shared(ENQUEUE_LOCK)))
    return int(conn.exec_driver_sql("SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
                                    "FROM events_pk_seq").scalar_one())


def _enqueue(conn: Connection, floor: int) -> None:
    """PostgreSQL: the events this transaction inserted (past `floor`, and theirs by `xmin`), due to every
    registered provider: a row each in the queue."""
    conn.execute(insert(delivery_queue).from_select(
        ["provider", "event_pk", "device_id", "user_id"],
        select(delivery_cursors.c.provider, events.c.pk, events.c.device_id, events.c.user_id)
        .select_from(delivery_cursors.join(events, true()))
        .where(events.c.pk > floor, text("events.xmin = pg_current_xact_id()::xid"))))


def _purge_events(conn: Connection, device_id: str, user_id: str) -> None:
    """Every event of a player, with what delivery kept of them."""
    pks = select(events.c.pk).where(_player(events, device_id, user_id)).scalar_subquery()
    for table, column in ((dead_letters, dead_letters.c.event_pk), (delivery_done, delivery_done.c.event_pk),
                          (delivery_queue, delivery_queue.c.event_pk), (provider_refs, provider_refs.c.event_pk)):
        conn.execute(delete(table).where(column.in_(pks)))
    conn.execute(delete(events).where(_player(events, device_id, user_id)))
    count_purge(conn)


def _resequence(conn: Connection, device_id: str, user_id: str) -> None:
    """A player's events stored again, in their order, under new pks past every cursor (the ingress is the one
    writer of events, so no pk can be taken below them meanwhile). PostgreSQL has no cursor: the player's queued
    rows become claimable as they are."""
    if conn.dialect.name == "postgresql":
        return
    rows = conn.execute(select(*(events.c[name] for name in EVENT_COLUMNS))
                        .where(_player(events, device_id, user_id)).order_by(events.c.pk)).all()
    if rows:
        _purge_events(conn, device_id, user_id)
        # executemany inserts in list order (SQLite row by row, psycopg in a pipeline): the pks follow it
        conn.execute(insert(events), [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in rows])


def _forget(conn: Connection, erasure: dict[str, Any], now: int) -> None:
    """Every local trace of a player: events, sessions, verified purchases (one awaiting its verdict goes once
    the verdict went out: the player may be owed the item), consent, and the device itself when the player is
    its own (hello) player; then an entry per provider in the erasure ledger, pending until that
    provider's lane erased what it keeps (tokens, ids, topics) and asked for the provider's copy to go."""
    device_id, user_id = erasure["device_id"], erasure["user_id"]
    own = conn.execute(select(devices.c.user_id).where(devices.c.device_id == device_id)).scalar() == user_id
    _purge_events(conn, device_id, user_id)
    conn.execute(delete(sessions).where(_player(sessions, device_id, user_id)))
    conn.execute(delete(purchases).where(_player(purchases, device_id, user_id), purchases.c.verified_at.is_not(None)))
    conn.execute(update(purchases).where(_player(purchases, device_id, user_id)).values(erase_after_verdict=True))
    conn.execute(delete(consent).where(_player(consent, device_id, user_id)))
    if own:
        conn.execute(delete(devices).where(devices.c.device_id == device_id))
    for provider in erasure["providers"]:
        conn.execute(insert(erasures).values(provider=provider, device_id=device_id, user_id=user_id, own=own,
                                             requested_at=now, status="pending", ids="{}", detail=""))


def _written_by(conn: Connection, keys: set[EventKey], stamp: int) -> set[EventKey]:
    """Which of these keys this burst inserted (the rest were already stored)."""
    by_device: dict[str, list[tuple[int, str]]] = {}
    for device_id, client_ts, uid in keys:
        by_device.setdefault(device_id, []).append((client_ts, uid))
    new: set[EventKey] = set()
    for device_id, pairs in by_device.items():
        for start in range(0, len(pairs), 500):
            rows = conn.execute(select(events.c.client_ts, events.c.uid).where(
                events.c.device_id == device_id, tuple_(events.c.client_ts, events.c.uid).in_(
                    pairs[start:start + 500]), events.c.received_at == stamp))
            new.update((device_id, client_ts, uid) for client_ts, uid in rows)
    return new


def _insert_purchase(conn: Connection, purchase: dict[str, Any]) -> None:
    """A purchase resent after a lost reply is the same purchase: stored once."""
    exists = conn.execute(select(purchases.c.pk).where(
        purchases.c.device_id == purchase["device_id"], purchases.c.purchase_id == purchase["purchase_id"])).first()
    if exists is None:
        conn.execute(insert(purchases).values(purchase))


def _upsert_device(conn: Connection, device: dict[str, Any]) -> None:
    """A device's row follows its latest hello; `first_seen` is its first."""
    values = {k: v for k, v in device.items() if k not in ("device_id", "first_seen")}
    upsert(conn, devices, {"device_id": device["device_id"]}, values, {"first_seen": device["first_seen"]})
