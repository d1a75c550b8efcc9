"""A leased claim's time on PostgreSQL, on a fresh queue and after 1,000,000 events have passed through it.

The queue is a fleet's, driven through the store layer (no daemon, no HTTP, so that a million events pass in
minutes): PLAYERS players with a standing backlog of BACKLOG events, and two daemons (two `Store`s, two ids) that
take turns: each round the ingest commits ROUND new events, daemon b claims a batch and holds it while daemon a
claims its own (the measured claim: b's players wait for b), then both finish theirs. The backlog stays the same,
history grows: the claim must not grow with it, since finished rows leave `delivery_queue` at once (the hot
table; autovacuum left as PostgreSQL ships it). Medians of several claims, and the ratio after/before; a fresh
queue is measured again at the end, so that a change in the machine's load shows beside a growth.

    python -m benchmarks.bench_claims [--quick] [--events N] [--budget-s S]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Any

import msgpack

from benchmarks.bench_fleet import database, postgres
from bridge.store import Burst, Claims, Delivery, Ingest, Store
from bridge.store.ingest import EVENT_COLUMNS

PLAYERS = 2_000
BACKLOG = 20_000
BATCH = 1_000  # a lane's claim (bridge/lane.py CLAIM_ROWS)
ROUND = 2 * BATCH  # events through the queue per round: one batch for each daemon
SAMPLES = 9
PROVIDER = "gameanalytics"


class Fleet:
    """Two daemons on one database, and the ingest that feeds them."""

    def __init__(self, url: str) -> None:
        self.stores = [Store(url, lease_s=3600.0) for _ in range(2)]  # no lease runs out during the run
        for store in self.stores:
            store.open()
        self.a, self.b = (self._claims(store) for store in self.stores)
        self.ingest = Ingest(self.stores[0])
        self.passed = 0
        self._uids = itertools.count()
        self._stamp = 0

    @staticmethod
    def _claims(store: Store) -> Claims:
        claims = Delivery(store).claims(PROVIDER)
        claims.start()
        return claims

    def store_events(self, count: int) -> None:
        """`count` events of the players in turn, in bursts of a batch, as the ingress commits them."""
        fields = msgpack.packb({"event_id": "bench:claims", "value": 1.0})
        for _ in range(0, count, BATCH):
            stamp = self._stamp = max(int(time.time() * 1000), self._stamp + 1)  # each burst's own, growing
            rows = []
            for _ in range(BATCH):
                i = next(self._uids)
                row: dict[str, Any] = {"device_id": "server", "uid": f"e{i}", "user_id": f"player-{i % PLAYERS}",
                                       "session_id": None, "category": "design", "client_ts": i, "received_at": stamp,
                                       "game_build": "1", "fields": fields}
                rows.append(tuple(row[c] for c in EVENT_COLUMNS))
            with self.stores[0].writer_connection() as conn:
                self.ingest.commit_burst(conn, Burst(stamp, events=rows))

    def round(self) -> float:
        """One round; returns the milliseconds of daemon a's claim."""
        self.store_events(ROUND)
        held = self.b.claim(BATCH)
        began = time.perf_counter()
        mine = self.a.claim(BATCH)
        took = (time.perf_counter() - began) * 1000
        for claims, claimed in ((self.a, mine), (self.b, held)):
            claims.finish([ev.pk for ev in claimed], len(claimed), [])
            self.passed += len(claimed)
        return took

    def median_claim_ms(self) -> float:
        return statistics.median(self.round() for _ in range(SAMPLES))

    def queue_figures(self) -> str:
        """The hot table as PostgreSQL sees it: its rows, its size with indexes, and autovacuum's turns."""
        with self.stores[0].engine.connect() as conn:
            rows, size, vacuums = conn.exec_driver_sql(
                "SELECT n_live_tup, pg_total_relation_size(relid), autovacuum_count FROM pg_stat_user_tables "
                "WHERE relname = 'delivery_queue'").one()
        return f"delivery_queue ~{rows:,} rows, {size / 1e6:.1f} MB with its indexes, autovacuumed {vacuums}x"

    def dispose(self) -> None:
        for store in self.stores:
            store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="200,000 events through, not 1,000,000")
    parser.add_argument("--events", type=int, help="events through the queue before the second measure")
    parser.add_argument("--budget-s", type=float, default=900.0, help="stop pushing events through after this")
    args = parser.parse_args()
    through = args.events or (200_000 if args.quick else 1_000_000)
    with postgres() as base:
        fleet = Fleet(database(base, "claims").replace("postgresql://", "postgresql+psycopg://"))
        print(f"engine-bridge leased claims on one PostgreSQL: a claim of {BATCH:,} behind a backlog of {BACKLOG:,} "
              f"events of {PLAYERS:,} players, another daemon holding a batch")
        fleet.store_events(BACKLOG)
        fresh = fleet.median_claim_ms()
        print(f"  fresh queue:  median {fresh:6.1f} ms of {SAMPLES} claims   ({fleet.queue_figures()})", flush=True)
        began = time.monotonic()
        while fleet.passed < through and time.monotonic() - began < args.budget_s:
            fleet.round()
        passed_s = time.monotonic() - began
        after = fleet.median_claim_ms()
        print(f"  after {fleet.passed:,} events passed through ({passed_s:.0f} s, "
              f"{fleet.passed / passed_s:,.0f} events/s claimed and finished): median {after:6.1f} ms   "
              f"({fleet.queue_figures()})")
        fleet.dispose()
        again = Fleet(database(base, "claims_again").replace("postgresql://", "postgresql+psycopg://"))
        again.store_events(BACKLOG)
        fresh_again = again.median_claim_ms()  # the machine's load since the first measure, on a fresh queue
        again.dispose()
        print(f"  a fresh queue again: median {fresh_again:6.1f} ms")
        print(f"  after / fresh: {after / fresh:.2f}, after / fresh again: {after / fresh_again:.2f} (it must not "
              "grow with history)" + ("" if fleet.passed >= through else f"; the budget ended the run before "
                                      f"{through:,}"))


if __name__ == "__main__":
    main()
