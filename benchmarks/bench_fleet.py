"""A fleet on one PostgreSQL: delivery events/s with 1, 2 and 3 daemons, against a bare SKIP LOCKED loop.

A store is filled with events of many players (by a daemon with no provider), then 1, 2 or 3 daemons start on it
with a GameAnalytics sandbox answering LATENCY_MS late, and the drain is timed until the sandbox accepted every
event. The bare loop, in the same run, is psycopg alone on a table of the same rows: as many workers as the
fleet has requests in flight (`max_in_flight` per daemon), each claiming a batch with `FOR UPDATE SKIP LOCKED`,
waiting the collector's latency, and deleting it. (A claim's own time, fresh and after 1,000,000 events:
bench_claims.py.)

    python -m benchmarks.bench_fleet [--quick]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from benchmarks.support import Daemon, free_port, gameanalytics_table, late_gameanalytics_sandbox, wait_until
from bridge.client import Client
from bridge.providers.gameanalytics.provider import GameAnalytics

LATENCY_MS = 50
PLAYERS = 64
MAX_IN_FLIGHT = 4
BATCH = 100  # events per claim of the bare loop (the ratio the README has quoted since the fleet landed)
LANE_BATCH = GameAnalytics.batch_size  # ... and the lanes' own: what a daemon's request carries, at most
TIMERS = {"interval": 0.05, "retry_base": 0.05, "retry_cap": 0.2, "timeout": 5.0, "remote_configs": False,
          "max_in_flight": MAX_IN_FLIGHT}


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server (initdb in a temporary directory); yields its psycopg URL base."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    work = Path(tempfile.mkdtemp(prefix="eb-bench-pg-"))
    port = free_port()
    runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if runner:
        shutil.chown(work, "postgres")
    data = str(work / "data")
    subprocess.run([*runner, f"{binaries}/initdb", "-D", data, "-U", "bridge", "--auth=trust"], check=True,
                   capture_output=True)
    subprocess.run([*runner, f"{binaries}/pg_ctl", "-D", data, "-l", str(work / "log"), "-w", "-o",
                    f"-p {port} -k {work} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://bridge@127.0.0.1:{port}"
    finally:
        subprocess.run([*runner, f"{binaries}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def database(base: str, name: str) -> str:
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


def player_event(i: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "category": "design", "ts": int(time.time() * 1000) + i,
            "user_id": f"player-{i % PLAYERS}", "fields": {"event_id": f"bench:round{i % 20}", "value": 1.0}}


def fill(url: str, total: int, workdir: Path) -> None:
    """`total` events stored by a daemon with no provider (nothing claims them yet)."""
    with Daemon(workdir, config=f'[store]\nurl = "{url}"\n') as daemon, \
            Client(daemon.ingress, device_id="server") as c:
        c.hello(platform="linux", os_version="linux 6")
        for start in range(0, total, 1000):
            c.request({"type": "events", "events": [player_event(i) for i in range(start, start + 1000)]})


def fleet_rate(base: str, sandbox: str, daemons: int, total: int, work: Path) -> float:
    """Events/s the fleet delivers from a filled store, from the sandbox's first accepted event once all its
    daemons are up (started side by side; what the first up delivered while the others started is left out;
    so is the provider's registration, a fresh fleet's once) until the sandbox accepted every event."""
    url = database(base, f"fleet_{daemons}").replace("postgresql://", "postgresql+psycopg://")
    fill(url, total, work / f"fill-{daemons}")
    config = gameanalytics_table(sandbox, **TIMERS) + f'[store]\nurl = "{url}"\n'
    with httpx.Client() as admin, ExitStack() as fleet:
        admin.post(f"{sandbox}/_sandbox/reset")

        def accepted() -> int:
            return int(admin.get(f"{sandbox}/_sandbox/counts").json()["categories"].get("design", {})
                       .get("accepted", 0))

        members = [Daemon(work / f"fleet-{daemons}-{i}", config=config) for i in range(daemons)]
        for member in members:
            fleet.push(member)
        with ThreadPoolExecutor(daemons) as starting:
            list(starting.map(lambda member: member.start(), members))
        before = wait_until(accepted, 60, "the fleet's first event at the sandbox", interval_s=0.01)
        began = time.perf_counter()
        assert before < total / 2, f"{before:,} of {total:,} events delivered before the fleet was up: too few"
        wait_until(lambda: accepted() >= total, 600, "every event at the sandbox", interval_s=0.02)
        return (total - before) / (time.perf_counter() - began)


def bare_rate(base: str, daemons: int, total: int, batch: int) -> float:
    """Events/s of psycopg alone: claim `batch` rows with SKIP LOCKED, wait the collector's latency, delete them."""
    url = database(base, f"bare_{daemons}_{batch}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE q (pk bigserial PRIMARY KEY, player text NOT NULL, claimed_until timestamptz)")
        conn.execute("INSERT INTO q (player) SELECT 'p' || (g %% %s) FROM generate_series(1, %s) g", (PLAYERS, total))

    def worker() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                rows = conn.execute(
                    "UPDATE q SET claimed_until = now() + interval '30 s' WHERE pk IN (SELECT pk FROM q WHERE "
                    "claimed_until IS NULL ORDER BY pk LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING pk",
                    (batch,)).fetchall()
                if not rows:
                    return
                time.sleep(LATENCY_MS / 1000)
                conn.execute("DELETE FROM q WHERE pk = ANY(%s)", ([pk for pk, in rows],))

    began = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(daemons * MAX_IN_FLIGHT)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return total / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    total = 60_000 if args.quick else 200_000  # at 15,000 events/s, fewer would time the start and the tail
    with postgres() as base, late_gameanalytics_sandbox(LATENCY_MS) as sandbox, \
            tempfile.TemporaryDirectory(prefix="eb-bench-fleet-") as work:
        print(f"engine-bridge fleet on one PostgreSQL: {total:,} events of {PLAYERS} players, collector "
              f"{LATENCY_MS} ms late, max_in_flight = {MAX_IN_FLIGHT} per daemon")
        print(f"  the bare SKIP LOCKED loop claims {BATCH} rows at a time, and {LANE_BATCH} (a lane's request)")
        for daemons in (1, 2, 3):
            fleet = fleet_rate(base, sandbox, daemons, total, Path(work))
            bare, like = (bare_rate(base, daemons, total, batch) for batch in (BATCH, LANE_BATCH))
            print(f"  {daemons} daemon(s)  {fleet:>9,.0f} events/s   bare loop {bare:>9,.0f}/s {fleet / bare:>5.0%} "
                  f"(target >= 70%)   bare loop of {LANE_BATCH} {like:>9,.0f}/s {fleet / like:>5.0%}")


if __name__ == "__main__":
    main()
