"""Leased claims on PostgreSQL: two `Delivery` views on one database, each its own daemon (its own id), as a fleet
shares one store. Claims split the queue, a finish counts only under the lease still held, an expired lease is
taken over, and a player's newer events wait while an older one is leased elsewhere."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import msgpack
import pytest
from sqlalchemy import func, inspect, select

from bridge.store import Burst, Claims, Delivery, Ingest, Store, schema
from bridge.store.database import HOUSEKEEPING_LOCK
from bridge.store.ingest import EVENT_COLUMNS
from tests.sandboxes import wait_until

LEASE_S = 30.0  # nothing runs out in a test unless the test shortens the lease: a loaded machine stalls for seconds
SHORT_LEASE_S = 1.0


@pytest.fixture
def url(pg_database: str) -> str:
    return pg_database


class Daemon:
    """What one daemon of the fleet holds of the store: its `Store` (its id) and a provider's claims."""

    def __init__(self, url: str, provider: str = "ga", lease_s: float = LEASE_S) -> None:
        self.store = Store(url, lease_s=lease_s)
        self.store.open()
        self.delivery = Delivery(self.store)
        self.claims: Claims = self.delivery.claims(provider)
        self.claims.start()
        self.id = self.store.daemon_id


@pytest.fixture
def fleet(url: str) -> Iterator[tuple[Daemon, Daemon]]:
    a, b = Daemon(url), Daemon(url)
    yield a, b
    a.store.dispose()
    b.store.dispose()


_stamps = itertools.count(1)


def store_events(store: Store, players: list[str], per_player: int) -> None:
    """One burst as the ingress commits it: `per_player` events of each player, player after player."""
    stamp = next(_stamps)
    rows = [{"device_id": "srv", "uid": f"{user}-{i}", "user_id": user, "session_id": None, "category": "design",
             "client_ts": i, "received_at": stamp, "game_build": "1", "fields": msgpack.packb({"event_id": "e"})}
            for user in players for i in range(per_player)]
    with store.writer_connection() as conn:
        Ingest(store).commit_burst(conn, Burst(stamp, events=[tuple(r[c] for c in EVENT_COLUMNS) for r in rows]))


def uids(events: list[Any]) -> list[str]:
    return [ev.uid for ev in events]


def queue_rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.delivery_queue)).scalar_one())


def lease_end(store: Store) -> datetime:
    """When the earliest lease held now runs out."""
    with store.engine.connect() as conn:
        end: datetime = conn.execute(select(func.min(schema.delivery_queue.c.claimed_until))).scalar_one()
    return end


def test_two_daemons_split_the_queue_and_finish_their_own(fleet: tuple[Daemon, Daemon]) -> None:
    a, b = fleet
    assert a.id != b.id and a.id.count(":") == 2  # hostname:pid:random
    store_events(a.store, ["p0", "p1", "p2"], 4)
    mine = a.claims.claim(4)
    assert uids(mine) == ["p0-0", "p0-1", "p1-0", "p1-1"]  # each player's oldest, a share each
    theirs = b.claims.claim(100)
    assert uids(theirs) == [f"p2-{i}" for i in range(4)]  # not the players a holds
    more = a.claims.claim(100, new_players=0)
    assert uids(more) == ["p0-2", "p0-3", "p1-2", "p1-3"]  # a's players are a's until it finished them
    figures = a.delivery.figures("ga")
    assert figures["leases"] == {a.id: 8, b.id: 4} and figures["in_flight"] == 12 and figures["queued"] == 12
    assert a.claims.finish([ev.pk for ev in mine + more], 7, [(mine[0].pk, "invalid", "a rule")]) == 0
    assert b.claims.finish([ev.pk for ev in theirs], 4, []) == 0
    figures = b.delivery.figures("ga")
    assert (figures["queued"], figures["delivered"], figures["dead_lettered"], figures["leases_lost"]) == (0, 11, 1, 0)
    assert [d.event_pk for d in a.delivery.dead_letters("ga")] == [mine[0].pk]
    assert queue_rows(a.store) == 0  # finished rows leave the hot table at once


def test_a_players_newer_events_wait_while_an_older_one_is_leased_elsewhere(fleet: tuple[Daemon, Daemon]) -> None:
    a, b = fleet
    store_events(a.store, ["x"], 4)
    store_events(a.store, ["y"], 2)
    older = a.claims.claim(2, new_players=1)
    assert uids(older) == ["x-0", "x-1"]
    assert uids(b.claims.claim(100)) == ["y-0", "y-1"]  # x-2 and x-3 wait for a's batch of x
    assert uids(a.claims.claim(100)) == ["x-2", "x-3"]  # a's own older lease does not hold a back
    a.claims.finish([ev.pk for ev in older], 2, [])
    assert b.claims.claim(100) == []  # x-2 and x-3 are a's now
    b.claims.release()  # b stops: what it held is anyone's at once
    assert uids(a.claims.claim(100)) == ["y-0", "y-1"]
    assert a.delivery.figures("ga")["taken_over"] == 2  # given back unfinished: they may have gone out


