"""`engine-bridge demo` (what `make demo` runs) works end to end and says so."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_to_a_correct_summary() -> None:
    out = subprocess.run([sys.executable, "-m", "bridge", "demo", "--events", "1400"], capture_output=True,
                         text=True, timeout=90, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    figures = {m[1]: int(m[2]) for m in re.finditer(r"^  (events sent|acknowledged|delivered to GA) +(\d+)",
                                                     out.stdout, re.M)}
    assert figures == {"events sent": 1400, "acknowledged": 1400, "delivered to GA": 1200 + 2}
    assert "local change arrived, remote config change arrived, GameRamp player config arrived" in out.stdout
    assert "purchase               verified valid by staq" in out.stdout
    assert "delivered to staq      200 custom events" in out.stdout
    assert out.stdout.rstrip().endswith("demo OK")
    # it prints the inspector's address (and opens nothing); the daemon served it there
    address = re.search(r"^inspector: (http://127\.0\.0\.1:\d+/) ", out.stdout, re.M)
    work = re.search(r"store in (\S+)$", out.stdout, re.M)
    assert address and work, out.stdout
    assert f"inspector, health and metrics on {address[1]}" in (Path(work[1]) / "daemon.log").read_text()
