"""`python -m tests.oracle [--long] [--only NAME ...]`: run the scenarios, print figures, end with the tally."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.oracle.common import LONG, QUICK, Report

# Each module has `run(mode, workdir) -> Report`.
SCENARIOS = ("kills", "faults", "fuzz", "peers", "disk")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.oracle")
    parser.add_argument("--long", action="store_true", help="the soak run (>= 1M events, >= 20 kills, >= 100k frames)")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--seed", type=int, help="replay a run: the seed a scenario printed")
    parser.add_argument("--keep", action="store_true", help="keep each scenario's folder (logs, stores) and say where")
    args = parser.parse_args()
    if args.seed is not None:
        os.environ["ORACLE_SEED"] = str(args.seed)
    mode = LONG if args.long else QUICK
    passed = failed = 0
    started = time.monotonic()
    for name in args.only or SCENARIOS:
        t0 = time.monotonic()
        folder = (contextlib.nullcontext(tempfile.mkdtemp(prefix=f"oracle-{name}-")) if args.keep
                  else tempfile.TemporaryDirectory(prefix=f"oracle-{name}-"))
        with folder as tmp:
            if args.keep:
                print(f"[{name}] kept in {tmp}", flush=True)
            try:
                report = importlib.import_module(f"tests.oracle.{name}").run(mode, Path(tmp))
            except Exception:  # a scenario that breaks is a failed check, and the others still run
                report = Report(name)
                report.check("scenario ran to its end", False, traceback.format_exc())
        print(f"\n== {name} ({mode.name}, {time.monotonic() - t0:.1f} s)")
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
