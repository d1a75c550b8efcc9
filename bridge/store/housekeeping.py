"""Housekeeping: keep the store small, dropping delivered events first and whole old sessions if need be.

The dispatcher calls it on a timer (on PostgreSQL one daemon of the fleet at a time): delivered events go after
`keep_delivered`; over the cap, delivered events go at once, then the oldest sessions' events, undelivered or
not (counted in `trimmed`). Delivered means past every cursor on SQLite, in no provider's queue on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select

from .database import Store, consented, count_purge, upsert
from .schema import dead_letters, delivery_cursors, delivery_queue, events, meta

ROW_OVERHEAD_BYTES = 80  # pk, integers, record header and the unique index's entry, beside the text columns
_TRIMMED_KEY = "trimmed_events"  # the `meta` row counting trimmed events


class Housekeeping:
    """The store's size, as measured for its cap, and the deletes that keep it under."""

    def __init__(self, store: Store) -> None:
        self.dialect = store.dialect
        self.engine = store.engine
        self.leased = store.leased
        self.consent_required = store.consent_required
        self._held = ~consented(events.c.device_id, events.c.user_id, store.consent_required)

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
            if self.dialect == "sqlite":
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
                free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
                size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
                return int((pages - free) * size)
            return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())

    def purge_delivered(self, providers: list[str], received_before_s: float) -> int:
        """Delete events every provider has finished with, received before a time; dead letters keep theirs."""
        if not providers:
            return 0
        if self.leased:
            with self.engine.begin() as conn:
                return int(conn.execute(delete(events).where(
                    events.c.received_at < int(received_before_s * 1000),
                    events.c.pk.not_in(select(delivery_queue.c.event_pk)),
                    events.c.pk.not_in(select(dead_letters.c.event_pk)), ~self._held)).rowcount)
        with self.engine.begin() as conn:
            low = conn.execute(select(func.min(delivery_cursors.c.last_pk))
                               .where(delivery_cursors.c.provider.in_(providers))).scalar()
            if not low:
                return 0
            return int(conn.execute(delete(events).where(
                events.c.pk <= low, events.c.received_at < int(received_before_s * 1000),
                events.c.pk.not_in(select(dead_letters.c.event_pk)), ~self._held)).rowcount)

    def purge_held(self, received_before_s: float) -> int:
        """Under `consent = "required"`: delete the events of players who have not granted analytics, received
        before a time (the `[privacy] hold_hours` setting); they were never sent."""
        if not self.consent_required:
            return 0
        with self.engine.begin() as conn:
            return int(conn.execute(delete(events).where(
                self._held, events.c.received_at < int(received_before_s * 1000))).rowcount)

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
            if self.leased:
                conn.execute(delete(delivery_queue).where(delivery_queue.c.event_pk.in_(
                    select(events.c.pk).where(events.c.session_id.in_(oldest)))))
            gone = conn.execute(delete(events).where(events.c.session_id.in_(oldest))).rowcount
            count_purge(conn)
            trimmed = conn.execute(select(meta.c.value).where(meta.c.key == _TRIMMED_KEY)).scalar()
            upsert(conn, meta, {"key": _TRIMMED_KEY}, {"value": str(int(trimmed or 0) + gone)})
            return int(gone)

    def trimmed(self) -> int:
        """Events trimmed to keep the store under its cap, ever."""
        with self.engine.connect() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == _TRIMMED_KEY)).scalar()
        return int(value or 0)

