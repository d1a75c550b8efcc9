"""The C++ binding's speed: engine_bindings/cpp built with -O2, run against real daemons.

Prints what a Track call costs the game's thread (TrackDesign and TrackCustom, each call timed alone:
median, p99, max in ns, with the client connected and shipping the events meanwhile) and the sustained rate
into the daemon (events/s from the first Track of a burst to its last ack). For scale it also prints the
daemon's own ceiling: a bare pyzmq DEALER sending pre-encoded batches of the same size with the same window.
Each measurement gets a fresh daemon, because the store slows as it fills. Targets: Track median < 1 µs,
at least 50,000 events/s. A measurement, not a test: it fails only if a run itself breaks.

    python -m benchmarks.bench_cpp [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks import loadgen
from benchmarks.support import REPO, Daemon

SOURCE = REPO / "engine_bindings" / "cpp"
CONFIG = "[providers]\n"  # nothing leaves the machine
BATCH, WINDOW = 1000, 4   # the binding's defaults: max_batch_events from welcome, Settings::max_in_flight
TARGET_MEDIAN_NS, TARGET_EVENTS_PER_S = 1000, 50_000


def build(out: Path) -> Path:
    subprocess.run(["cmake", "-S", str(SOURCE), "-B", str(out), "-DCMAKE_BUILD_TYPE=Release",
                    "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG"], check=True, capture_output=True, timeout=120)
    subprocess.run(["cmake", "--build", str(out), "--target", "engine_bridge_bench", "-j", "2"], check=True,
                   capture_output=True, timeout=600)
    return out / "engine_bridge_bench"


def run_bench(exe: Path, workdir: Path, mode: str, count: int) -> dict[str, float]:
    with Daemon(workdir, config=CONFIG) as daemon:
        run = subprocess.run([str(exe), mode, daemon.ingress, daemon.publish, str(count)], capture_output=True,
                             text=True, timeout=600)
    if run.returncode != 0:
        raise SystemExit(f"engine_bridge_bench {mode} failed:\n{run.stdout}\n{run.stderr}")
    return {k: float(v) for k, v in (line.split("=", 1) for line in run.stdout.split())}


def ceiling(workdir: Path, events: int) -> float:
    """Events/s the daemon acknowledges from pre-encoded batches: what no client can beat."""
    with Daemon(workdir, config=CONFIG) as daemon:
        return loadgen.drive(daemon.ingress, loadgen.frames(BATCH, events), BATCH, WINDOW)["events_per_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and events (a smoke run)")
    args = parser.parse_args()
    calls, events = (20_000, 50_000) if args.quick else (100_000, 200_000)
    missing = [tool for tool in ("cmake", "g++", "pkg-config") if shutil.which(tool) is None]
    if missing:
        print(f"missing {', '.join(missing)}: run scripts/install-system-deps.sh")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-cpp-") as tmp:
        exe = build(Path(tmp) / "build")
        track = run_bench(exe, Path(tmp) / "track", "track", calls)
        sustained = run_bench(exe, Path(tmp) / "throughput", "throughput", events)
        top = ceiling(Path(tmp) / "ceiling", events)

    print(f"Track cost, {calls} calls per helper, client connected, each call timed alone (steady_clock read "
          "included):")
    print(f"  {'helper':<14}{'median ns':>10}{'p99 ns':>9}{'max ns':>11}")
    for name in ("track_design", "track_custom"):
        print(f"  {name:<14}{track[name + '_ns_median']:>10.0f}{track[name + '_ns_p99']:>9.0f}"
              f"{track[name + '_ns_max']:>11.0f}")
    rate = sustained["events_per_s"]
    print(f"Sustained: {sustained['events']:.0f} events acknowledged in {sustained['seconds']:.2f} s = {rate:.0f} "
          f"events/s (enqueued in {sustained['enqueue_s']:.3f} s; dropped {sustained['dropped']:.0f}, "
          f"rejected {sustained['rejected']:.0f})")
    print(f"Daemon ceiling (bare pyzmq DEALER, batches of {BATCH}, {WINDOW} in flight): {top:.0f} events/s; "
          f"binding/ceiling = {rate / top:.2f}")
    worst = max(track["track_design_ns_median"], track["track_custom_ns_median"])
    print("Targets:")
    print(f"  Track median < {TARGET_MEDIAN_NS} ns: worst helper {worst:.0f} ns -> "
          f"{'met' if worst < TARGET_MEDIAN_NS else 'MISSED'}")
    print(f"  >= {TARGET_EVENTS_PER_S} events/s: {rate:.0f} -> {'met' if rate >= TARGET_EVENTS_PER_S else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
