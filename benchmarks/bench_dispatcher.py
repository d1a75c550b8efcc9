"""Delivery from the store to the GameAnalytics sandbox, against a bare loop doing the same HTTP work.

The sandbox runs in its own process. The raw ceiling is this process building batches of 500 collector
events and doing JSON + gzip + HMAC + POST (keep-alive) in a loop. The daemon's figure: fill its store
while the sandbox answers 503, then lift the fault and time until every event is delivered (claim, map,
validate, JSON, gzip, HMAC, POST, record), batches of 500.

    python -m benchmarks.bench_dispatcher [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks.support import Daemon, drained, gameanalytics_sandbox, gameanalytics_table, wait_until
from bridge.client import Client
from bridge.providers.gameanalytics.signing import Signature, encode_body, gzipped_json
from bridge.sandbox.gameanalytics import SANDBOX_GAME_KEY, SANDBOX_SECRET_KEY

BATCH = 500
# Fast retries and polling, so lifting the fault starts the delivery at once (the figures measured so far).
TIMERS = {"interval": 0.2, "retry_base": 0.05, "retry_cap": 0.2, "paused_retry": 0.3, "timeout": 2.0,
          "remote_configs_refresh": 0.5}
DRAIN_TIMEOUT_S = 600


def protocol_event(i: int) -> dict[str, Any]:
    """A design event as a game sends it over the protocol, stamped now."""
    return {"id": str(uuid.uuid4()), "category": "design", "ts": int(time.time() * 1000),
            "fields": {"event_id": f"bench:level{i % 50}", "value": 1.5}}


def collector_event(i: int) -> dict[str, Any]:
    return {"category": "design", "event_id": f"bench:level{i % 50}:complete", "value": 1.5, "v": 2,
            "user_id": "bench-user", "client_ts": int(time.time()), "sdk_version": "rest api v2",
            "os_version": "linux 6", "manufacturer": "unknown", "device": "unknown", "platform": "linux",
            "session_id": str(uuid.uuid4()), "session_num": 1, "build": "1.0"}


def raw_ceiling(url: str, total: int) -> float:
    """Events/s of the bare loop: build, JSON, gzip, sign, POST."""
    signature = Signature(SANDBOX_SECRET_KEY)
    with httpx.Client(timeout=30) as http:
        start = time.perf_counter()
        for b in range(total // BATCH):
            body = encode_body([collector_event(b * BATCH + i) for i in range(BATCH)])
            answer = http.send(gzipped_json("POST", f"{url}/v2/{SANDBOX_GAME_KEY}/events", body), auth=signature)
            assert answer.status_code == 200, answer.text[:200]
        return total / (time.perf_counter() - start)


def daemon_rate(url: str, total: int, workdir: Path) -> float:
    """Events/s the daemon's GameAnalytics lane delivers, from a full store."""
    with httpx.Client() as admin:
        admin.post(f"{url}/_sandbox/reset")
        admin.post(f"{url}/_sandbox/faults", json={"kind": "status", "route": "events", "count": None,
                                                   "status": 503})
        with (Daemon(workdir, config=gameanalytics_table(url, **TIMERS)) as daemon,
              Client(daemon.ingress, device_id="bench") as c):
            c.hello(platform="linux", os_version="linux 6")
            c.request({"type": "session_start"})
            for start in range(0, total, 1000):
                c.request({"type": "events", "events": [protocol_event(i) for i in range(start, start + 1000)]})
            time.sleep(0.5)
            admin.delete(f"{url}/_sandbox/faults")
            began = time.perf_counter()

            # timed at the sandbox, looked at every 10 ms: the drain takes about a second in a quick run, and
            # the stats' 100 ms polling made its figures jump in steps of 10-20%
            def accepted() -> int:
                return int(admin.get(f"{url}/_sandbox/counts").json()["accepted"])
            wait_until(lambda: accepted() >= total, DRAIN_TIMEOUT_S, "every event at the sandbox", interval_s=0.01)
            elapsed = time.perf_counter() - began
            ga = drained(c, "gameanalytics", DRAIN_TIMEOUT_S)
            assert ga["dead_lettered"] == 0
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    total = 30_000 if args.quick else 100_000
    with gameanalytics_sandbox() as url, tempfile.TemporaryDirectory(prefix="eb-bench-dispatch-") as work:
        ceiling = raw_ceiling(url, total)
        ours = daemon_rate(url, total, Path(work))
    print("engine-bridge dispatcher benchmark: store -> GameAnalytics sandbox (own process), batches of 500")
    print(f"  daemon delivered     {ours:>10,.0f} events/s")
    print(f"  raw ceiling          {ceiling:>10,.0f} events/s (JSON + gzip + HMAC + POST loop, same sandbox)")
    print(f"  ratio                {ours / ceiling:>10.0%}")
    print("  targets: >= 20,000 events/s delivered and >= 50% of the ceiling")


if __name__ == "__main__":
    main()
