"""The `Store`: SQLite settings, the dialects it takes, and the same daemon running on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.store import Store, StoreError
from bridge.store.schema import events
from tests.harness import Client, Daemon, make_event
from tests.postgres import PostgresServer


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
