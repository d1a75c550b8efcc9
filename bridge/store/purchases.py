"""Purchases to verify: which are due, what went out, each one's backoff, and the verdicts kept.

The ingress stores a purchase (in its burst); the purchase lane verifies it through a provider and records
the verdict here, which is what a client resending the purchase, or coming back later, is told.

In a fleet (PostgreSQL) every daemon's purchase lane reads the same table, so a due purchase is taken, one at
a time, with `FOR UPDATE SKIP LOCKED` and hidden from the others for a lease (`next_try_at` moved on: a
visibility timeout): one receipt is not sent for verification by two daemons at once, and a daemon that dies
holding one leaves it due again when the lease ends. The first verdict recorded is the purchase's.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import msgpack
from sqlalchemy import ColumnElement, Row, delete, or_, select, update

from .database import Store, now_ms
from .rows import Purchase, PurchaseResult
from .schema import devices, purchases

# Purchase fields read as they are stored: the rest are msgpack (`metadata`) or the device's row (`device`).
_PLAIN_FIELDS = tuple(f.name for f in fields(Purchase) if f.name not in ("metadata", "device"))


_VERDICT = (purchases.c.is_valid, purchases.c.is_duplicate, purchases.c.reason)


def _verdict(row: Row[Any, Any, Any]) -> PurchaseResult:
    return PurchaseResult(is_valid=bool(row.is_valid), is_duplicate=bool(row.is_duplicate), reason=row.reason or "")


class Purchases:
    """The purchases table, as the purchase lane, the verifying provider and the ingress use it."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.leased = store.leased
        self.lease_ms = int(store.lease_s * 1000)

    def due_purchases(self, limit: int, now: int) -> list[Purchase]:
        """Purchases without a verdict whose next try is due, with their device's row: those never refused
        first, then oldest first, so that a purchase the provider keeps failing never holds up a new one. In
        a fleet, one purchase taken under a lease (see the module's docstring)."""
        due = [purchases.c.verified_at.is_(None),
               or_(purchases.c.next_try_at.is_(None), purchases.c.next_try_at <= now)]
        order = (purchases.c.failures, purchases.c.pk)
        with self.engine.begin() as conn:
            which: list[ColumnElement[bool]] = due
            if self.leased:
                taken = select(purchases.c.pk).where(*due).order_by(*order).limit(1).with_for_update(skip_locked=True)
                pks = conn.execute(update(purchases).where(purchases.c.pk.in_(taken))
                                   .values(next_try_at=now + self.lease_ms).returning(purchases.c.pk)).scalars().all()
                which = [purchases.c.pk.in_(pks)]
            rows = conn.execute(select(purchases, devices).select_from(
                purchases.outerjoin(devices, devices.c.device_id == purchases.c.device_id))
                .where(*which).order_by(*order).limit(limit)).mappings().all()
        return [Purchase(**{name: r[purchases.c[name]] for name in _PLAIN_FIELDS},
                         metadata=msgpack.unpackb(r[purchases.c["metadata"]]),
                         device={c.name: r[c] for c in devices.c})
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

    def record_purchase(self, pk: int, result: PurchaseResult) -> PurchaseResult:
        """Keep the verdict, unless the purchase has one already (a daemon of the fleet that stalled past its
        lease, verifying it again): returns the purchase's verdict, the first recorded."""
        with self.engine.begin() as conn:
            if conn.execute(update(purchases).where(purchases.c.pk == pk, purchases.c.verified_at.is_(None)).values(
                    verified_at=now_ms(), is_valid=result.is_valid, is_duplicate=result.is_duplicate,
                    reason=result.reason)).rowcount:
                return result
            return _verdict(conn.execute(select(*_VERDICT).where(purchases.c.pk == pk)).one())

    def erase_if_forgotten(self, pk: int) -> bool:
        """A purchase whose player was forgotten while it awaited its verdict goes, now that the verdict went
        out; returns whether it did."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(purchases).where(
                purchases.c.pk == pk, purchases.c.erase_after_verdict.is_(True))).rowcount)

    def purchase_result(self, device_id: str, purchase_id: str) -> PurchaseResult | None:
        """The verdict on a purchase if it has one (a client resending a purchase it already sent)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(*_VERDICT).where(
                purchases.c.device_id == device_id, purchases.c.purchase_id == purchase_id,
                purchases.c.verified_at.is_not(None))).first()
        return None if row is None else _verdict(row)

    def recent_results(self, device_id: str, limit: int) -> dict[str, dict[str, Any]]:
        """The device's latest verdicts by purchase id: the values of its `purchase/<device_id>` topic."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(purchases).where(
                purchases.c.device_id == device_id, purchases.c.verified_at.is_not(None))
                .order_by(purchases.c.verified_at.desc()).limit(limit)).mappings().all()
        return {r["purchase_id"]: {"is_valid": bool(r["is_valid"]), "is_duplicate": bool(r["is_duplicate"]),
                                   "reason": r["reason"] or "", "store": r["store"], "verified_at": r["verified_at"]}
                for r in rows}
