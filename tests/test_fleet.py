"""A fleet: three daemon processes on one PostgreSQL server, delivering to one GameAnalytics sandbox.

Clients spread over the three; one daemon is killed with SIGKILL while it holds leases; its clients go to
another daemon and resend what was not acknowledged. Every acknowledged event reaches the sandbox, and an event
reaches it twice only where a lease was taken over (counted in `stats`: `taken_over`, `duplicates`). The
provider's time-out is long: a late answer, retried, is a duplicate of another kind (tests/oracle/faults.py)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bridge.client import NoReply
from bridge.sandbox.gameanalytics import GameAnalyticsSandbox
from bridge.sandbox.server import SandboxServer
from bridge.store import schema
from tests.harness import Client, Daemon, make_event
from tests.postgres import PostgresServer
from tests.sandboxes import provider_table, wait_until

LEASE_S = 3.0
CLIENTS = 6
BATCH = 20


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


def fleet(workdir: Path, store_url: str, count: int, config: str = "") -> list[Daemon]:
    daemons = [Daemon(workdir / f"d{i}", config=config + f"[store]\nlease_s = {LEASE_S}\n", store_url=store_url)
               for i in range(count)]
    for daemon in daemons:  # imports done: then every one runs `bridge run` at once
        daemon.prepare()
    for daemon in daemons:
        daemon.start()
    return daemons


def stop_all(daemons: list[Daemon]) -> None:
    for daemon in daemons:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(5)


class Player(threading.Thread):
    """One client: batches of design events, each resent until acknowledged, at the next daemon when its own is
    gone (a player reconnecting elsewhere in the fleet)."""

    def __init__(self, number: int, daemons: list[Daemon], stop: threading.Event) -> None:
        super().__init__(name=f"player {number}")
        self.number, self.daemons, self.stop = number, daemons, stop
        self.acked: list[str] = []
        self.failovers = 0

    def run(self) -> None:
        at = self.number % len(self.daemons)
        sent = 0
        while not self.stop.is_set():
            batch = [make_event("design", event_id=f"fleet:p{self.number}:e{sent + i}") for i in range(BATCH)]
            while True:
                try:
                    with Client(self.daemons[at].ingress, timeout_ms=2000, device_id=f"dev-{self.number}") as c:
                        c.hello()
                        while True:
                            assert c.request({"type": "events", "events": batch})["type"] == "ack"
                            self.acked.extend(e["fields"]["event_id"] for e in batch)
                            sent += BATCH
                            if self.stop.is_set():
                                return
                            batch = [make_event("design", event_id=f"fleet:p{self.number}:e{sent + i}")
                                     for i in range(BATCH)]
                except NoReply:
                    at = (at + 1) % len(self.daemons)
                    self.failovers += 1


def stats(daemon: Daemon) -> dict[str, Any]:
    with Client(daemon.ingress, timeout_ms=5000, device_id="probe") as c:
        c.hello(role="tool")
        reply: dict[str, Any] = c.request({"type": "stats"})
    return reply


def test_three_daemons_deliver_every_acknowledged_event_through_a_kill_9(tmp_path: Path,
                                                                          postgres: PostgresServer) -> None:
    sandbox = GameAnalyticsSandbox()
    server = SandboxServer(sandbox, latency_s=0.05).start()
    daemons = fleet(tmp_path, postgres.url, 3, provider_table("gameanalytics", server.url, timeout=30.0))
    stop = threading.Event()
    players = [Player(n, daemons, stop) for n in range(CLIENTS)]
    try:
        for player in players:
            player.start()
        by_id = {stats(daemon)["store"]["daemon"]: daemon for daemon in daemons}

        def holder() -> Daemon | None:
            """A daemon holding leases now, as the fleet's figures say (whichever one claimed last)."""
            leases = stats(daemons[0])["providers"]["gameanalytics"]["leases"]
            return next((by_id[who] for who, count in sorted(leases.items()) if count and who in by_id), None)

        # killed while it holds leases on events it claimed (in batches out or waiting)
        victim = wait_until(holder, timeout_s=30, what="a daemon holding leases")
        victim.kill()
        wait_until(lambda: sum(p.failovers for p in players) >= CLIENTS // 3, timeout_s=30,
                   what="the victim's players to move to another daemon")
        wait_until(lambda: sum(len(p.acked) for p in players) > 3000, timeout_s=60, what="more load after the kill")
        stop.set()
        for player in players:
            player.join(30)
        acked = [event_id for p in players for event_id in p.acked]
        alive = [daemon for daemon in daemons if daemon is not victim]

        def delivered() -> Counter[str] | None:
            at_sandbox = Counter(e["event_id"] for e in sandbox.accepted_events(category="design"))
            return at_sandbox if all(event_id in at_sandbox for event_id in acked) else None

        at_sandbox = wait_until(delivered, timeout_s=90, what="every acknowledged event at the sandbox")
        figures = wait_until(lambda: (lambda f: f if f["queued"] == 0 else None)(
            stats(alive[0])["providers"]["gameanalytics"]), timeout_s=30, what="the fleet's queue to empty")
        twice = sum(n - 1 for n in at_sandbox.values() if n > 1)
        assert figures["leases"] == {}
        assert figures["taken_over"] > 0  # the victim's leases were taken over once they ran out
        assert twice <= figures["taken_over"] + figures["duplicates"], "a duplicate no lost lease explains"
        assert stats(alive[1])["providers"]["gameanalytics"]["taken_over"] == figures["taken_over"]  # the fleet's
        for daemon in alive:
            assert "Traceback" not in daemon.log()
    finally:
        stop.set()
        stop_all(daemons)
        server.stop()


