"""The erasure ledger: what each provider's lane still has to erase for forgotten players, and what it did.

The ingress writes a pending entry per provider in the transaction that erased the player's rows (ingest.py);
the dispatcher settles each once its provider erased what it keeps and asked for its copy to go (a deletion
API's answer, or a manual request the studio sends); `engine-bridge privacy` lists and exports them all.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, update

from .database import Store, now_ms
from .rows import Erasure
from .schema import erasures

PENDING = "pending"


class Ledger:
    """The erasure ledger's entries, per provider."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def pending(self, provider: str, limit: int = 100) -> list[Erasure]:
        """The provider's entries not yet settled, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(erasures).where(erasures.c.provider == provider, erasures.c.status == PENDING)
                                .order_by(erasures.c.pk).limit(limit)).mappings().all()
        return [_erasure(row) for row in rows]

    def settle(self, pk: int, status: str, ids: dict[str, Any], detail: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(erasures).where(erasures.c.pk == pk).values(
                status=status, ids=json.dumps(ids, sort_keys=True), detail=detail, done_at=now_ms()))

    def mark_sent(self, pks: list[int]) -> int:
        """Manual requests the studio sent to their provider: `sent`, at this time; returns how many."""
        with self.engine.begin() as conn:
            return int(conn.execute(update(erasures).where(erasures.c.pk.in_(pks), erasures.c.status == "manual")
                                    .values(status="sent", done_at=now_ms())).rowcount)

    def entries(self, status: str | None = None) -> list[Erasure]:
        """Every entry (or those of one status), oldest first."""
        query = select(erasures).order_by(erasures.c.pk)
        if status is not None:
            query = query.where(erasures.c.status == status)
        with self.engine.connect() as conn:
            return [_erasure(row) for row in conn.execute(query).mappings().all()]


def _erasure(row: Any) -> Erasure:
    values = dict(row)
    values["ids"] = json.loads(values["ids"])
    values["own"] = bool(values["own"])
    return Erasure(**values)
