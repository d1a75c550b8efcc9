"""What every oracle scenario shares: its mode (quick for CI, long for soak runs), its checks and figures."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

from tests.harness import Daemon


@dataclass(frozen=True)
class Mode:
    """How hard a run pushes. `quick` fits CI (a few minutes in all); `long` is the soak the README quotes."""

    name: str
    events: int  # events the kill scenario's clients send in all
    clients: int  # client processes in the kill scenario
    kills: int  # kill -9 of the daemon during the kill scenario
    fault_events: int  # events sent while the provider sandbox injects faults
    fault_kills: int
    fuzz_frames: int  # fuzzed frames in all
    peer_seconds: float  # how long each misbehaving peer misbehaves


QUICK = Mode("quick", events=20_000, clients=3, kills=4, fault_events=5_000, fault_kills=2, fuzz_frames=10_000,
             peer_seconds=8.0)
LONG = Mode("long", events=1_000_000, clients=4, kills=24, fault_events=100_000, fault_kills=6,
            fuzz_frames=120_000, peer_seconds=60.0)


@dataclass
class Check:
    name: str
    passed: bool
    detail: str = ""


@dataclass
class Report:
    """One scenario's outcome: checks that pass or fail, and figures printed beside them."""

    scenario: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(passed), detail))
        return bool(passed)


Scenario = Callable[[Mode, Path], Report]


def scenario_seed(name: str) -> int:
    """`ORACLE_SEED` if set (to replay a run), else a fresh seed; printed so a failing run can be replayed."""
    seed = int(os.environ.get("ORACLE_SEED") or int.from_bytes(os.urandom(4), "big"))
    print(f"[{name}] seed {seed} (replay with ORACLE_SEED={seed})", flush=True)
    return seed


TRACEBACK = re.compile(r"^Traceback \(most recent call last\)", re.MULTILINE)
CHAINED = re.compile(r"^(During handling of the above exception|The above exception was the direct cause)",
                     re.MULTILINE)
EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")  # a traceback's last line


def last_traceback(log: str) -> str:
    """The log's last traceback in one line: its frames in the daemon's own code, and the error."""
    lines = log.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return f"log ends: {' | '.join(lines[-3:])}"
    block = lines[starts[-1]:]
    frames = [line.strip() for line in block if line.strip().startswith("File ") and "/bridge/" in line]
    errors = [line for line in block if EXCEPTION_LINE.match(line)]
    return f"traceback: {' < '.join(reversed(frames[-3:]))}: {errors[-1] if errors else block[-1]}"


def no_tracebacks(report: Report, daemon: Daemon) -> None:
    """The daemon's whole log holds no Python traceback (a bug it caught is still a bug); chained exceptions
    count once."""
    text = daemon.log()
    found = len(TRACEBACK.findall(text)) - len(CHAINED.findall(text))
    report.check(f"no traceback in {daemon.log_path.name}", not found,
                 f"{found} traceback(s); last: {last_traceback(text)}")
