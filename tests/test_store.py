"""The store: schema versions, SQLite settings, and the same daemon running on a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from bridge.store import Store, StoreError, schema
from bridge.store.schema import SCHEMA_VERSION, events, meta
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
    from sqlalchemy import inspect

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
    from sqlalchemy import inspect

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


def test_older_schema_is_upgraded_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    applied: list[int] = []
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(schema.MIGRATIONS, SCHEMA_VERSION, lambda conn: applied.append(SCHEMA_VERSION))
    assert store.upgrade() == SCHEMA_VERSION + 1
    assert applied == [SCHEMA_VERSION]
    store.dispose()


@pytest.mark.parametrize("durability,expected", [("normal", 1), ("full", 2)])
def test_sqlite_runs_in_wal_with_the_chosen_durability(tmp_path: Path, durability: str, expected: int) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}", durability)
    store.upgrade()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == expected
    store.dispose()


def test_unsupported_dialect_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not supported"):
        Store("mysql+pymysql://u:p@127.0.0.1/db")


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


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


def test_daemon_on_postgresql(tmp_path: Path, postgres: PostgresServer) -> None:
    batch = [make_event(c) for c in ("design", "business", "ads")]
    with Daemon(tmp_path, store_url=postgres.url) as daemon:
        with Client(daemon.ingress, device_id="pg-dev") as c:
            assert c.hello()["type"] == "welcome"
            assert c.request({"type": "events", "events": batch})["stored"] == 3
            again = c.request({"type": "events", "events": batch})
            assert (again["stored"], again["duplicates"]) == (0, 3)
            stats = c.request({"type": "stats"})
            assert stats["store"]["url"].startswith("postgresql+psycopg://bridge@")
        assert not (daemon.data_dir / "bridge.sqlite3").exists()
        daemon.restart()
        with Client(daemon.ingress, device_id="pg-dev") as c:
            c.hello()
            assert c.request({"type": "events", "events": batch})["duplicates"] == 3
    store = Store(postgres.url)
    with store.engine.connect() as conn:
        rows = conn.execute(select(events.c.uid, events.c.category).where(events.c.device_id == "pg-dev")
                            .order_by(events.c.pk)).all()
    store.dispose()
    assert [r.uid for r in rows if r.category != "session_start"] == [e["id"] for e in batch]