def test_two_daemons_starting_at_once_on_an_empty_database_make_one_schema(tmp_path: Path,
                                                                          postgres: PostgresServer) -> None:
    daemons = fleet(tmp_path, postgres.url, 2)
    try:
        for daemon in daemons:
            assert stats(daemon)["store"]["events"] == 0
            assert "Traceback" not in daemon.log() and "error" not in daemon.log().lower()
        with psycopg.connect(postgres.url.replace("postgresql+psycopg", "postgresql")) as conn:
            rows = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        assert rows == [(str(schema.SCHEMA_VERSION),)]
    finally:
        stop_all(daemons)


def test_postgresql_away_is_answered_unavailable_and_nothing_acknowledged_is_lost(tmp_path: Path,
                                                                                postgres: PostgresServer) -> None:
    """The database goes down under a running daemon: requests that would store something are answered
    `unavailable` (nothing stored, the daemon alive); once it is back the same events are acknowledged, and
    every acknowledged event reaches the provider."""
    sandbox = GameAnalyticsSandbox()
    server = SandboxServer(sandbox).start()
    daemon, = fleet(tmp_path, postgres.url, 1, provider_table("gameanalytics", server.url))
    try:
        with Client(daemon.ingress, timeout_ms=10_000, device_id="dev-away") as c:
            c.hello()
            before = [make_event("design", event_id=f"away:before:{n}") for n in range(10)]
            assert c.request({"type": "events", "events": before})["stored"] == 10
            wait_until(lambda: len(sandbox.accepted_events(category="design")) == 10, timeout_s=30,
                       what="the first events at the sandbox")
            postgres.pause()
            during = [make_event("design", event_id=f"away:during:{n}") for n in range(10)]
            refused = c.request({"type": "events", "events": during})
            assert refused["type"] == "error" and refused["code"] == "unavailable", refused
            assert c.request({"type": "session_start", "user_id": "p-away"})["code"] == "unavailable"
            postgres.resume()
            acked = wait_until(lambda: (r := c.request({"type": "events", "events": during}))["type"] == "ack" and r,
                               timeout_s=60, what="the store back for the ingress")
            assert acked["stored"] == 10
        expected = {e["fields"]["event_id"] for e in before + during}
        wait_until(lambda: {e["event_id"] for e in sandbox.accepted_events(category="design")} >= expected,
                   timeout_s=90, what="every acknowledged event at the sandbox")
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert "Traceback" not in daemon.log()
    finally:
        stop_all([daemon])
        server.stop()
