"""The Unity binding under load, against a real daemon, with the daemon's own ceiling measured in the same run.

Builds engine_bindings/unity (Runtime/ + Benchmarks~/BridgeBench.cs) with `mcs -langversion:7.2`, runs it with
`mono`, and prints:
- the cost of each Track helper: ns per call (median, p99, max, mean) and bytes allocated per call, measured on
  the calling thread with GC.GetAllocatedBytesForCurrentThread while the client is connected and sending,
  beside an empty call timed the same way (the timer's own cost, included in every figure); the max is
  dominated by the OS descheduling the thread on a busy machine, the p99 by the call;
- the sustained rate: events tracked as fast as the queue allows (nothing dropped) and acknowledged by the daemon;
- the ceiling: the same daemon fed by a bare pyzmq DEALER sending pre-encoded batches of 500 with 4 in flight,
  and the binding's ratio to it.
Targets (issue 6): median under 2 µs, zero allocations per call, at least 50,000 events/s sustained.

    python -m benchmarks.bench_unity [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks import loadgen
from benchmarks.support import REPO, Daemon

UNITY = REPO / "engine_bindings" / "unity"
CONFIG = "[providers]\n\n[configs]\ndifficulty = \"normal\"\n"
BATCH = 500
WINDOW = 4
TARGET_MEDIAN_NS = 2000
TARGET_EVENTS_PER_S = 50_000


def build(out: Path) -> Path:
    sources = sorted((UNITY / "Runtime").rglob("*.cs")) + [UNITY / "Benchmarks~" / "BridgeBench.cs"]
    cmd = ["mcs", "-langversion:7.2", "-optimize+", "-nologo", f"-out:{out}", *map(str, sources)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"mcs failed:\n{result.stdout}{result.stderr}")
    return out


def ceiling(endpoint: str, events: int) -> float:
    """Events/s the daemon acknowledges from a bare DEALER sending pre-encoded batches, WINDOW in flight."""
    return loadgen.drive(endpoint, loadgen.frames(BATCH, events), BATCH, WINDOW)["events_per_s"]


def parse(output: str) -> dict[str, dict[str, float]]:
    results = {}
    for line in output.splitlines():
        if line.startswith("result "):
            name, *pairs = line.split()[1:]
            results[name] = {k: float(v) for k, v in (p.split("=", 1) for p in pairs)}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and events (a smoke run)")
    args = parser.parse_args()
    calls, events = (50_000, 30_000) if args.quick else (200_000, 100_000)
    if shutil.which("mcs") is None or shutil.which("mono") is None:
        print("mcs/mono missing: run scripts/install-system-deps.sh")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-unity-") as tmp:
        exe = build(Path(tmp) / "BridgeBench.exe")
        with Daemon(Path(tmp) / "daemon", config=CONFIG) as daemon:
            ceiling_rate = ceiling(daemon.ingress, events)
            run = subprocess.run(["timeout", "-k", "5", "600", "mono", "--optimize=all", str(exe),
                                  "--ingress", daemon.ingress, "--publish", daemon.publish,
                                  "--calls", str(calls), "--events", str(events)],
                                 capture_output=True, text=True, timeout=660)
    if run.returncode != 0:
        print(run.stdout, run.stderr)
        return 1
    results = parse(run.stdout)
    print(f"Track cost, {calls} calls per helper, client connected; each call timed alone (Stopwatch ticks of"
          " 100 ns; 'baseline' is an empty call timed the same way, included in every figure):")
    print(f"  {'helper':<18}{'median ns':>10}{'p99 ns':>9}{'max ns':>10}{'mean ns':>9}{'bytes/call':>12}"
          f"{'gen0 GCs':>10}")
    worst_median = worst_alloc = 0.0
    for name, r in results.items():
        if name == "sustained":
            continue
        if name != "baseline":
            worst_median = max(worst_median, r["median_ns"])
            worst_alloc = max(worst_alloc, r["alloc_bytes_per_call"])
        print(f"  {name:<18}{r['median_ns']:>10.0f}{r['p99_ns']:>9.0f}{r['max_ns']:>10.0f}{r['mean_ns']:>9.1f}"
              f"{r['alloc_bytes_per_call']:>12.3f}{r['gen0_collections']:>10.0f}")
    s = results["sustained"]
    print(f"Sustained: {s['stored']:.0f} of {s['events']:.0f} events acknowledged in {s['seconds']:.2f} s "
          f"= {s['events_per_s']:.0f} events/s (dropped {s['dropped']:.0f})")
    print(f"Ceiling (bare pyzmq DEALER, batches of {BATCH}, {WINDOW} in flight): {ceiling_rate:.0f} events/s; "
          f"binding/ceiling = {s['events_per_s'] / ceiling_rate:.2f}")
    print("Targets:")
    print(f"  median Track < {TARGET_MEDIAN_NS} ns: worst helper {worst_median:.0f} ns -> "
          f"{'met' if worst_median < TARGET_MEDIAN_NS else 'MISSED'}")
    print(f"  0 bytes allocated per call: worst helper {worst_alloc:.3f} -> {'met' if worst_alloc == 0 else 'MISSED'}")
    print(f"  >= {TARGET_EVENTS_PER_S} events/s: {s['events_per_s']:.0f} -> "
          f"{'met' if s['events_per_s'] >= TARGET_EVENTS_PER_S else 'MISSED'}"
          f"{'' if s['events_per_s'] >= TARGET_EVENTS_PER_S else ' (the daemon ceiling above bounds it)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
