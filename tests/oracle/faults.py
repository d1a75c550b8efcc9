"""A provider that misbehaves: every acknowledged event must still reach the GameAnalytics sandbox, or be
dead-lettered when the collector refused it, and arrive once re-queued after the fix.

The sandbox runs in this process and injects faults through its FaultPlan on the events route: 5xx
statuses, dropped connections, answers slower than the provider's timeout, and 400s. An injected 400 has
the body `{"error": ...}`, not the collector's list of invalid events, so the GameAnalytics provider
dead-letters that whole request (`rejected`, "400 with a body that is not the collector's list of invalid
events") while the sandbox records nothing of it. The daemon is also SIGKILLed during delivery.

Delivery is at least once, so some copies are expected, and only from two causes: the batch in flight at a
kill (its cursor had not moved) and a request answered after the provider's timeout (the sandbox served it
late, the provider had already sent it again). Each cause repeats at most one batch of 500.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from collections.abc import Callable

from bridge.providers.gameanalytics.provider import GameAnalytics
from bridge.sandbox.faults import Fault
from bridge.sandbox.gameanalytics import GameAnalyticsSandbox
from tests.harness import REPO, Daemon
from tests.oracle.common import Mode, Report, no_tracebacks, scenario_seed
from tests.oracle.ledger import (ACKED, ClientSpec, Fleet, end_daemon, log_tail, poll_until, report_clients,
                                 restart_error, stop_cleanly, waited)
from tests.sandboxes import FAST, ga_daemon, start_sandbox

PROVIDER = "gameanalytics"
SEND_SECONDS = {"quick": 8.0, "long": 60.0}
EPISODES = {"quick": 8, "long": 40}  # fault episodes, the kinds in turn (shuffled)
KINDS = ("5xx", "drop", "slow", "400")
SLOW_S = FAST["timeout"] + 1.0  # beyond the provider's timeout: it gives up, the sandbox still serves it
USERS = 4  # events of 4 users per device: one collector request per user in each batch
SESSION_EVERY_BATCHES = 10
SETTLE_S = 30.0
MIN_DELIVERY_PER_S = 2000  # the sandbox takes ~30k/s; this leaves room for a machine busy with other work
KILL_WAIT_S = 3.0


class Deliveries:
    """What the sandbox accepted, tallied as it arrives (its journal keeps only the latest records)."""

    def __init__(self, sandbox: GameAnalyticsSandbox) -> None:
        self.sandbox = sandbox
        self.next = 0
        self.copies: Counter[str] = Counter()  # oracle_id -> times accepted
        self.sessions: Counter[tuple[str, str]] = Counter()  # (collector category, session_id) -> times
        self.missed = 0  # records the journal dropped before they were read

    def poll(self) -> None:
        for record in self.sandbox.accepted(since=self.next):
            self.missed += record["index"] - self.next
            self.next = record["index"] + 1
            event = record["event"]
            oracle_id = (event.get("custom_fields") or {}).get("oracle_id")
            if oracle_id:
                self.copies[oracle_id] += 1
            elif event.get("category") in ("user", "session_end"):
                self.sessions[(event["category"], event.get("session_id", ""))] += 1


def fault_kind(fault: dict[str, Any]) -> str:
    """The scenario's name for a fault (a 400 is not a 5xx: it dead-letters instead of retrying)."""
    if fault["kind"] == "status":
        return "400" if fault["status"] == 400 else "5xx"
    return {"delay": "slow", "drop": "drop"}[fault["kind"]]


def make_fault(kind: str, rng: random.Random) -> Fault:
    if kind == "5xx":
        return Fault("status", "events", rng.randint(1, 3), status=rng.choice((500, 502, 503, 504)))
    if kind == "drop":
        return Fault("drop", "events", rng.randint(1, 2))
    if kind == "slow":
        return Fault("delay", "events", 1, delay_s=SLOW_S)
    return Fault("status", "events", 1, status=400)


