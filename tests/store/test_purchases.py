"""Purchases in a fleet: two daemons' purchase lanes on one PostgreSQL database never take the same purchase
at once, a purchase taken by a daemon that died is due again when its lease ends, and the first verdict
recorded is the purchase's. A real PostgreSQL server; SQLite (one daemon) keeps taking every due purchase."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from sqlalchemy import insert

from bridge.store import PurchaseResult, Purchases, Store, now_ms, schema

LEASE_S = 30.0


@pytest.fixture
def url(pg_database: str) -> str:
    return pg_database


def open_store(url: str) -> Store:
    store = Store(url, lease_s=LEASE_S)
    store.open()
    return store


def add_purchases(store: Store, count: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(schema.purchases), [
            {"device_id": "d", "purchase_id": f"buy-{n}", "user_id": "p", "store": "apple", "receipt": f"r{n}",
             "price_usd": 0.99, "status": "purchased", "comment": "", "metadata": msgpack.packb({}),
             "created_at": n} for n in range(count)])


def test_two_daemons_take_different_purchases_and_one_left_by_a_dead_daemon_comes_back(url: str) -> None:
    a, b = open_store(url), open_store(url)
    add_purchases(a, 2)
    now = now_ms()
    taken_a = Purchases(a).due_purchases(20, now)
    taken_b = Purchases(b).due_purchases(20, now)
    assert [p.purchase_id for p in taken_a] == ["buy-0"] and [p.purchase_id for p in taken_b] == ["buy-1"]
    assert Purchases(a).due_purchases(20, now) == []  # both leased
    # a "dies" holding buy-0: due again once its lease has run out (the store's clock, moved on here)
    later = now + int(LEASE_S * 1000) + 1
    again = Purchases(b).due_purchases(20, later)
    assert [p.purchase_id for p in again] == ["buy-0"]
    first = Purchases(b).record_purchase(again[0].pk, PurchaseResult(is_valid=True, is_duplicate=False, reason=""))
    # a comes back with staq's answer to its own request, which found the receipt spent: the first verdict stands
    late = Purchases(a).record_purchase(taken_a[0].pk, PurchaseResult(is_valid=True, is_duplicate=True, reason="dup"))
    assert late == first and (late.is_valid, late.is_duplicate) == (True, False)
    a.dispose()
    b.dispose()


def test_one_daemon_on_sqlite_takes_every_due_purchase(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.open()
    add_purchases(store, 3)
    now = now_ms()
    assert [p.purchase_id for p in Purchases(store).due_purchases(20, now)] == ["buy-0", "buy-1", "buy-2"]
    assert len(Purchases(store).due_purchases(20, now)) == 3  # no lease: still due until a verdict or a backoff
    store.dispose()
