"""`python -m tests.oracle [--long] [--only NAME ...]`: run the scenarios, print figures, end with the tally."""

from __future__ import annotations

import argparse
import os
import sys
import time

from tests.oracle.common import LONG, QUICK
from tests.oracle.runner import run_scenario, run_together

# Each module has `run(mode, workdir) -> Report`.
SCENARIOS = ("kills", "faults", "fuzz", "peers", "disk")
# These run at the same time, each in a process of its own (ports, folders, daemons of its own). The others run
# after them, one after another and alone.
TOGETHER = ("kills", "faults", "disk")
# These bound a well-behaved client's ack latency while a peer or the fuzzer misbehaves (p99 < 50 ms): besides
# running alone they run (as root) at a higher CPU priority, which their daemon, clients and peers inherit, so
# that the p99 is the daemon's and not that of whatever else shares the machine.
LATENCY_BOUND = ("fuzz", "peers")
LATENCY_NICE = -10


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.oracle")
    parser.add_argument("--long", action="store_true", help="the soak run (>= 1M events, >= 20 kills, >= 100k frames)")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--seed", type=int, help="replay a run: the seed a scenario printed")
    parser.add_argument("--keep", action="store_true", help="keep each scenario's folder (logs, stores) and say where")
    parser.add_argument("--one-at-a-time", action="store_true",
                        help=f"run {', '.join(TOGETHER)} one after another too, not at the same time")
    args = parser.parse_args()
    if args.seed is not None:
        os.environ["ORACLE_SEED"] = str(args.seed)
    mode = LONG if args.long else QUICK
    names = list(args.only or SCENARIOS)
    together = [] if args.one_at_a_time else [name for name in names if name in TOGETHER]
    passed = failed = 0
    started = time.monotonic()
    results = run_together(together, mode, args.keep) if len(together) > 1 else {}
    for name in names:
        report, took = results[name] if name in results else run_scenario(
            name, mode, args.keep, LATENCY_NICE if name in LATENCY_BOUND else None)
        beside = ", ".join(n for n in together if n != name) if name in results else ""
        print(f"\n== {name} ({mode.name}, {took:.1f} s{', beside ' + beside if beside else ''})")
        for key, value in report.figures.items():
            print(f"   {key}: {value}")
        for check in report.checks:
            mark = "ok  " if check.passed else "FAIL"
            print(f"   {mark} {check.name}" + (f": {check.detail}" if check.detail and not check.passed else ""))
            passed += check.passed
            failed += not check.passed
        sys.stdout.flush()
    print(f"\noracle ({mode.name}, {time.monotonic() - started:.0f} s): {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
