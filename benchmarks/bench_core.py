"""The daemon core against its raw ceiling, measured in one run with the same load generator.

Prints: events/s acknowledged with one event per message and with batches of 100 (a window of messages in
flight, load from a separate process); ack latency p50/p99 at a fixed 10,000 events/s; the same figures for
a bare pyzmq ROUTER that only unpacks, inserts the same rows with stdlib sqlite3 executemany (WAL,
synchronous=NORMAL, the same columns and unique key) and replies; our ratio to it; the daemon's idle CPU
over 30 s and its resident memory.
Each phase starts after a 2 s settle, for the daemon and the ceiling alike.

    python -m benchmarks.bench_core [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgpack
import zmq

from benchmarks.support import REPO, Daemon, child_env, free_port, module_command

SETTLE_S = 2.0


def run_loadgen(endpoint: str, mode: str, count: int, window: int, rate: float = 0) -> dict[str, float]:
    """The shared load generator, in its own process."""
    out = subprocess.run(module_command("benchmarks.loadgen", endpoint, mode, str(count), str(window), str(rate)),
                         capture_output=True, text=True, timeout=600, check=True, env=child_env(), cwd=REPO)
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


# --- the raw ceiling (runs in its own process) --------------------------------------------------------

def raw_server(endpoint: str, db_path: str) -> None:
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    # The same rows as the daemon's events table: its columns, its unique key, one session id per device.
    db.execute("CREATE TABLE events (pk INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT, uid TEXT, user_id TEXT, "
               "session_id TEXT, category TEXT, client_ts INTEGER, received_at INTEGER, game_build TEXT, "
               "fields BLOB, UNIQUE (device_id, client_ts, uid))")
    session_id = str(uuid.uuid4())
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind(endpoint)
    print("ready", flush=True)
    while True:
        sock.poll()
        replies: list[tuple[bytes, dict[str, Any]]] = []
        rows: list[tuple[Any, ...]] = []
        for _ in range(2048):
            try:
                ident, payload = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            msg = msgpack.unpackb(payload)
            now = int(time.time() * 1000)
            batch = msg.get("events") or ([msg["event"]] if "event" in msg else [])
            rows += [("bench", e["id"], "bench", session_id, e["category"], e["ts"], now, "1",
                      msgpack.packb(e["fields"])) for e in batch]
            replies.append((ident, {"type": "ack", "rid": msg.get("rid"), "stored": len(batch)}))
        db.execute("BEGIN")
        db.executemany("INSERT OR IGNORE INTO events (device_id, uid, user_id, session_id, category, client_ts, "
                       "received_at, game_build, fields) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        db.execute("COMMIT")
        for ident, reply in replies:
            sock.send_multipart([ident, msgpack.packb(reply)])


def measure(endpoint: str, quick: bool) -> dict[str, dict[str, float]]:
    """The three phases, each after a settle, so one phase's catch-up work (a WAL checkpoint after a burst)
    does not land in the next phase's figures; daemon and ceiling are treated alike."""
    n_single, n_batch, n_lat = (20_000, 200_000, 20_000) if quick else (100_000, 600_000, 50_000)
    phases = {"single": ("single", n_single, 64, 0), "batch": ("batch", n_batch, 16, 0),
              "latency": ("single", n_lat, 1000, 10_000)}
    figures: dict[str, dict[str, float]] = {}
    for name, (mode, count, window, rate) in phases.items():
        time.sleep(SETTLE_S)
        figures[name] = run_loadgen(endpoint, mode, count, window, rate)
    return figures


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ceiling_figures(work: Path, quick: bool) -> dict[str, dict[str, float]]:
    """The three phases against the raw server, in its own process."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    raw = subprocess.Popen(module_command("benchmarks.bench_core", "raw-server", endpoint, str(work / "raw.db")),
                           stdout=subprocess.PIPE, text=True, env=child_env(), cwd=REPO)
    try:
        assert raw.stdout is not None and raw.stdout.readline().strip() == "ready"
        return measure(endpoint, quick)
    finally:
        raw.kill()
        raw.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller runs and a 5 s idle window")
    args = parser.parse_args()
    idle_s = 5 if args.quick else 30
    with tempfile.TemporaryDirectory(prefix="eb-bench-") as tmp:
        work = Path(tmp)
        ceiling = ceiling_figures(work, args.quick)
        with Daemon(work / "daemon") as daemon:
            ours = measure(daemon.ingress, args.quick)
            rss_loaded = proc_rss_mb(daemon.pid)
            daemon.restart()
            pid = daemon.pid
            time.sleep(2)
            cpu0 = proc_cpu_seconds(pid)
            time.sleep(idle_s)
            idle_cpu = 100 * (proc_cpu_seconds(pid) - cpu0) / idle_s
            rss_idle = proc_rss_mb(pid)

    print("engine-bridge core benchmark (load from a separate process, loopback TCP)")
    print(f"{'':32}{'daemon':>14}{'raw ceiling':>14}{'ratio':>9}")
    for key, label in (("single", "1 event/message, events/s"), ("batch", "100 events/message, events/s")):
        a, b = ours[key]["events_per_s"], ceiling[key]["events_per_s"]
        print(f"{label:32}{a:>14,.0f}{b:>14,.0f}{a / b:>8.0%}")
    for key in ("p50_ms", "p99_ms"):
        print(f"{'ack latency ' + key[:3] + ' @10k ev/s, ms':32}{ours['latency'][key]:>14.2f}"
              f"{ceiling['latency'][key]:>14.2f}")
    print(f"{'achieved rate in latency run':32}{ours['latency']['events_per_s']:>14,.0f}")
    print(f"idle CPU over {idle_s} s: {idle_cpu:.2f}% of a core; resident memory {rss_idle:.1f} MB idle, "
          f"{rss_loaded:.1f} MB after the load")
    print("targets: >= 80% of the ceiling in both modes, p99 < 5 ms at 10k ev/s, idle CPU < 1%, RSS < 80 MB")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "raw-server":
        raw_server(sys.argv[2], sys.argv[3])
    else:
        main()
