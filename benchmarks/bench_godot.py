"""The Godot binding's speed, measured in a headless Godot 3 (`godot3-server`) against a real daemon.

Prints the per-call cost of `EngineBridge.track_design` (median and p90 of 200 rounds of 500 calls, in
microseconds: what one call takes from the game's frame) and the sustained rate of events the daemon
acknowledged while the game kept 20,000 events waiting for 5 s. Targets: under 20 µs per call, at least
10,000 events/s. For scale it also prints the daemon's own ceiling, measured in the same run: a fresh daemon
fed by a bare pyzmq DEALER with pre-encoded batches of the addon's size (1000, the welcome's max_batch_events)
and its window (4 in flight), and the binding's ratio to it. A measurement, not a test: it prints numbers and
fails only if the run itself breaks.

    python -m benchmarks.bench_godot [--quick]    (--quick: a shorter ceiling run; the Godot run is fixed)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import loadgen
from benchmarks.support import REPO, Daemon

GODOT = REPO / "engine_bindings" / "godot"
CONFIG = "[providers]\n\n[configs]\n"  # nothing leaves the machine
BATCH, WINDOW = 1000, 4  # the addon's: max_batch_events from welcome, ingress_link.gd's MAX_BATCHES
RUN_TIMEOUT_S = 400
TARGET_CALL_US = 20.0
TARGET_EVENTS_PER_S = 10_000


def build_project(root: Path, daemon: Daemon) -> Path:
    """bench/ with the addon, its main scene and the EngineBridge autoload wired to the daemon's endpoints."""
    project = root / "project"
    shutil.copytree(GODOT / "bench", project)
    shutil.copytree(GODOT / "addons" / "engine_bridge", project / "addons" / "engine_bridge")
    (project / "project.godot").write_text(f"""config_version=4

[application]
config/name="engine-bridge godot bench"
run/main_scene="res://main.tscn"

[autoload]
EngineBridge="*res://addons/engine_bridge/engine_bridge.gd"

[engine_bridge]
connection/ingress_endpoint="{daemon.ingress}"
connection/configs_endpoint="{daemon.publish}"
""")
    return project


def run(root: Path) -> dict[str, Any]:
    godot = shutil.which("godot3-server")
    if godot is None:
        sys.exit("godot3-server is missing: run scripts/install-system-deps.sh (Debian package godot3-server)")
    (root / "home").mkdir()
    with Daemon(root / "daemon", config=CONFIG) as daemon:
        project = build_project(root, daemon)
        env = dict(os.environ, HOME=str(root / "home"), LANG="en_US.UTF-8", LC_ALL="en_US.UTF-8")
        cmd = ["timeout", "-k", "5", str(RUN_TIMEOUT_S), godot, "--path", str(project)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=project,
                              timeout=RUN_TIMEOUT_S + 30)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("EB_BENCH ")]
        if proc.returncode != 0 or not lines or "SCRIPT ERROR" in proc.stdout + proc.stderr:
            sys.exit(f"the Godot run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(lines[-1].split(" ", 1)[1])
        with sqlite3.connect(daemon.db_path) as db:
            result["in_store"] = db.execute(
                "SELECT COUNT(*) FROM events WHERE category = 'design'").fetchone()[0]
    return result


def ceiling(workdir: Path, events: int) -> float:
    """Events/s a fresh daemon acknowledges from pre-encoded batches: what no client can beat."""
    with Daemon(workdir, config=CONFIG) as daemon:
        return loadgen.drive(daemon.ingress, loadgen.frames(BATCH, events), BATCH, WINDOW)["events_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer events for the ceiling")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-godot-") as tmp:
        r = run(Path(tmp))
        top = ceiling(Path(tmp) / "ceiling", 50_000 if args.quick else 200_000)
    call_ok = "ok" if r["call_us_median"] < TARGET_CALL_US else "MISSED"
    rate_ok = "ok" if r["sustained_events_per_s"] >= TARGET_EVENTS_PER_S else "MISSED"
    print("Godot binding (headless Godot 3.2, GDScript addon, real daemon)")
    print(f"  track_design per call: {r['call_us_median']:.2f} us median, {r['call_us_p90']:.2f} us p90 "
          f"over {r['calls']} calls (target < {TARGET_CALL_US:.0f} us: {call_ok})")
    print(f"  sustained into the daemon: {r['sustained_events_per_s']:,.0f} events/s acknowledged "
          f"at {r['sustained_fps']:.0f} frames/s (target >= {TARGET_EVENTS_PER_S:,}: {rate_ok})")
    print(f"  daemon ceiling (fresh daemon, bare pyzmq DEALER, batches of {BATCH}, {WINDOW} in flight): "
          f"{top:,.0f} events/s; binding/ceiling = {r['sustained_events_per_s'] / top:.2f}")
    print(f"  backlog of the call test drained in {r['drain_s']:.1f} s")
    print(f"  events generated {r['generated']:,}, acknowledged {r['acked']:,}, in the store {r['in_store']:,}, "
          f"dropped {r['dropped']} (after sending: {r['abandoned']}), rejected {r['rejected']}")


if __name__ == "__main__":
    main()
