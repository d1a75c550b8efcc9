"""Sessions per player: a dedicated server's players on one connection each end on their own timeout, at their
own last activity, with their own length (a real SQLite store); a fleet's daemons share each player's session
(a real PostgreSQL server)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from sqlalchemy import select

from bridge.intake import end_session, start_session
from bridge.protocol import SESSION_END, Hello, ProtocolError, SessionRequest
from bridge.sessions import SessionBook
from bridge.store import Burst, Ingest, Store
from bridge.store.schema import sessions
from tests.postgres import PostgresServer

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


def test_a_session_named_by_the_client_is_started_and_ended_once_however_often_resent(tmp_path: Path) -> None:
    """An edge resends a session_start or session_end whose reply it lost (also after the daemon restarted):
    the same session comes back, none is opened or ended twice; another player's id is refused."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    ingest = Ingest(store)
    conn = store.engine.connect()
    hello = Hello(1, "unity", "b", "1", "1.0", "edge-device", "ana")
    sid = "2f0c5f1e-8a4b-4c1d-9e2f-3a4b5c6d7e8f"
    start = SessionRequest(None, T0, session_id=sid)
    book = SessionBook(ingest, T0)
    burst = Burst(T0)
    first = start_session(burst, book, hello, start, T0)
    again = start_session(burst, book, hello, start, T0 + 1)  # in the same burst
    ingest.commit_burst(conn, burst)
    assert first["session_id"] == again["session_id"] == sid and first["session_num"] == again["session_num"] == 1

    book = SessionBook(ingest, T0 + 2)  # a restart: the open session is read back
    burst = Burst(T0 + 2)
    assert start_session(burst, book, hello, start, T0 + 2)["session_num"] == 1
    end = SessionRequest(None, T0 + 5000, session_id=sid)
    ended = end_session(burst, book, hello, end, T0 + 5000)
    assert ended is not None and ended["length"] == 5
    assert end_session(burst, book, hello, end, T0 + 6000) == ended  # same burst
    ingest.commit_burst(conn, burst)

    book = SessionBook(ingest, T0 + 7000)  # a restart: the ended session is found in the store
    burst = Burst(T0 + 7000)
    assert end_session(burst, book, hello, end, T0 + 7000) == ended
    assert start_session(burst, book, hello, start, T0 + 7000)["ended_at"] == T0 + 5000  # not reopened
    other = Hello(1, "unity", "b", "1", "1.0", "forger", "bob")
    with pytest.raises(ProtocolError) as refused:
        start_session(burst, book, other, start, T0 + 7000)
    assert refused.value.code == "invalid_value" and refused.value.field == "session_id"
    ingest.commit_burst(conn, burst)
    rows = conn.execute(select(sessions.c.session_id, sessions.c.user_id)).all()
    markers = conn.exec_driver_sql("SELECT category FROM events ORDER BY pk").scalars().all()
    assert rows == [(sid, "ana")] and markers == ["session_start", SESSION_END]


class FleetDaemon:
    """One daemon's ingress as the fleet test needs it: its own store connection and session book (always
    reading the fleet's store: check_ms 0)."""

    def __init__(self, url: str, now: int) -> None:
        self.store = Store(url)
        self.store.open()
        self.ingest = Ingest(self.store)
        self.conn = self.store.engine.connect()
        self.book = SessionBook(self.ingest, now, check_ms=0)

    def commit(self, burst: Burst) -> None:
        self.ingest.commit_burst(self.conn, burst)

    def events(self, user: str, at: int) -> str:
        """One event of the player's, committed; the session it was stamped with."""
        burst = Burst(at)
        session_id = self.book.ensure(burst, "server", user, "1.0", at).session_id
        self.commit(burst)
        return session_id

    def close(self) -> None:
        self.conn.close()
        self.store.dispose()


def test_a_player_moving_between_daemons_of_a_fleet_keeps_one_session_and_its_numbers() -> None:
    """Two daemons on one PostgreSQL store: a player's session opened by one is the session the other stamps;
    it is not ended by a daemon where the player went quiet while they play through the other; a new session
    through one is numbered after the other's and taken up by it; a session both expire ends once."""
    pg = PostgresServer().start()
    try:
        a, b = FleetDaemon(pg.url, T0), FleetDaemon(pg.url, T0)
        burst = Burst(T0)
        first = a.book.start(burst, "server", "p", "1.0", T0)
        a.commit(burst)
        assert b.events("p", T0 + 50_000) == first.session_id  # p reconnected to b: the same session

        burst = Burst(T0 + 70_000)  # idle at a for longer than the timeout, but not in the store
        assert a.book.expire(burst, T0 + 70_000, TIMEOUT_MS, {}) == 0
        assert a.events("p", T0 + 80_000) == first.session_id

        burst = Burst(T0 + 90_000)
        second = b.book.start(burst, "server", "p", "1.0", T0 + 90_000)  # ends the first: b takes it up
        b.commit(burst)
        assert second.session_num == 2
        assert a.events("p", T0 + 95_000) == second.session_id  # a drops the session b ended

        burst = Burst(T0 + 96_000)
        a.book.end(burst, "p", "1.0", T0 + 96_000)
        a.commit(burst)
        burst = Burst(T0 + 97_000)
        third = b.book.start(burst, "server", "p", "1.0", T0 + 97_000)  # b's memory had p's last number as 2
        b.commit(burst)
        assert third.session_num == 3

        late = T0 + 97_000 + TIMEOUT_MS + 1
        for daemon in (a, b):  # one after the other: the second finds it ended
            burst = Burst(late)
            daemon.book.expire(burst, late, TIMEOUT_MS, {})
            daemon.commit(burst)
        with a.store.engine.connect() as conn:
            rows = conn.execute(select(sessions.c.session_id, sessions.c.session_num, sessions.c.ended_at)
                                .order_by(sessions.c.session_num)).all()
            ends = conn.exec_driver_sql("SELECT session_id FROM events WHERE category = %s ORDER BY pk",
                                        (SESSION_END,)).scalars().all()
        assert rows == [(first.session_id, 1, T0 + 90_000), (second.session_id, 2, T0 + 96_000),
                        (third.session_id, 3, T0 + 97_000)]
        assert ends == [first.session_id, second.session_id, third.session_id]  # each ended once
        a.close()
        b.close()
    finally:
        pg.stop()
