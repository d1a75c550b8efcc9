"""`engine-bridge demo` (what `make demo` runs) works end to end and says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_to_a_correct_summary() -> None:
    out = subprocess.run([sys.executable, "-m", "bridge", "demo", "--events", "1400"], capture_output=True,
                         text=True, timeout=90, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "events sent          1400" in out.stdout
    assert "acknowledged         1400" in out.stdout
    assert "(the live change arrived)" in out.stdout
    assert out.stdout.rstrip().endswith("demo OK")
