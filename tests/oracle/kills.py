"""kill -9 under load: client processes send batches while the daemon is SIGKILLed and restarted at seeded
moments; afterwards every event the daemon acknowledged must be in the store exactly once.

This is the promise of README's "What an acknowledgement promises", tested the way a crash tests it: no
clean shutdown, commits cut at any point, clients that resend what was not acknowledged on a new socket.
Kills fall at seeded points of the acknowledged total, each at a seeded kind of moment (below), so a run
is replayed by its seed as closely as timing allows.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from tests.harness import Daemon
from tests.oracle.common import Mode, Report, no_tracebacks, scenario_seed
from tests.oracle.ledger import (ACKED, UNAVAILABLE, ClientSpec, Fleet, WalIndex, audit_store, end_daemon, log_tail,
                                 report_audit, report_clients, restart_error, stop_cleanly,
                                 sum_results)

# Sending is paced over this long, so the kills spread over the run and the machine stays usable.
SEND_SECONDS = {"quick": 10.0, "long": 90.0}
# Where a kill falls once its point is reached, and how likely each is:
#   commit: the moment SQLite's wal-index shows a commit, before the daemon could send its acks (the ack is
#           lost, the events are stored: the client's resend must come back as duplicates);
#   in_flight: within 2 ms of a request being sent (before its commit, or during it);
#   anytime: within 30 ms (a lull, a checkpoint, a session request).
KILL_MOMENTS = (("commit", 0.4), ("in_flight", 0.4), ("anytime", 0.2))
IN_FLIGHT_JITTER_S = 0.002
ANYTIME_JITTER_S = 0.03
MOMENT_WAIT_S = 2.0  # at most this long for a request in flight or a commit; then the kill falls anyway
CLIENT_TIMEOUT_MS = 2000
SESSION_EVERY_BATCHES = 25
POLL_S = 0.002
# The store cap would trim undelivered events once the store outgrows it (1M events pass 256 MB): a
# trimmed event is gone by design, not lost, so the cap is set out of reach here.
CONFIG = "[store]\ncap_mb = 100000\n"


def await_commit(db_path: Path) -> None:
    """Return the moment the WAL gains frames: a commit, whose acks the daemon is about to send. A busy poll
    (a microsecond a look), so the kill that follows often beats the replies. The frame count drops to 0
    when a write restarts the WAL after a full checkpoint; the commit is the rise after that."""
    wal = WalIndex(db_path)
    try:
        last = wal.frames()[0]
        until = time.monotonic() + MOMENT_WAIT_S
        while time.monotonic() < until:
            frames = wal.frames()[0]
            if frames > last:
                return
            last = frames
    finally:
        wal.close()


def kill_at(daemon: Daemon, fleet: Fleet, point: int, moment: str, jitter: float) -> None:
    """Once the clients' acks reach `point`, SIGKILL the daemon at a moment of the given kind."""
    while fleet.total(ACKED) < point and fleet.running():
        time.sleep(POLL_S)
    if moment == "commit":
        await_commit(daemon.db_path)
    else:
        until = time.monotonic() + MOMENT_WAIT_S
        while moment == "in_flight" and not fleet.any_in_flight() and time.monotonic() < until:
            time.sleep(POLL_S / 10)
        time.sleep(jitter)
    daemon.kill()


def run(mode: Mode, workdir: Path) -> Report:
    report = Report("kills")
    seed = scenario_seed("kills")
    rng = random.Random(seed)
    daemon = Daemon(workdir, config=CONFIG)
    shares = [mode.events // mode.clients + (i < mode.events % mode.clients) for i in range(mode.clients)]
    rate = mode.events / SEND_SECONDS[mode.name] / mode.clients
    specs = [ClientSpec(daemon.ingress, f"kills-c{i}", share, rng.getrandbits(32), workdir, CLIENT_TIMEOUT_MS,
                        rate=rate, session_every=SESSION_EVERY_BATCHES, give_up_s=SEND_SECONDS[mode.name] * 10)
             for i, share in enumerate(shares)]
    kill_points = sorted(rng.sample(range(mode.events // 20, mode.events * 19 // 20), mode.kills))
    moments = rng.choices([m for m, _ in KILL_MOMENTS], [w for _, w in KILL_MOMENTS], k=mode.kills)
    jitters = [rng.uniform(0, IN_FLIGHT_JITTER_S if m == "in_flight" else ANYTIME_JITTER_S) for m in moments]
    fleet = Fleet(specs)
    kills = 0
    report.figures["seed"] = seed
    try:
        daemon.start()
        started = time.monotonic()
        fleet.start()
        failed = ""
        for point, moment, jitter in zip(kill_points, moments, jitters):
            kill_at(daemon, fleet, point, moment, jitter)
            kills += 1
            failed = restart_error(daemon)
            if failed:
                break
        if not report.check("the daemon restarts after every kill -9", not failed, f"after kill {kills}: {failed}"):
            return report
        fleet.join(SEND_SECONDS[mode.name] * 10)
        elapsed = time.monotonic() - started
        stop_cleanly(report, daemon)
        results = fleet.results()
        report_clients(report, results)
        unavailable = fleet.total(UNAVAILABLE)
        report.check("no `unavailable` reply (the store never failed)", unavailable == 0,
                     f"{unavailable} `unavailable` replies; log ends: {log_tail(daemon)}")
        audit = audit_store(daemon.db_path, fleet.acked())
        report.figures.update({
            "events sent": sum(shares), "batches acknowledged": sum_results(results, "batches"), "kills": kills,
            "kill moments": {m: moments[:kills].count(m) for m, _ in KILL_MOMENTS},
            "resent batches": sum_results(results, "resent_batches"),
            "resent events": sum_results(results, "resent_events"),
            "acked as duplicates on resend (stored, ack lost at a kill)": sum_results(results, "duplicates_acked"),
            "session requests": sum_results(results, "sessions"),
            "hello_required after a restart": sum_results(results, "hello_required"),
        })
        report_audit(report, audit)
        report.figures.update({"elapsed": f"{elapsed:.1f} s", "events/s": round(audit.acked / elapsed),
                               "clients paced at (events/s in all)": round(rate * mode.clients)})
        report.check(f"{mode.kills} kills made", kills == mode.kills, f"{kills} made")
        no_tracebacks(report, daemon)
        return report
    finally:
        fleet.stop()
        end_daemon(daemon)
