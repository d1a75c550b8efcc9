"""Sessions per player: a dedicated server's players on one connection each end on their own timeout, at their
own last activity, with their own length. A real SQLite store."""

from __future__ import annotations

from pathlib import Path

import msgpack
from sqlalchemy import select

from bridge.protocol import SESSION_END
from bridge.sessions import SessionBook
from bridge.store import Burst, Ingest, Store
from bridge.store.schema import sessions

T0 = 1_790_000_000_000
TIMEOUT_MS = 60_000
PLAYERS = 200


def test_many_players_on_one_connection_each_end_on_their_own_timeout(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    ingest = Ingest(store)
    conn = store.engine.connect()
    book = SessionBook(ingest, T0)
    burst = Burst(T0)
    for p in range(PLAYERS):  # all start together; player p is last heard of p seconds later
        book.start(burst, "server", f"p{p}", "1.0", T0)
        book.ensure(burst, "server", f"p{p}", "1.0", T0 + p * 1000)
    ingest.commit_burst(conn, burst)

    half = T0 + (PLAYERS // 2) * 1000 + TIMEOUT_MS  # the first half has been idle longer than the timeout
    burst = Burst(half)
    assert book.expire(burst, half, TIMEOUT_MS, {"server": "1.0"}) == PLAYERS // 2
    ingest.commit_burst(conn, burst)
    assert sorted(book.open) == sorted(f"p{p}" for p in range(PLAYERS // 2, PLAYERS))

    later = T0 + PLAYERS * 1000 + TIMEOUT_MS
    burst = Burst(later)
    assert book.expire(burst, later, TIMEOUT_MS, {"server": "1.0"}) == PLAYERS // 2
    ingest.commit_burst(conn, burst)

    rows = conn.execute(select(sessions.c.user_id, sessions.c.ended_at, sessions.c.length)).all()
    ends = conn.exec_driver_sql("SELECT user_id, fields FROM events WHERE category = ?", (SESSION_END,)).all()
    ended = {user: (ended_at, length) for user, ended_at, length in rows}
    for p in range(PLAYERS):  # ended at its own last activity, its own length
        assert ended[f"p{p}"] == (T0 + p * 1000, p), p
    assert {user: msgpack.unpackb(fields)["length"] for user, fields in ends} == {
        user: length for user, (_, length) in ended.items()}
    conn.close()
    store.dispose()
