"""The lane's promises, daemon-level: a stalled database delays no other lane's HTTP, and a kill -9 while
several batches are out at once loses and skips nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from bridge.sandbox.gameanalytics import GameAnalyticsSandbox

from tests.harness import Client, Daemon, make_event
from tests.sandboxes import provider_table, start_sandbox, wait_until

HELLO = {"platform": "windows", "os_version": "windows 10", "device": "pc", "manufacturer": "acme"}


def designs(sb: GameAnalyticsSandbox) -> list[dict[str, Any]]:
    return sb.accepted_events(category="design")


def queued(c: Client, provider: str) -> int:
    return int(c.request({"type": "stats"})["providers"][provider]["queued"])


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
