"""A full disk: the daemon's data dir is a 16 MB tmpfs that a filler file eats while a client sends.

While the disk is full, writes must be answered `unavailable` (never a hang, never an ack for what was not
stored) and, once the filler is gone, the resends must be stored. Then the daemon must still be whole:
SIGHUP republishes `[configs]`, WAL checkpoints run in lulls, SIGTERM exits 0. Last, it must start again
on a disk with little room left, and answer `unavailable` to writes rather than refuse to start: a game
machine's disk fills up, and the daemon that then keeps its published configs and its acknowledged
events, and takes writes again when room comes back, is the useful one. The episode is the same in the
quick and the long mode: a disk fills up once, and what matters is what the daemon is like afterwards.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bridge.client import Client, NoReply, recv_publication, subscribe
from bridge.protocol import LOCAL_CONFIG_TOPIC
from tests.harness import Daemon
from tests.oracle.common import Mode, Report, no_tracebacks, scenario_seed
from tests.oracle.ledger import (ACKED, NO_REPLY, UNAVAILABLE, ClientSpec, EventMaker, Fleet, Sender, Tally,
                                 WalIndex, audit_store, end_daemon, last_traceback, log_tail, report_audit,
                                 report_clients, restart_error, stop_cleanly, submit, sum_results,
                                 waited)

DISK = "16m"
CONFIG = "[configs]\noracle_round = 1\n"
CLIENT_EVENTS = 6000
PAD = 500  # characters per event: the store grows fast enough to meet the full disk within a second
FILL_AFTER = CLIENT_EVENTS // 8  # acknowledged events before the filler starts
FILL_CHUNK = 1 << 20
FILL_PAUSE_S = 0.02  # between chunks, so the client's writes interleave with the filling
# The disk stays full this long after the first `unavailable`: long enough for the client's backoff to
# leave lulls, in which the daemon tries to checkpoint the WAL onto the full disk.
FULL_FOR_S = 3.0
TIMEOUT_MS = 5000  # a reply later than this is a hang: nothing here kills the daemon
# Room left for the restart: SQLite's 32 KiB -shm, and not one WAL page more. Measured on tmpfs: with less,
# SQLite cannot even read a WAL database ("disk I/O error"); with this, it reads and every write fails with
# "database or disk is full", so a daemon can come up, serve what it has and answer `unavailable`.
LEAVE_BYTES = 32 * 1024
BIG_BATCH, BIG_PAD, BIG_TRIES = 50, 4000, 8  # ~200 KB batches, up to 8 of them, on the nearly full disk
PROBE = "disk-probe"
CHECKPOINT_BATCH = 10


def mount_tmpfs(where: Path) -> str:
    """Mount a small tmpfs; "" on success, else why not (the check then fails with it)."""
    if os.geteuid() != 0:
        return f"mounting a tmpfs needs root (euid {os.geteuid()}); CI runs this scenario as root"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    return "" if done.returncode == 0 else f"mount -t tmpfs failed ({done.returncode}): {done.stderr.strip()}"


def unmount(where: Path) -> None:
    if subprocess.run(["umount", str(where)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)  # still busy: detach it now anyway


def fill(path: Path, leave: int = 0, pause_s: float = 0.0) -> int:
    """Write `path` until the disk refuses a byte more, then give `leave` bytes back; returns its size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    size = 0
    try:
        for chunk in (FILL_CHUNK, 4096, 1):
            block = bytes(chunk)
            while True:
                try:
                    size += os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                time.sleep(pause_s)
        os.ftruncate(fd, max(0, size - leave))
    finally:
        os.close(fd)
    return size - leave


def check_sighup(report: Report, daemon: Daemon) -> None:
    """Edit `[configs]`, put the file's mtime back (so the daemon's mtime poll cannot notice), send SIGHUP:
    only the signal can make the new version appear on the publish socket."""
    sub = subscribe(daemon.publish, LOCAL_CONFIG_TOPIC)
    try:
        first = recv_publication(sub, 3000)
        if not report.check("a new subscriber gets config/local at once", first is not None, "nothing in 3 s"):
            return
        assert first is not None
        path = daemon.config_path
        before = path.stat()
        path.write_text(path.read_text().replace("oracle_round = 1", "oracle_round = 2"))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        seen = []
        while time.monotonic() < deadline:
            publication = recv_publication(sub, max(1, int((deadline - time.monotonic()) * 1000)))
            if publication is None:
                break
            seen.append((publication["version"], publication["values"]))
            if publication["values"].get("oracle_round") == 2 and publication["version"] > first["version"]:
                break
        report.check("SIGHUP republishes [configs] with a new version",
                     bool(seen) and seen[-1][1].get("oracle_round") == 2,
                     f"before: version {first['version']} {first['values']}; after SIGHUP, in 5 s: {seen}; "
                     f"{last_traceback(daemon.log())}")
    finally:
        sub.close(0)


def check_checkpoint(report: Report, daemon: Daemon, probe: Sender, maker: EventMaker, acked: bytearray) -> None:
    """A committed batch, then a lull: the daemon must copy the WAL into the database by itself."""
    stored = submit(probe, maker.batch(0, CHECKPOINT_BATCH), time.monotonic() + 10)
    if stored:
        acked[:CHECKPOINT_BATCH] = b"\x01" * CHECKPOINT_BATCH
    if not report.check("a batch is acknowledged after the disk-full episode", stored, "no ack in 10 s"):
        return
    wal = WalIndex(daemon.db_path)

    def copied_all() -> bool:
        frames, copied = wal.frames()
        return frames > 0 and copied == frames

    try:
        waited(report, "a WAL checkpoint follows a lull", copied_all, 5,
               lambda: "(frames in the WAL, frames checkpointed) = ({}, {}); ".format(*wal.frames())
               + last_traceback(daemon.log()))
    finally:
        wal.close()


