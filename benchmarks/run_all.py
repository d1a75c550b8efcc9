"""`make bench`: every benchmark in this folder, one after the other, each printing its own figures.

    python -m benchmarks.run_all [--quick]    (the arguments go to every benchmark)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.support import REPO, child_env, module_command

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.stem} ===", flush=True)
        run = subprocess.run(module_command(f"benchmarks.{script.stem}", *sys.argv[1:]), env=child_env(), cwd=REPO)
        if run.returncode != 0:
            failed.append(script.stem)
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
