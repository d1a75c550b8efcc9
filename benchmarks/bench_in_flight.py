"""Bounded concurrency per lane: a collector that answers 150 ms late, max_in_flight = 4 against 1.

A dedicated server's players (their calls go out side by side; one player's go in order) fill the store
while the sandbox answers 503; then every answer is made 150 ms late and the drain is timed, once with
`max_in_flight = 1` and once with `max_in_flight = 4`, in the same run. With the lane's sending bounded by
the answer's latency, four requests in flight should deliver about four times the events per second. Each
player has several full batches (of 500) to send, so that the drain is many requests long: with fewer, the
retry that lifts the fault and the last turn at the store would weigh as much as the requests.

    python -m benchmarks.bench_in_flight [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks.support import Daemon, drained, gameanalytics_sandbox, gameanalytics_table
from bridge.client import Client

LATE_S = 0.15
PLAYERS = 16
TIMERS = {"interval": 0.2, "retry_base": 0.05, "retry_cap": 0.2, "timeout": 5.0, "remote_configs": False}


def player_event(i: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "category": "design", "ts": int(time.time() * 1000),
            "user_id": f"player-{i % PLAYERS}", "fields": {"event_id": f"bench:round{i % 20}", "value": 1.0}}


def drain_rate(url: str, total: int, max_in_flight: int, workdir: Path) -> float:
    """Events/s delivered from a full store to a collector answering LATE_S late."""
    with httpx.Client() as admin:
        admin.post(f"{url}/_sandbox/reset")
        admin.post(f"{url}/_sandbox/faults", json={"kind": "status", "route": "events", "count": None, "status": 503})
        config = gameanalytics_table(url, max_in_flight=max_in_flight, **TIMERS)
        with Daemon(workdir, config=config) as daemon, Client(daemon.ingress, device_id="server") as c:
            c.hello(platform="linux", os_version="linux 6")
            for start in range(0, total, 1000):
                c.request({"type": "events", "events": [player_event(i) for i in range(start, start + 1000)]})
            admin.delete(f"{url}/_sandbox/faults")
            admin.post(f"{url}/_sandbox/faults", json={"kind": "delay", "route": "events", "count": None,
                                                       "delay_s": LATE_S})
            began = time.perf_counter()

            drained(c, "gameanalytics", 600)
            elapsed = time.perf_counter() - began
        accepted = admin.get(f"{url}/_sandbox/counts").json()["categories"]["design"]["accepted"]
        assert accepted >= total, f"the sandbox accepted {accepted} of {total}"
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    total, runs = (16_000, 1) if args.quick else (32_000, 3)  # 2 or 4 full batches per player
    one: list[float] = []
    four: list[float] = []
    with gameanalytics_sandbox() as url, tempfile.TemporaryDirectory(prefix="eb-bench-inflight-") as work:
        for run in range(runs):
            one.append(drain_rate(url, total, 1, Path(work) / f"one-{run}"))
            four.append(drain_rate(url, total, 4, Path(work) / f"four-{run}"))
    ratios = [b / a for a, b in zip(one, four, strict=True)]
    print(f"engine-bridge lane concurrency: {PLAYERS} players, collector answering {LATE_S * 1000:.0f} ms late, "
          f"{total:,} events, median of {runs}")
    print(f"  max_in_flight = 1    {statistics.median(one):>10,.0f} events/s")
    print(f"  max_in_flight = 4    {statistics.median(four):>10,.0f} events/s")
    print(f"  ratio                {statistics.median(ratios):>10.2f}x  (target: about 4x, at least 3x)")


if __name__ == "__main__":
    main()