def test_a_claim_takes_on_only_the_new_players_it_has_room_for(fleet: tuple[Daemon, Daemon]) -> None:
    """So that the first daemon to claim a backlog does not hold every player's oldest event while the others idle."""
    a, b = fleet
    store_events(a.store, ["p0", "p1", "p2", "p3"], 3)
    assert uids(a.claims.claim(100, new_players=2)) == [f"p{p}-{i}" for p in (0, 1) for i in range(3)]
    assert uids(b.claims.claim(100, new_players=1)) == ["p2-0", "p2-1", "p2-2"]  # the oldest player left
    assert a.claims.claim(100, new_players=0) == []  # p3 is new to a: no room for it
    store_events(a.store, ["p0"], 5)  # p0-0..p0-2 are stored already: two new events
    assert uids(a.claims.claim(100, new_players=0)) == ["p0-3", "p0-4"]  # a's own player's newer events
    assert uids(b.claims.claim(100)) == ["p3-0", "p3-1", "p3-2"]


def test_a_players_share_of_a_claim_is_a_batch_and_two_are_held_at_most(url: str) -> None:
    a = Daemon(url)
    claims = a.delivery.claims("ga", batch=2)
    claims.start()
    store_events(a.store, ["p", "q"], 5)
    first = claims.claim(100)
    assert uids(first) == ["p-0", "p-1", "q-0", "q-1"]  # a batch each: none goes short
    assert uids(claims.claim(100)) == ["p-2", "p-3", "q-2", "q-3"]  # one out, one waiting
    assert claims.claim(100) == []  # more would be held from the fleet for nothing
    claims.finish([ev.pk for ev in first if ev.user_id == "p"], 2, [])
    assert uids(claims.claim(100)) == ["p-4"]
    a.store.dispose()


def test_an_expired_lease_is_taken_over_and_the_loser_cannot_finish_it(url: str) -> None:
    a, b = Daemon(url, lease_s=SHORT_LEASE_S), Daemon(url, lease_s=SHORT_LEASE_S)
    store_events(a.store, ["p"], 3)
    claimed_at = time.monotonic()
    lost = a.claims.claim(100)  # a "dies" holding them: no renewal
    early = b.claims.claim(100)
    # held until the lease runs out: b may only have them this soon if the machine stalled past the lease
    assert early == [] or time.monotonic() - claimed_at >= SHORT_LEASE_S
    taken = early or wait_until(lambda: b.claims.claim(100), timeout_s=10, what="a's lease to run out")
    assert uids(taken) == uids(lost)
    assert b.delivery.figures("ga")["leases"] == {b.id: 3}
    # a comes back and finishes what it had sent: nothing of it is recorded, it counts as a lease lost
    assert a.claims.finish([ev.pk for ev in lost], 2, [(lost[2].pk, "invalid", "a rule")]) == 3
    assert a.delivery.dead_letters("ga") == []  # the holder decides what becomes of them
    assert b.claims.finish([ev.pk for ev in taken], 3, []) == 0
    figures = b.delivery.figures("ga")
    assert (figures["delivered"], figures["leases_lost"], figures["duplicates"], figures["queued"]) == (3, 1, 2, 0)
    assert figures["taken_over"] == 3
    a.store.dispose()
    b.store.dispose()


def test_a_renewed_lease_is_kept_past_its_length(url: str) -> None:
    # a lease long enough that a loaded machine never lets one run out between a renewal and b's claim
    lease_s = 3.0
    a, b = Daemon(url, lease_s=lease_s), Daemon(url, lease_s=lease_s)
    store_events(a.store, ["p"], 2)
    held = a.claims.claim(100)
    first_until = lease_end(a.store)

    def renewed_past_first_lease() -> bool:
        assert a.claims.renew() == 2
        assert b.claims.claim(100) == []  # never free: a renews well within the lease
        return lease_end(a.store) > first_until + timedelta(seconds=lease_s)  # now is past the first end

    wait_until(renewed_past_first_lease, timeout_s=20, what="a lease renewed past its first end")
    assert a.claims.finish([ev.pk for ev in held], 2, []) == 0
    a.store.dispose()
    b.store.dispose()


def test_a_provider_registered_later_gets_every_stored_event_and_then_each_new_one(url: str) -> None:
    a = Daemon(url)
    store_events(a.store, ["p"], 3)
    staq = a.delivery.claims("staq")
    staq.start()  # registers: everything stored is due to it, as a new cursor at 0 on SQLite
    store_events(a.store, ["p"], 1)  # deduplicated: p-0 is stored already, nothing new is queued
    store_events(a.store, ["q"], 1)
    assert uids(staq.claim(100)) == ["p-0", "p-1", "p-2", "q-0"]
    assert uids(a.claims.claim(100)) == ["p-0", "p-1", "p-2", "q-0"]
    assert queue_rows(a.store) == 8
    a.store.dispose()