def check_small_disk_restart(report: Report, daemon: Daemon, filler: Path, probe: Sender, maker: EventMaker,
                             acked: bytearray) -> None:
    """Restart with room for SQLite's -shm and hardly more: it must come up and answer writes (`hello`
    included, which records the device) with `unavailable`, then take them once there is room again."""
    fill(filler, leave=LEAVE_BYTES)
    failed = restart_error(daemon)
    if not report.check("the daemon starts on a nearly full disk", not failed, failed):
        return
    refused: list[int] = []
    answers: list[str] = []
    with Client(daemon.ingress, TIMEOUT_MS, PROBE) as client:
        try:
            answers.append("hello: " + answer_of(client.hello()))
            for attempt in range(BIG_TRIES):
                first = CHECKPOINT_BATCH + attempt * BIG_BATCH
                reply = client.request({"type": "events", "events": maker.batch(first, BIG_BATCH)})
                answers.append(answer_of(reply))
                if reply.get("type") == "ack":
                    acked[first:first + BIG_BATCH] = b"\x01" * BIG_BATCH
                else:
                    refused.append(first)
                if reply.get("code") in ("unavailable", "hello_required"):
                    break
        except NoReply:
            answers.append("no reply")
    report.check("writes on the nearly full disk are answered `unavailable`", answers[-1:] == ["unavailable"],
                 f"answers: {answers}; {last_traceback(daemon.log())}")
    filler.unlink()
    for first in refused:
        if submit(probe, maker.batch(first, BIG_BATCH), time.monotonic() + 10):
            acked[first:first + BIG_BATCH] = b"\x01" * BIG_BATCH
    report.check("once there is room, the refused batch is stored", all(acked[f] for f in refused),
                 f"no ack for the resend; log ends: {log_tail(daemon, 3)}")
    stop_cleanly(report, daemon, "after the restart on a nearly full disk")


def answer_of(reply: dict[str, Any]) -> str:
    return str(reply.get("code") or reply.get("type"))


def run(mode: Mode, workdir: Path) -> Report:
    report = Report("disk")
    seed = scenario_seed("disk")
    report.figures["seed"] = seed
    data = workdir / "data"
    data.mkdir()
    why = mount_tmpfs(data)
    if not report.check(f"a {DISK} tmpfs is mounted as the data dir", not why, why):
        return report
    daemon = Daemon(workdir, config=CONFIG)
    filler = data / "filler"
    spec = ClientSpec(daemon.ingress, "disk-c0", CLIENT_EVENTS, random.Random(seed).getrandbits(32), workdir,
                      TIMEOUT_MS, rate=CLIENT_EVENTS / 4, pad=PAD, session_every=10, give_up_s=60)
    fleet = Fleet([spec])
    probe_tally = Tally(PROBE)
    probe = Sender(daemon.ingress, PROBE, TIMEOUT_MS, probe_tally)
    maker = EventMaker(PROBE, 1, BIG_PAD)
    probe_acked = bytearray(CHECKPOINT_BATCH + BIG_TRIES * BIG_BATCH)
    try:
        daemon.start()
        fleet.start()
        waited(report, "the client is under way",
               lambda: fleet.total(ACKED) >= FILL_AFTER or not fleet.running(), 20)
        filled = fill(filler, pause_s=FILL_PAUSE_S)
        if waited(report, "writes on a full disk are answered `unavailable`",
                  lambda: fleet.total(UNAVAILABLE) or not fleet.running(), 20,
                  lambda: f"{fleet.total(ACKED)} acked, none refused; log: {log_tail(daemon, 3)}"):
            time.sleep(FULL_FOR_S)  # the episode's length, not a wait for something to happen
        filler.unlink()
        fleet.join(60)
        results = fleet.results()
        report_clients(report, results)
        report.check("every request answered within 5 s (no hang)", fleet.total(NO_REPLY) == 0,
                     f"{fleet.total(NO_REPLY)} requests unanswered; log ends: {log_tail(daemon)}")
        report.figures.update({"filler": f"{filled / 2**20:.1f} MiB",
                               "unavailable replies": sum_results(results, "unavailable"),
                               "resent batches": sum_results(results, "resent_batches")})
        alive = daemon.proc is not None and daemon.proc.poll() is None
        if report.check("the daemon is still running after the episode", alive, f"log ends: {log_tail(daemon)}"):
            check_sighup(report, daemon)
            check_checkpoint(report, daemon, probe, maker, probe_acked)
            probe.close()
            stop_cleanly(report, daemon, "after a disk-full episode")
            check_small_disk_restart(report, daemon, filler, probe, maker, probe_acked)
        probe.close()
        report.check("the probe's acks kept protocol.md", not probe_tally.violations, str(probe_tally.violations[:3]))
        end_daemon(daemon)
        filler.unlink(missing_ok=True)  # room for the audit's own reading of the store
        report_audit(report, audit_store(daemon.db_path, {**fleet.acked(), PROBE: probe_acked}))
        no_tracebacks(report, daemon)
        return report
    finally:
        probe.close()
        fleet.stop()
        end_daemon(daemon)
        unmount(data)