def dead_letters(db_path: Path) -> list[tuple[str, str, str]]:
    """(event uid, code, reason) of the provider's dead letters not yet delivered, read straight from SQLite."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT e.uid, d.code, d.reason FROM dead_letters d JOIN events e ON e.pk = d.event_pk "
                          "WHERE d.provider = ?", (PROVIDER,)).fetchall()
    finally:
        db.close()


def session_boundaries(db_path: Path) -> set[tuple[str, str]]:
    """Every session start and end the daemon stored, as the collector names them."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT category, session_id FROM events "
                          "WHERE category IN ('session_start', 'session_end')").fetchall()
    finally:
        db.close()
    return {("user" if category == "session_start" else "session_end", session_id) for category, session_id in rows}


def requeue(daemon: Daemon) -> tuple[int, str]:
    """`engine-bridge dead-letters --requeue`, as an operator runs it beside the running daemon."""
    done = subprocess.run([sys.executable, "-m", "bridge", "dead-letters", "--requeue", "--config",
                           str(daemon.config_path), "--data-dir", str(daemon.data_dir)],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=60)
    return done.returncode, (done.stdout + done.stderr).strip()


class FaultRun:
    """One run's parts: the sandbox, the daemon, the client, and what was done to them."""

    def __init__(self, mode: Mode, workdir: Path, rng: random.Random) -> None:
        self.mode = mode
        self.rng = rng
        self.sandbox, self.server = start_sandbox(PROVIDER)
        self.daemon = ga_daemon(workdir, self.server.url)
        self.deliveries = Deliveries(self.sandbox)
        self.fleet = Fleet([ClientSpec(self.daemon.ingress, "faults-c0", mode.fault_events, rng.getrandbits(32),
                                       workdir, rate=mode.fault_events / SEND_SECONDS[mode.name], users=USERS,
                                       session_every=SESSION_EVERY_BATCHES, give_up_s=SEND_SECONDS[mode.name] * 10)])
        self.injected: Counter[str] = Counter()  # requests each kind of fault was queued for
        self.fired: Counter[str] = Counter()  # requests it hit, counted when the faults are cleared
        self.kills = 0
        self.dead_lettered = 0

    def fresh(self, predicate: Callable[[], Any]) -> Callable[[], Any]:
        """`predicate`, asked after reading what the sandbox accepted since the last look."""
        def asked() -> Any:
            self.deliveries.poll()
            return predicate()
        return asked

    def requests_seen(self) -> int:
        counts = self.sandbox.counts()
        return sum(counts["routes"].get("events", {}).values()) + counts["faults_fired"].get("events", 0)

    def drive(self, report: Report) -> bool:
        """Send, with fault episodes and kills at seeded points of the acknowledged count; False if the
        daemon did not come back from a kill."""
        kinds = [KINDS[i % len(KINDS)] for i in range(EPISODES[self.mode.name])]
        self.rng.shuffle(kinds)
        actions = kinds + ["kill"] * self.mode.fault_kills
        self.rng.shuffle(actions)
        events = self.mode.fault_events
        points = sorted(self.rng.sample(range(events // 20, events * 9 // 10), len(actions)))
        for action, point in zip(actions, points):
            poll_until(self.fresh(lambda: self.fleet.total(ACKED) >= point or not self.fleet.running()),
                       SEND_SECONDS[self.mode.name] * 10)
            if action != "kill":
                fault = self.sandbox.faults.add(make_fault(action, self.rng))
                self.injected[action] += fault.count or 0
                continue
            seen = self.requests_seen()
            poll_until(self.fresh(lambda: self.requests_seen() > seen), KILL_WAIT_S)  # delivery is under way
            time.sleep(self.rng.uniform(0, 0.05))
            self.daemon.kill()
            self.kills += 1
            failed = restart_error(self.daemon)
            if not report.check(f"the daemon restarts after kill {self.kills}", not failed, failed):
                return False
        self.fleet.join(SEND_SECONDS[self.mode.name] * 10)
        return True

    def clear_faults(self) -> None:
        """Faults off; what hit a request, by kind, is what was queued less what is still pending."""
        pending = self.sandbox.faults.pending()
        self.fired = Counter({kind: self.injected[kind] - sum(f["remaining"] or 0 for f in pending
                                                              if fault_kind(f) == kind) for kind in KINDS})
        self.sandbox.faults.clear()

    def undelivered(self, acked: set[str]) -> str:
        return f"{len(acked - self.deliveries.copies.keys())} not delivered"

    def settle(self, report: Report, acked: set[str]) -> None:
        """Every acked event delivered or dead-lettered; faults off; dead letters re-queued and delivered."""
        db = self.daemon.db_path
        waited(report, "every acknowledged event delivered or dead-lettered",
               self.fresh(lambda: acked <= self.deliveries.copies.keys() | {uid for uid, _, _ in dead_letters(db)}),
               SETTLE_S + SLOW_S + len(acked) / MIN_DELIVERY_PER_S,
               lambda: f"{self.undelivered(acked)}; log ends: {log_tail(self.daemon, 3)}")
        self.clear_faults()
        fired = self.fired
        letters = dead_letters(db)
        self.dead_lettered = len(letters)
        wrong = [letter for letter in letters if letter[1] != "rejected"]
        report.check("dead letters come only from injected 400s", not wrong and (fired["400"] > 0 or not letters),
                     f"{len(letters)} dead letter(s), {fired['400']} 400(s) fired; e.g. {(wrong or letters)[:2]}")
        code, output = requeue(self.daemon)
        report.check("`engine-bridge dead-letters --requeue` re-queues them all",
                     code == 0 and f"re-queued {len(letters)} dead letter(s)" in output,
                     f"exit {code}: {output[-400:]}")
        waited(report, "re-queued dead letters are delivered",
               self.fresh(lambda: acked <= self.deliveries.copies.keys() and not dead_letters(db)), SETTLE_S,
               lambda: f"{self.undelivered(acked)}, {len(dead_letters(db))} dead letter(s) left")
        sessions = session_boundaries(db)
        waited(report, "every session start and end delivered",
               self.fresh(lambda: sessions <= self.deliveries.sessions.keys()), SETTLE_S,
               lambda: f"{len(sessions - self.deliveries.sessions.keys())} of {len(sessions)} missing")
        report.figures["session boundaries"] = len(sessions)

    def judge(self, report: Report, acked: set[str]) -> None:
        """Lost events, duplicates beyond their causes, events the sandbox refused."""
        self.deliveries.poll()
        copies, fired = self.deliveries.copies, self.fired
        duplicates = sum(n - 1 for i, n in copies.items() if i in acked)
        bound = (self.kills + fired["slow"]) * GameAnalytics.batch_size
        lost = len(acked - copies.keys())
        report.figures.update({
            "events": len(acked),
            "faults injected (fired/queued)": {k: f"{fired[k]}/{self.injected[k]}" for k in KINDS},
            "kills": self.kills, "dead-lettered, then re-queued": self.dead_lettered,
            "delivered": len(acked & copies.keys()), "duplicates at provider": duplicates, "lost": lost,
        })
        report.check("no acknowledged event lost", lost == 0, f"{lost} never reached the sandbox")
        report.check("duplicates at the provider only from kills and late answers", duplicates <= bound,
                     f"{duplicates} duplicate(s); at most {bound} from {self.kills} kill(s) and {fired['slow']} "
                     "slow answer(s)")
        rejected = self.sandbox.rejected(limit=3)
        report.check("the sandbox rejected no event (all were valid)", not rejected, str(rejected)[:400])
        report.check("the sandbox journal kept up (no record dropped unread)", self.deliveries.missed == 0,
                     f"{self.deliveries.missed} records dropped")


def run(mode: Mode, workdir: Path) -> Report:
    report = Report("faults")
    seed = scenario_seed("faults")
    report.figures["seed"] = seed
    logging.getLogger("bridge.sandbox").setLevel(logging.ERROR)  # injected faults are not news here
    scenario = FaultRun(mode, workdir, random.Random(seed))
    try:
        scenario.daemon.start()
        scenario.fleet.start()
        if not scenario.drive(report):
            return report
        report_clients(report, scenario.fleet.results())
        acked = {f"{device}.{seq}" for device, flags in scenario.fleet.acked().items()
                 for seq, on in enumerate(flags) if on}
        scenario.settle(report, acked)
        stop_cleanly(report, scenario.daemon)
        scenario.judge(report, acked)
        no_tracebacks(report, scenario.daemon)
        return report
    finally:
        scenario.fleet.stop()
        end_daemon(scenario.daemon)
        scenario.server.stop()
