"""The schema: a new store records its version, a newer one is refused, and a store of every older version is
upgraded in place, its rows kept; event pks are never reused."""

from __future__ import annotations

import sqlite3
from typing import Any
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from sqlalchemy import func, inspect, select, text, update

from bridge.store import Ingest, Purchases, Store, StoreError, schema
from bridge import protocol
from bridge.store.schema import (
    PLAYER_DEVICE, SCHEMA_VERSION, delivery_done, delivery_queue, devices, events, meta, sessions,
)
from tests.harness import Client, Daemon, make_event
from tests.postgres import PostgresServer


def test_new_store_records_its_schema_version(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    assert store.upgrade() == SCHEMA_VERSION
    assert store.upgrade() == SCHEMA_VERSION  # opening again changes nothing
    with store.engine.connect() as conn:
        assert conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar() == str(SCHEMA_VERSION)
    store.dispose()


def test_a_newer_schema_is_refused_not_damaged(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    with store.engine.begin() as conn:
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="99"))
    with pytest.raises(StoreError, match="schema version 99"):
        store.upgrade()
    store.dispose()


def test_version_1_store_is_upgraded_to_purchases(tmp_path: Path) -> None:
    """A store written by the first release (schema 1) gains the purchase tables and keeps its events."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE purchases")
        conn.exec_driver_sql("DROP TABLE provider_refs")
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="1"))
        conn.execute(events.insert().values(device_id="d", uid="u", user_id="d", category="design", client_ts=0,
                                            received_at=0, game_build="1", fields=b"\x80"))
    assert store.upgrade() == SCHEMA_VERSION
    tables = set(inspect(store.engine).get_table_names())
    assert {"purchases", "provider_refs"} <= tables
    with store.engine.connect() as conn:
        assert conn.execute(select(events.c.uid)).scalars().all() == ["u"]
    store.dispose()


def test_version_2_events_are_rekeyed_keeping_rows_and_pks(tmp_path: Path) -> None:
    """Schema 2 deduplicated on (device_id, uid); schema 3 on (device_id, client_ts, uid), rows and pks kept."""
    path = tmp_path / "s.db"
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    store.dispose()
    with sqlite3.connect(path) as db:  # reshape the events table as schema 2 made it
        columns = "pk, device_id, uid, user_id, session_id, category, client_ts, received_at, game_build, fields"
        db.execute("ALTER TABLE events RENAME TO e3")
        db.execute("CREATE TABLE events (pk INTEGER PRIMARY KEY AUTOINCREMENT, device_id VARCHAR(128) NOT NULL, "
                   "uid VARCHAR(80) NOT NULL, user_id VARCHAR(128) NOT NULL, session_id VARCHAR(36), category "
                   "VARCHAR(32) NOT NULL, client_ts BIGINT NOT NULL, received_at BIGINT NOT NULL, game_build "
                   "VARCHAR(32) NOT NULL, fields BLOB NOT NULL, CONSTRAINT uq_events_device_uid UNIQUE (device_id, uid))")
        db.execute("DROP TABLE e3")
        db.executemany(f"INSERT INTO events ({columns}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       [(pk, "d", f"u{pk}", "d", None, "design", pk, 0, "1", b"\x80") for pk in (3, 7, 9)])
        db.execute("DELETE FROM events WHERE pk = 9")  # the sequence stays at 9
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    store = Store(f"sqlite:///{path}")
    assert store.upgrade() == SCHEMA_VERSION
    uniques = inspect(store.engine).get_unique_constraints("events")
    assert [u["column_names"] for u in uniques] == [["device_id", "client_ts", "uid"]]
    with store.engine.begin() as conn:
        assert conn.execute(select(events.c.pk, events.c.uid).order_by(events.c.pk)).all() == [(3, "u3"), (7, "u7")]
        conn.execute(events.insert().values(device_id="d", uid="new", user_id="d", category="design", client_ts=1,
                                            received_at=0, game_build="1", fields=b"\x80"))
        assert conn.execute(select(func.max(events.c.pk))).scalar() == 10  # pks never reused
    store.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 's.db'}"
        return
    server = PostgresServer().start()
    yield server.url
    server.stop()


def as_schema(store_url: str, version: int, *statements: str | tuple[str, dict[str, Any]]) -> Store:
    """A store as schema `version` left it: made current, taken back by `statements` (SQL, with parameters
    where a tuple), marked `version`; returned closed, to be upgraded again."""
    store = Store(store_url)
    store.upgrade()
    with store.engine.begin() as conn:
        for statement in statements:
            sql, params = statement if isinstance(statement, tuple) else (statement, {})
            conn.execute(text(sql), params)
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(version)))
    store.dispose()
    return Store(store_url)


def test_a_schema_3_store_is_upgraded_in_place_to_purchase_retries(store_url: str) -> None:
    """Schema 4 adds sent_at, failures and next_try_at to purchases; rows and their verdicts stay."""
    store = as_schema(store_url, 3, *(f"ALTER TABLE purchases DROP COLUMN {c}" for c in ("sent_at", "failures",
                                                                                         "next_try_at")),
                      ("INSERT INTO purchases (device_id, purchase_id, user_id, store, receipt, price_usd, status, "
                       "comment, metadata, created_at) VALUES ('d', 'p-1', 'd', 'apple', 'cmVjZWlwdA==', 0.99, "
                       "'completed', '', :metadata, 1)", {"metadata": msgpack.packb({})}))
    assert store.upgrade() == SCHEMA_VERSION
    columns = {c["name"] for c in inspect(store.engine).get_columns("purchases")}
    assert {"sent_at", "failures", "next_try_at"} <= columns
    purchases = Purchases(store)
    [pending] = purchases.due_purchases(10, now=2)
    assert (pending.purchase_id, pending.sent_at, pending.failures) == ("p-1", None, 0)
    purchases.retry_purchase_at(pending.pk, 1, at=1_000)
    assert purchases.due_purchases(10, now=999) == [] and len(purchases.due_purchases(10, now=1_000)) == 1
    store.dispose()


def test_a_schema_4_store_is_upgraded_in_place_to_per_player_devices(store_url: str) -> None:
    """Schema 5 adds the player's device to sessions and the table of events finished past a cursor; the
    sessions stay, their devices unknown (None: the hello's stand)."""
    store = as_schema(store_url, 4, *(f"ALTER TABLE sessions DROP COLUMN {column}" for column in PLAYER_DEVICE),
                      "DROP TABLE delivery_done",
                      "INSERT INTO sessions (session_id, device_id, user_id, session_num, started_at) "
                      "VALUES ('s-1', 'd', 'u', 1, 5)")
    assert store.upgrade() == SCHEMA_VERSION
    assert {c["name"] for c in inspect(store.engine).get_columns("sessions")} >= set(PLAYER_DEVICE)
    with store.engine.connect() as conn:
        assert conn.execute(select(sessions.c.session_id, sessions.c.platform)).all() == [("s-1", None)]
        assert conn.execute(select(func.count()).select_from(delivery_done)).scalar() == 0
    store.dispose()


def test_a_schema_5_store_is_upgraded_in_place_to_device_owners(store_url: str) -> None:
    """Schema 6 adds the owning client key to devices; the devices stay, owned by no key."""
    store = as_schema(store_url, 5, "ALTER TABLE devices DROP COLUMN client_key",
                      "INSERT INTO devices (device_id, user_id, engine, binding, binding_version, game_build, "
                      "first_seen, last_seen) VALUES ('d', 'u', 'unity', 'b', '1', '1.0', 1, 2)")
    assert store.upgrade() == SCHEMA_VERSION
    with store.engine.connect() as conn:
        assert conn.execute(select(devices.c.device_id, devices.c.client_key)).all() == [("d", None)]
    store.dispose()


def test_a_schema_6_store_is_upgraded_in_place_to_consent_and_the_erasure_ledger(store_url: str) -> None:
    """Schema 7 adds players' consent and the erasure ledger; events and sessions stay, every player unknown."""
    store = as_schema(store_url, 6, "DROP TABLE consent", "DROP TABLE erasures",
                      "ALTER TABLE purchases DROP COLUMN erase_after_verdict",
                      ("INSERT INTO events (device_id, uid, user_id, category, client_ts, received_at, game_build, "
                       "fields) VALUES ('d', 'u', 'p', 'design', 1, 1, '1', :fields)", {"fields": b"\x80"}))
    assert store.upgrade() == SCHEMA_VERSION
    assert {"consent", "erasures"} <= set(inspect(store.engine).get_table_names())
    assert "erase_after_verdict" in {c["name"] for c in inspect(store.engine).get_columns("purchases")}
    with store.engine.connect() as conn:
        assert conn.execute(select(events.c.uid)).scalars().all() == ["u"]
        assert conn.execute(select(func.count()).select_from(schema.consent)).scalar() == 0
    assert Ingest(store).consent("d", "p") == ("unknown", "unknown")
    store.dispose()


def test_a_schema_7_store_is_upgraded_in_place_to_leased_delivery(store_url: str) -> None:
    """Schema 8 adds the leased queue and the lease figures; on PostgreSQL each provider's events past its cursor,
    less those it finished past it, go into the queue (SQLite keeps its cursors: the queue stays empty)."""
    insert_event = ("INSERT INTO events (device_id, uid, user_id, category, client_ts, received_at, game_build, "
                    "fields) VALUES ('d', :uid, 'p', 'design', :ts, 1, '1', :fields)")
    store = as_schema(store_url, 7, "DROP TABLE delivery_queue", "ALTER TABLE delivery_cursors DROP COLUMN leases_lost",
                      "ALTER TABLE delivery_cursors DROP COLUMN duplicates",
                      "ALTER TABLE delivery_cursors DROP COLUMN taken_over",
                      *((insert_event, {"uid": f"u{i}", "ts": i, "fields": b"\x80"}) for i in range(4)),
                      "INSERT INTO delivery_cursors (provider, last_pk, delivered, updated_at) VALUES ('ga', 1, 1, 0)",
                      "INSERT INTO delivery_done (provider, event_pk) VALUES ('ga', 3)")
    assert store.upgrade() == SCHEMA_VERSION
    assert {"leases_lost", "duplicates", "taken_over"} <= {c["name"] for c in inspect(store.engine).get_columns("delivery_cursors")}
    with store.engine.connect() as conn:
        queued = conn.execute(select(delivery_queue.c.provider, delivery_queue.c.event_pk)
                              .order_by(delivery_queue.c.event_pk)).all()
    assert queued == ([("ga", 2), ("ga", 4)] if store.leased else [])
    store.dispose()


def test_a_schema_8_store_is_upgraded_in_place_to_fleet_sessions_and_client_quotas(store_url: str) -> None:
    """Schema 9 adds sessions' last activity (open sessions keep theirs unknown: a fleet's daemons read it as
    their start) and relay clients' day counts (none yet)."""
    store = as_schema(store_url, 8, "ALTER TABLE sessions DROP COLUMN last_seen", "DROP TABLE client_quota",
                      "INSERT INTO sessions (session_id, device_id, user_id, session_num, started_at) "
                      "VALUES ('s-1', 'd', 'p', 1, 5)")
    assert store.upgrade() == SCHEMA_VERSION
    with store.engine.connect() as conn:
        assert conn.execute(select(sessions.c.session_id, sessions.c.last_seen)).all() == [("s-1", None)]
        assert conn.execute(select(func.count()).select_from(schema.client_quota)).scalar() == 0
    assert Ingest(store).client_events("some key", 1) == 0
    store.dispose()


def test_older_schema_is_upgraded_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    applied: list[int] = []
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(schema.MIGRATIONS, SCHEMA_VERSION, lambda conn: applied.append(SCHEMA_VERSION))
    assert store.upgrade() == SCHEMA_VERSION + 1
    assert applied == [SCHEMA_VERSION]
    store.dispose()


def test_event_pks_are_never_reused(tmp_path: Path) -> None:
    """Delivery cursors rely on a growing pk, even after the newest rows were deleted."""
    with Daemon(tmp_path) as daemon, Client(daemon.ingress) as c:
        c.hello()
        c.request({"type": "events", "events": [make_event() for _ in range(5)]})
        top = daemon.events()[-1]["pk"]
        with sqlite3.connect(daemon.db_path) as db:
            db.execute("DELETE FROM events WHERE pk = ?", (top,))
        c.request({"type": "event", "event": make_event()})
        assert daemon.events()[-1]["pk"] > top


def test_player_device_columns_hold_what_the_protocol_lets_through() -> None:
    """A hello's device and a session_start's player device land in columns of the protocol's limits."""
    assert set(PLAYER_DEVICE) == set(protocol.PLAYER_DEVICE_MAX_CHARS)
    for name, limit in protocol.PLAYER_DEVICE_MAX_CHARS.items():
        assert sessions.c[name].type.length == devices.c[name].type.length == limit, name
