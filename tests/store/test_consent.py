"""Consent and erasure in the store, on SQLite and PostgreSQL: a grant moves a held player's events past every
cursor in their order, a denial purges them with what delivery kept of them, a forget leaves nothing of the
player but the ledger, and a lane's claim sees only what consent lets out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from sqlalchemy import select

from bridge.store import Burst, Delivery, Ingest, Ledger, Store, schema
from bridge.store.ingest import EVENT_COLUMNS
from tests.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    server = None
    url = f"sqlite:///{tmp_path / 's.db'}"
    if request.param == "postgresql":
        server = PostgresServer().start()
        url = server.url
    store = Store(url, consent_required=True)
    store.open()
    yield store
    store.dispose()
    if server is not None:
        server.stop()


def row(device_id: str, user_id: str, uid: str, ts: int, stamp: int) -> tuple[Any, ...]:
    values = {"device_id": device_id, "uid": uid, "user_id": user_id, "session_id": None, "category": "design",
              "client_ts": ts, "received_at": stamp, "game_build": "1", "fields": msgpack.packb({"event_id": uid})}
    return tuple(values[name] for name in EVENT_COLUMNS)


def commit(store: Store, stamp: int, events: list[tuple[Any, ...]] | None = None, **changes: Any) -> None:
    """One burst, as the ingress commits it: events first, then the consents and forgets."""
    burst = Burst(stamp, events=events or [], **changes)
    with store.writer_connection() as conn:
        Ingest(store).commit_burst(conn, burst)


def uids(rows: list[Any]) -> list[str]:
    return [r.uid for r in rows]


def consent(user_id: str, analytics: str | None = None, ip_ads: str | None = None) -> dict[str, Any]:
    return {"device_id": "srv", "user_id": user_id, "analytics": analytics, "ip_ads": ip_ads}


def test_a_grant_moves_held_events_past_the_cursor_in_their_order(store: Store) -> None:
    claims = Delivery(store).claims("ga")
    claims.start()
    commit(store, 1, [row("srv", "held", f"h{i}", 1000 - i, 1) for i in range(300)] + [row("srv", "other", "o0", 1, 1)],
           consents=[consent("other", "granted")])
    claimed = claims.claim(100)
    assert uids(claimed) == ["o0"]  # the held player's events are not claimed
    claims.finish([claimed[0].pk], 1, [])
    commit(store, 2, [row("srv", "held", "h300", 2000, 2)], consents=[consent("held", "granted")])
    after = claims.claim(1000)
    assert uids(after) == [f"h{i}" for i in range(301)]  # stored order, not client time; the later one last
    if not store.leased:  # SQLite: stored again past the cursor (PostgreSQL's queue rows just became claimable)
        assert all(ev.pk > claimed[-1].pk for ev in after)


def test_a_denial_purges_the_players_events_and_what_delivery_kept_of_them(store: Store) -> None:
    delivery = Delivery(store)
    commit(store, 1, [row("srv", "quits", f"q{i}", i, 1) for i in range(4)], consents=[consent("quits", "granted")])
    claimed = delivery.claim("ga", 0, 100)
    delivery.finish("ga", 0, 0, [(claimed[0].pk, "invalid", "a rule")], done_past=(claimed[1].pk,))
    commit(store, 2, consents=[consent("quits", "denied")])
    with store.engine.connect() as conn:
        for table in (schema.events, schema.dead_letters, schema.delivery_done):
            assert conn.execute(select(table)).all() == [], table.name
    assert delivery.recheck(claimed) == []
    assert Ingest(store).denied_players() == {("srv", "quits")}


def test_forget_leaves_only_the_ledger(store: Store) -> None:
    commit(store, 1, [row("srv", "gone", "g0", 1, 1)], consents=[consent("gone", "granted", "denied")],
           devices={"srv": {"device_id": "srv", "user_id": "srv", "engine": "custom", "binding": "b",
                            "binding_version": "1", "game_build": "1", "first_seen": 1, "last_seen": 1}},
           new_sessions=[{"session_id": "s-1", "device_id": "srv", "user_id": "gone", "session_num": 1,
                          "user_ip": "203.0.113.7", "started_at": 1}])
    commit(store, 2, forgets=[{"device_id": "srv", "user_id": "gone", "providers": ("ga", "staq")}])
    with store.engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            rows = conn.execute(select(table)).mappings().all()
            named = [r for r in rows if any(v == "gone" for v in r.values())]
            assert (table.name, len(named)) == (table.name, 2 if table.name == "erasures" else 0)
        assert conn.execute(select(schema.devices.c.device_id)).scalars().all() == ["srv"]  # not its own player
    assert [(e.provider, e.status, e.own) for e in Ledger(store).pending("ga")] == [("ga", "pending", False)]


def test_consent_changes_are_read_in_the_order_they_were_made(store: Store) -> None:
    """What an edge tells its relay: each player's consent after a point (time, device, user), in order."""
    from bridge.store.state import ProviderState

    commit(store, 5, consents=[consent("b", "granted"), consent("a", None, "denied")])
    commit(store, 7, consents=[consent("b", "denied")])
    state = ProviderState(store)
    assert state.consents_after((0, "", "")) == [(5, "srv", "a", "unknown", "denied"), (7, "srv", "b", "denied", "unknown")]
    assert state.consents_after((5, "srv", "a")) == [(7, "srv", "b", "denied", "unknown")]
    assert state.consents_after((7, "srv", "b")) == []


def test_a_send_sees_what_another_daemon_purged_or_withheld_since_the_claim(store: Store) -> None:
    """`recheck` reads a claim's events again once the store counted a purge since they were read, whoever
    counted it: here another daemon's store, as in a fleet (and a second process on one SQLite file)."""
    commit(store, 1, [row("srv", "a", f"a{i}", i, 1) for i in range(3)] + [row("srv", "b", "b0", 9, 1)],
           consents=[consent("a", "granted", "granted"), consent("b", "granted", "granted")])
    delivery = Delivery(store)
    claims = delivery.claims("ga")
    claims.start()
    claimed = claims.claim(100)
    assert delivery.recheck(claimed) == claimed and all(ev.ip_ads for ev in claimed)
    other = Store(store.engine.url.render_as_string(hide_password=False), consent_required=True)
    other.open()
    try:
        commit(other, 2, consents=[consent("b", "denied"), consent("a", None, "denied")])
    finally:
        other.dispose()
    now = delivery.recheck(claimed)
    assert uids(now) == ["a0", "a1", "a2"]
    assert not any(ev.ip_ads for ev in now)
    assert delivery.recheck(now) == now  # read again, and nothing purged since
