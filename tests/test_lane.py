"""The lane's promises. In-process: a player's events wait in a bucket of their own and go as one request;
players' batches finish out of order and a restart sends none of the finished ones again. Daemon-level: a
stalled database delays no other lane's HTTP, and a kill -9 while several batches are out at once loses and
skips nothing."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bridge.sandbox.gameanalytics import GameAnalyticsSandbox
from bridge.store.schema import delivery_cursors, delivery_done

from tests.harness import Client, Daemon, make_event
from tests.providers.inprocess import InProcessBridge, provider_spec
from tests.sandboxes import GaSandbox, provider_table, start_sandbox, wait_until

HELLO = {"platform": "windows", "os_version": "windows 10", "device": "pc", "manufacturer": "acme"}


def designs(sb: GameAnalyticsSandbox) -> list[dict[str, Any]]:
    return sb.accepted_events(category="design")


def queued(c: Client, provider: str) -> int:
    return int(c.request({"type": "stats"})["providers"][provider]["queued"])


def server_bridge(tmp_path: Path, url: str, **overrides: Any) -> InProcessBridge:
    spec = provider_spec("gameanalytics", url, remote_configs=False, **overrides)
    return InProcessBridge(tmp_path, {"gameanalytics": spec})


def players_events(players: int, each: int) -> list[dict[str, Any]]:
    """`each` design events of every player, the players interleaved as a dedicated server's stream is."""
    batch = []
    for i in range(each):
        for p in range(players):
            ev = make_event("design", event_id=f"p{p}:{i}")
            ev["user_id"] = f"p{p}"
            batch.append(ev)
    return batch