def test_daemons_starting_a_new_provider_at_once_register_it_once(url: str) -> None:
    a, b = Daemon(url), Daemon(url)
    store_events(a.store, ["p"], 3)
    claims = [a.delivery.claims("staq"), b.delivery.claims("staq")]
    both = threading.Barrier(2)
    errors: list[Exception] = []

    def start(one: Claims) -> None:
        both.wait(10)
        try:
            one.start()
        except Exception as exc:  # noqa: BLE001 - the test reports what a lane would have died of
            errors.append(exc)

    for _ in range(5):  # the race is a window of milliseconds: given five chances
        with a.store.engine.begin() as conn:
            conn.execute(schema.delivery_queue.delete().where(schema.delivery_queue.c.provider == "staq"))
            conn.execute(schema.delivery_cursors.delete().where(schema.delivery_cursors.c.provider == "staq"))
        starts = [threading.Thread(target=start, args=(one,)) for one in claims]
        for thread in starts:
            thread.start()
        for thread in starts:
            thread.join(30)
        assert errors == []
        assert queue_rows(a.store) == 3 + 3  # ga's and, once, staq's
    a.store.dispose()
    b.store.dispose()


def test_daemons_opening_an_empty_database_at_once_make_one_schema(url: str) -> None:
    results: list[Any] = []

    def open_store() -> None:
        store = Store(url)
        try:
            results.append(store.open())
        except Exception as exc:  # noqa: BLE001 - the test reports whatever a daemon would have died of
            results.append(exc)
        finally:
            store.dispose()

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [schema.SCHEMA_VERSION] * 4


def test_one_daemon_of_the_fleet_does_housekeeping_at_a_time(fleet: tuple[Daemon, Daemon]) -> None:
    a, b = fleet
    with a.store.try_exclusive(HOUSEKEEPING_LOCK) as alone:
        assert alone
        with b.store.try_exclusive(HOUSEKEEPING_LOCK) as also:
            assert not also
    with b.store.try_exclusive(HOUSEKEEPING_LOCK) as alone:
        assert alone  # given back at the block's end


def test_a_schema_8_store_is_upgraded_in_place_to_the_claim_indexes(url: str) -> None:
    """Schema 10 indexes the queue's free and leased rows apart; the queue and its leases stay as they were."""
    a = Daemon(url)
    store_events(a.store, ["p"], 3)
    held = a.claims.claim(1)
    with a.store.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_delivery_queue_free")
        conn.exec_driver_sql("DROP INDEX ix_delivery_queue_leased")
        conn.execute(schema.meta.update().where(schema.meta.c.key == "schema_version").values(value="8"))
    assert a.store.upgrade() == schema.SCHEMA_VERSION
    indexes = {ix["name"] for ix in inspect(a.store.engine).get_indexes("delivery_queue")}
    assert {"ix_delivery_queue_free", "ix_delivery_queue_leased"} <= indexes
    assert a.delivery.figures("ga")["leases"] == {a.id: 1} and queue_rows(a.store) == 3
    assert uids(a.claims.claim(100)) == ["p-1", "p-2"]
    assert a.claims.finish([ev.pk for ev in held], 1, []) == 0
    a.store.dispose()


def test_requeued_dead_letters_go_back_into_the_queue_and_out_once_across_the_fleet(
        fleet: tuple[Daemon, Daemon]) -> None:
    a, b = fleet
    store_events(a.store, ["p"], 4)
    first = a.claims.claim(2)
    a.claims.finish([ev.pk for ev in first], 1, [(first[0].pk, "invalid", "a rule since fixed")])
    assert a.delivery.requeue("ga") == 1  # as `engine-bridge dead-letters --requeue` does, beside the fleet
    both = threading.Barrier(2)
    taken: list[list[Any]] = []

    def lane_turn(daemon: Daemon) -> None:
        both.wait(10)
        taken.append(daemon.delivery.take_requeued("ga", 100))

    turns = [threading.Thread(target=lane_turn, args=(daemon,)) for daemon in (a, b)]
    for turn in turns:
        turn.start()
    for turn in turns:
        turn.join(30)
    assert taken == [[], []]  # no daemon sends the letter itself: it is queued again, for one claim to take
    assert a.delivery.dead_letters("ga") == [] and a.delivery.figures("ga")["dead_lettered"] == 0
    claimed = b.claims.claim(100)
    assert uids(claimed) == ["p-0", "p-2", "p-3"]  # the requeued event first, before its player's newer ones
    assert a.claims.claim(100) == []
    assert b.claims.finish([ev.pk for ev in claimed], 2, [(claimed[0].pk, "invalid", "refused again")]) == 0
    [again] = b.delivery.dead_letters("ga")  # refused again: a dead letter once more, not re-queued
    assert (again.event_pk, again.reason, again.requeued_at) == (first[0].pk, "refused again", None)
    figures = b.delivery.figures("ga")
    assert (figures["queued"], figures["delivered"], figures["dead_lettered"]) == (0, 3, 1)