def test_each_players_events_go_in_one_request(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    """100 players' 2,100 events, interleaved: one request per player carrying all of that player's events,
    not a share of each 500-event batch (which made ~5 requests per player of ~4 events each)."""
    sb, server = ga_sandbox
    with server_bridge(tmp_path, server.url, interval=30.0) as h:
        game = h.hello(device_id="server")
        for p in range(100):
            game.session_start(user_id=f"p{p}")
        stream = players_events(100, 20)
        for i in range(0, len(stream), 500):
            game.events(stream[i:i + 500])
        h.flush()
        wait_until(lambda: len(designs(sb)) == 2000, 60, what="every player's events")
        assert sb.counts()["routes"]["events"]["200"] == 100
        wait_until(lambda: h.settled("gameanalytics"), what="the lane finished with them")


def test_a_players_bucket_waits_its_own_interval(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    """Each player's events go once that player's oldest is `interval` old: a player who began later is
    not sent early along with the others (never sooner; later is the machine's doing)."""
    sb, server = ga_sandbox
    interval = 1.5
    with server_bridge(tmp_path, server.url, interval=interval) as h:
        game = h.hello(device_id="server")
        stored: dict[str, float] = {}
        for user in ("early", "late"):
            ev = make_event("design", event_id=f"{user}:0")
            ev["user_id"] = user
            game.event(ev)
            stored[user] = max(e["received_at"] for e in h.events() if e["user_id"] == user) / 1000
            if user == "early":
                wait_until(lambda: time.time() - stored["early"] >= interval / 2, what="half an interval")
        wait_until(lambda: len(designs(sb)) == 2, what="both players' events")
        for record in sb.accepted(category="design"):
            user = record["event"]["user_id"]
            assert record["received_at"] >= stored[user] + interval - 0.01, user


def test_batches_finished_out_of_order_are_not_sent_again_after_a_restart(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    """One player's request hangs while another's is delivered: the store records the finished one past the
    cursor, so a restart sends only the unfinished player's events again."""
    sb, server = ga_sandbox
    with server_bridge(tmp_path, server.url, timeout=30.0) as h:
        game = h.hello(device_id="server")
        game.events(players_events(2, 5))
        sb.faults.slow("events", delay_s=25.0)  # the first events request hangs (past the waits below)
        h.flush()
        wait_until(lambda: len({r["event"]["user_id"] for r in sb.accepted(category="design")}) == 1,
                   what="one player's events")
        [fast] = {r["event"]["user_id"] for r in sb.accepted(category="design")}
        mine = {e["pk"] for e in h.events() if e["user_id"] == fast}  # its session_start and 5 events

        def finished() -> set[int]:
            """The fast player's events the store records finished: up to the cursor (it may move past them
            when the fast player's events are the oldest) or past it."""
            with h.store.engine.connect() as conn:
                cursor = conn.execute(select(delivery_cursors.c.last_pk)
                                      .where(delivery_cursors.c.provider == "gameanalytics")).scalar_one()
                done = set(conn.execute(select(delivery_done.c.event_pk)).scalars())
            return {pk for pk in mine if pk <= cursor or pk in done}
        # the collector holds the events before the lane has its answer and records them: wait for the record
        wait_until(lambda: finished() == mine, 20, what=f"the fast player's {len(mine)} events recorded finished")
        h.restart()
        h.flush()
        wait_until(lambda: {r["event"]["user_id"] for r in sb.accepted(category="design")} == {"p0", "p1"},
                   what="both players' events")
        sent = Counter(r["event"]["user_id"] for r in sb.accepted(category="design"))
        assert sent[fast] == 5  # once: finished before the restart
        wait_until(lambda: h.settled("gameanalytics"), what="the lane finished with them")


@pytest.mark.parametrize("fault", ["503 once", "1.5 s late"])
def test_a_players_next_batch_built_early_goes_only_after_the_one_before(tmp_path: Path, ga_sandbox: GaSandbox,
                                                                         fault: str) -> None:
    """One player's three full batches: the second is built while the first is out and waits for it, its
    retry included (503 once), or is built again when it waited too long (1.5 s late): the collector gets
    every event once, in the player's order."""
    sb, server = ga_sandbox
    with server_bridge(tmp_path, server.url, interval=30.0, retry_base=0.2, retry_cap=0.2) as h:
        game = h.hello(device_id="server")
        if fault == "503 once":
            sb.faults.fail("events", status=503, count=1)
        else:
            sb.faults.slow("events", delay_s=1.5, count=1)
        stream = players_events(1, 1500)
        for i in range(0, len(stream), 500):
            game.events(stream[i:i + 500])
        h.flush()
        wait_until(lambda: len(designs(sb)) == 1500, 30, what="the player's three batches")
        assert [e["event_id"] for e in designs(sb)] == [f"p0:{i}" for i in range(1500)]
        wait_until(lambda: h.settled("gameanalytics"), what="the lane finished with them")


def test_a_stalled_database_delays_no_other_lanes_http(tmp_path: Path) -> None:
    """Lane a reaches its store write while another connection holds SQLite's write lock; lane b, due a
    second later, still delivers in its usual time (its store calls and a's wait off the event loop)."""
    (sb_a, server_a), (sb_b, server_b) = start_sandbox(), start_sandbox()
    config = (provider_table("a", server_a.url, remote_configs=False, interval=0.5)
              + provider_table("b", server_b.url, remote_configs=False, interval=1.5))
    try:
        with Daemon(tmp_path, config=config) as daemon, Client(daemon.ingress) as c:
            c.hello(**HELLO)
            c.request({"type": "events", "events": [make_event("design", event_id=f"stall:{i}") for i in range(5)]})
            lock = sqlite3.connect(daemon.db_path, timeout=10, isolation_level=None)
            wait_until(lambda: lock.execute("SELECT count(*) FROM delivery_cursors").fetchone()[0] == 2,
                       what="both lanes started (their cursors made)")
            lock.execute("BEGIN IMMEDIATE")  # the store's write lock, held by someone else
            try:
                before = queued(c, "a")
                assert before >= 5  # taken before lane a's first batch was finished
                wait_until(lambda: len(designs(sb_a)) == 5, 5, what="lane a's request")
                wait_until(lambda: len(designs(sb_b)) == 5, 5, what="lane b delivering in its usual time")
                assert queued(c, "a") == before  # a's batch is still waiting on the lock: the store was stalled
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            wait_until(lambda: queued(c, "a") == 0 and queued(c, "b") == 0, 15, what="both lanes finished")
    finally:
        server_a.stop()
        server_b.stop()
    assert sorted(e["event_id"] for e in designs(sb_a)) == [f"stall:{i}" for i in range(5)]


def test_kill_9_with_batches_in_flight_loses_and_skips_nothing(tmp_path: Path) -> None:
    """A dedicated server's eight players: four requests out at once against a collector that answers late
    (one player's calls go in order, so concurrency comes from players); the daemon is killed mid-way and
    started again: every event arrives, and none is counted finished before the collector took it."""
    sb, server = start_sandbox()
    sb.faults.slow("events", delay_s=0.3, count=None)
    config = provider_table("gameanalytics", server.url, remote_configs=False, max_in_flight=4)
    sent = [{**make_event("design", event_id=f"k9:{i}"), "user_id": f"player-{i % 8}"} for i in range(3000)]
    try:
        daemon = Daemon(tmp_path, config=config).start()
        with Client(daemon.ingress) as c:
            c.hello(**HELLO)
            for k in range(0, len(sent), 500):
                c.request({"type": "events", "events": sent[k:k + 500]})
        wait_until(lambda: len(designs(sb)) >= 500, 20, what="some batches delivered")
        daemon.kill()
        early = {e["event_id"] for e in designs(sb)}
        daemon.start()
        with Client(daemon.ingress) as c:
            c.hello(**HELLO)
            wait_until(lambda: queued(c, "gameanalytics") == 0, 60, what="every event after the restart")
        daemon.stop()
        peak = server.peak_concurrency
    finally:
        server.stop()
    ids = [e["event_id"] for e in designs(sb)]
    assert set(ids) == {e["fields"]["event_id"] for e in sent}  # nothing lost or skipped
    assert len(early) < len(sent)  # the kill came mid-way
    assert len(ids) - len(set(ids)) <= 4 * 500  # a repeat is at most the batches that were out at the kill
    assert peak == 4  # max_in_flight requests out at once, never more
