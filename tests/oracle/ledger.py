"""Client processes that keep a ledger of what the daemon acknowledged, and the audit of a store against it.

The oracle scenarios judge the daemon by its promise, "an acknowledged event is stored once", so each
client behaves as protocol.md asks a binding to (hello on every connection, one batch in flight, resend the
unacknowledged batch with the same ids and times after a silence or an `unavailable`) and writes down each
acknowledged batch the moment its ack arrives. The ledger is a file of `first_seq count` lines: event ids are
`<device_id>.<seq>`, so a range names its ids exactly and a million of them stay small.
"""

from __future__ import annotations

import json
import mmap
import multiprocessing
import random
import sqlite3
import struct
import subprocess
import time
from dataclasses import dataclass, field, fields
from multiprocessing.sharedctypes import SynchronizedArray
from pathlib import Path
from typing import Any
from collections.abc import Callable

from bridge.client import Client, NoReply
from tests.harness import Daemon, make_event
from tests.oracle.common import Report, last_traceback
from tests.sandboxes import wait_until

# Slots of a client's shared counters, read by the scenario while the client runs; IN_FLIGHT is 1 while
# an `events` request waits for its reply (a kill then cuts into a commit).
ACKED, UNAVAILABLE, NO_REPLY, IN_FLIGHT = range(4)
BATCH_SIZES = ((0.25, 1, 1), (0.35, 2, 20), (0.40, 21, 200))  # (share, smallest, largest): a mix of 1..200
CATEGORIES = ("design", "business", "progression", "resource", "error", "ads")  # every one GameAnalytics takes
MAX_VIOLATIONS_KEPT = 20
# After `unavailable` ("resend later", protocol.md) a binding backs off: 50 ms doubling to 1 s.
RETRY_PAUSE_S, RETRY_PAUSE_CAP_S = 0.05, 1.0


@dataclass(frozen=True)
class ClientSpec:
    """What one client process sends, and where it writes its ledger and its result."""

    endpoint: str
    device_id: str
    events: int
    seed: int
    workdir: Path
    timeout_ms: int = 2000  # no reply within this: the daemon is taken for dead, reconnect and resend
    rate: float | None = None  # events per second; None: as fast as the daemon answers
    users: int = 1  # >1: events name users `<device>-u<k>` (a dedicated server), one provider request each
    pad: int = 0  # characters of filler in each event, to make the store grow faster
    session_every: int = 0  # about one session_end + session_start per this many batches; 0: never
    give_up_s: float = 600.0

    @property
    def ledger_path(self) -> Path:
        return self.workdir / f"{self.device_id}.ledger"

    @property
    def result_path(self) -> Path:
        return self.workdir / f"{self.device_id}.result.json"


@dataclass
class Tally:
    """What a client saw; `counters` (shared with the scenario) mirror the live figures."""

    device_id: str
    counters: Any = None  # SynchronizedArray of the slots above, or None in-process
    acked: int = 0
    batches: int = 0
    resent_batches: int = 0
    resent_events: int = 0
    duplicates_acked: int = 0  # events acked as duplicates on a resend: stored at a kill, their ack lost
    unavailable: int = 0
    no_reply: int = 0
    hello_required: int = 0  # a request that reached a restarted daemon on the old connection
    sessions: int = 0
    violations: list[str] = field(default_factory=list)
    violation_count: int = 0
    gave_up: bool = False

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "counters"}

    def bump(self, slot: int, name: str, amount: int = 1) -> None:
        setattr(self, name, getattr(self, name) + amount)
        if self.counters is not None:
            self.counters[slot] += amount

    def in_flight(self, flag: bool) -> None:
        if self.counters is not None:
            self.counters[IN_FLIGHT] = int(flag)

    def violate(self, what: str) -> None:
        self.violation_count += 1
        if len(self.violations) < MAX_VIOLATIONS_KEPT:
            self.violations.append(what)


class Sender:
    """One device's connection to a daemon that may die at any moment: a fresh socket and a `hello` after
    every silence, as a binding does."""

    def __init__(self, endpoint: str, device_id: str, timeout_ms: int, tally: Tally) -> None:
        self.endpoint = endpoint
        self.device_id = device_id
        self.timeout_ms = timeout_ms
        self.tally = tally
        self.client: Client | None = None

    def request(self, msg: dict[str, Any], deadline: float) -> dict[str, Any] | None:
        """The reply, or None when none came in time (the socket is then dropped: next time, a new one)."""
        if self.client is None:
            self._connect(deadline)
        assert self.client is not None
        try:
            return self.client.request(dict(msg))
        except NoReply:
            self.tally.bump(NO_REPLY, "no_reply")
            self.close()
            return None

    def _connect(self, deadline: float) -> None:
        """Hello until welcome, backing off from 50 ms to 1 s; TimeoutError past the deadline."""
        pause = 0.05
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.device_id}: no welcome from {self.endpoint}")
            self.client = self.client or Client(self.endpoint, min(self.timeout_ms, 1000), self.device_id)
            try:
                reply = self.client.hello()
            except NoReply:
                self.close()
                reply = None
            if reply is not None and reply.get("type") == "welcome":
                self.client.timeout_ms = self.timeout_ms
                return
            if reply is not None and reply.get("code") == "unavailable":
                self.tally.bump(UNAVAILABLE, "unavailable")
            elif reply is not None:
                self.tally.violate(f"hello answered {reply}")
            time.sleep(pause)
            pause = min(1.0, pause * 2)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def submit(sender: Sender, batch: list[dict[str, Any]], deadline: float) -> bool:
    """Send one `events` batch until an ack covers it; False if the deadline passed first.

    The rules of protocol.md an ack must keep are checked here: stored + duplicates is the batch, nothing
    valid is rejected, and duplicates appear only after a reply went missing (an `unavailable` promises
    that nothing was stored, and a first send has nothing to duplicate).
    """
    tally = sender.tally
    maybe_stored = False
    attempts = 0
    pause = RETRY_PAUSE_S
    while time.monotonic() < deadline:
        if attempts:
            tally.resent_batches += 1
            tally.resent_events += len(batch)
        attempts += 1
        tally.in_flight(True)
        try:
            reply = sender.request({"type": "events", "events": batch}, deadline)
        except TimeoutError:  # no welcome before the deadline
            return False
        finally:
            tally.in_flight(False)
        if reply is None:
            maybe_stored = True
            continue
        if reply.get("code") == "hello_required":  # protocol.md: reconnect, hello again, resend
            tally.hello_required += 1
            sender.close()
            continue
        if reply.get("type") == "error":
            if reply.get("code") == "unavailable":
                tally.bump(UNAVAILABLE, "unavailable")
            else:
                tally.violate(f"events answered {reply.get('code')}: {reply.get('message')}")
            time.sleep(pause)
            pause = min(RETRY_PAUSE_CAP_S, pause * 2)
            continue
        stored, duplicates = reply.get("stored", 0), reply.get("duplicates", 0)
        if reply.get("type") != "ack" or stored + duplicates != len(batch) or reply.get("rejected"):
            tally.violate(f"ack does not cover the batch of {len(batch)}: {str(reply)[:300]}")
        elif duplicates and not maybe_stored:
            tally.violate(f"{duplicates} duplicate(s) in the ack of a batch never stored before "
                          f"(first send, or resent after `unavailable`): {batch[0]['id']}")
        if reply.get("invalid"):
            tally.violate(f"valid events listed invalid: {str(reply['invalid'])[:300]}")
        tally.duplicates_acked += duplicates
        return True
    return False


def session_cycle(sender: Sender, user_id: str | None, deadline: float) -> None:
    """session_end then session_start of a user (None: the hello user), each sent once (a resend would open
    another session); a lost reply is fine, any answer but `session` (or `unavailable`) is not. Called after
    an acked batch that held events of this user, so a session is open."""
    for kind in ("session_end", "session_start"):
        reply = sender.request({"type": kind, **({"user_id": user_id} if user_id else {})}, deadline)
        sender.tally.sessions += 1
        if reply is None or reply.get("type") == "session":
            continue
        if reply.get("code") == "hello_required":
            sender.tally.hello_required += 1
            sender.close()
        elif reply.get("code") == "unavailable":
            sender.tally.bump(UNAVAILABLE, "unavailable")
        else:
            sender.tally.violate(f"{kind} answered {str(reply)[:200]}")


class EventMaker:
    """Valid events of every GameAnalytics category, with ids `<device_id>.<seq>`; each carries its id in an
    `oracle_id` field too, which reaches GameAnalytics in `custom_fields` so the sandbox's records name it."""

    def __init__(self, device_id: str, users: int, pad: int) -> None:
        self.device_id = device_id
        self.templates = [make_event(c) for c in CATEGORIES]
        self.users = [f"{device_id}-u{k}" for k in range(users)] if users > 1 else []
        self.pad = "x" * pad

    def batch(self, first_seq: int, count: int) -> list[dict[str, Any]]:
        now = int(time.time() * 1000)
        out = []
        for seq in range(first_seq, first_seq + count):
            template = self.templates[seq % len(self.templates)]
            event_id = f"{self.device_id}.{seq}"
            fields = {**template["fields"], "oracle_id": event_id}
            if self.pad:
                fields["pad"] = self.pad
            event: dict[str, Any] = {"id": event_id, "category": template["category"], "ts": now, "fields": fields}
            if self.users:
                event["user_id"] = self.user_of(seq)
            out.append(event)
        return out

    def user_of(self, seq: int) -> str | None:
        """The user an event names; None: the hello user."""
        return self.users[seq % len(self.users)] if self.users else None


def batch_size(rng: random.Random) -> int:
    roll = rng.random()
    for share, low, high in BATCH_SIZES:
        if roll < share:
            return rng.randint(low, high)
        roll -= share
    return BATCH_SIZES[-1][2]


def client_main(spec: ClientSpec, counters: SynchronizedArray) -> None:
    """A client process: send `spec.events` in batches, ledger each ack, write the tally at the end."""
    rng = random.Random(spec.seed)
    tally = Tally(spec.device_id, counters)
    sender = Sender(spec.endpoint, spec.device_id, spec.timeout_ms, tally)
    maker = EventMaker(spec.device_id, spec.users, spec.pad)
    deadline = time.monotonic() + spec.give_up_s
    next_at = time.monotonic()
    seq = 0
    try:
        with open(spec.ledger_path, "w") as ledger:
            while seq < spec.events:
                count = min(batch_size(rng), spec.events - seq)
                if not submit(sender, maker.batch(seq, count), deadline):
                    tally.gave_up = True
                    break
                ledger.write(f"{seq} {count}\n")
                ledger.flush()
                tally.batches += 1
                tally.bump(ACKED, "acked", count)
                seq += count
                if spec.session_every and rng.randrange(spec.session_every) == 0:
                    session_cycle(sender, maker.user_of(seq - 1), deadline)
                if spec.rate:
                    next_at = max(next_at, time.monotonic() - 0.5) + count / spec.rate
                    time.sleep(max(0.0, next_at - time.monotonic()))
    except TimeoutError:
        tally.gave_up = True
    finally:
        sender.close()
        spec.result_path.write_text(json.dumps(tally.to_json()))


class Fleet:
    """Client processes (spawned, so no ZeroMQ state crosses a fork), their live counters and results."""

    def __init__(self, specs: list[ClientSpec]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.specs = specs
        self.counters = [ctx.Array("q", 4, lock=False) for _ in specs]
        self.procs = [ctx.Process(target=client_main, args=(spec, counters), name=spec.device_id, daemon=True)
                      for spec, counters in zip(specs, self.counters)]

    def start(self) -> Fleet:
        for proc in self.procs:
            proc.start()
        return self

    def total(self, slot: int) -> int:
        return sum(c[slot] for c in self.counters)

    def any_in_flight(self) -> bool:
        return any(c[IN_FLIGHT] for c in self.counters)

    def running(self) -> bool:
        return any(p.is_alive() for p in self.procs)

    def join(self, timeout_s: float) -> None:
        """Wait for every client to finish; past the timeout the stragglers are ended (and have no result)."""
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        self.stop()

    def stop(self) -> None:
        """End the clients still running (each by its own process)."""
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join(2)

    def results(self) -> list[dict[str, Any]]:
        """Each client's tally; a client that died without one is listed as such."""
        out = []
        for spec, proc in zip(self.specs, self.procs):
            if spec.result_path.exists():
                out.append(json.loads(spec.result_path.read_text()))
            else:
                out.append({"device_id": spec.device_id, "violations": [f"no result (exit code {proc.exitcode})"],
                            "violation_count": 1, "gave_up": True})
        return out

    def acked(self) -> dict[str, bytearray]:
        return {spec.device_id: read_ledger(spec.ledger_path, spec.events) for spec in self.specs}


def sum_results(results: list[dict[str, Any]], key: str) -> int:
    return sum(int(r.get(key, 0)) for r in results)


def report_clients(report: Report, results: list[dict[str, Any]]) -> None:
    """The checks every scenario makes of its clients: each finished, and no ack broke protocol.md."""
    gave_up = [r["device_id"] for r in results if r.get("gave_up")]
    report.check("every client got all its batches acknowledged", not gave_up, f"gave up: {', '.join(gave_up)}")
    violations = [f"{r['device_id']}: {v}" for r in results for v in r.get("violations", [])]
    report.check("every reply kept protocol.md (acks cover their batch, no duplicate before a lost reply)",
                 not violations, f"{sum_results(results, 'violation_count')} violation(s): {violations[:5]}")


def read_ledger(path: Path, events: int) -> bytearray:
    """The client's acknowledged seqs as flags (1 = acked); a missing ledger acked nothing."""
    flags = bytearray(events)
    if path.exists():
        for line in path.read_text().splitlines():
            first, count = map(int, line.split())
            flags[first:first + count] = b"\x01" * count
    return flags


@dataclass
class Audit:
    """A store read against the ledgers: what was acknowledged and where it is."""

    acked: int = 0
    lost: int = 0  # acknowledged, not in the store
    stored_twice: int = 0  # one id in more than one row
    stored_unacked: int = 0  # in the store, never acknowledged (in flight when the daemon died: allowed)
    first_lost: list[str] = field(default_factory=list)


def audit_store(db_path: Path, acked: dict[str, bytearray]) -> Audit:
    """Count every ledger's ids in the SQLite store (read with the stdlib driver, not the daemon's code)."""
    stored = {device: bytearray(len(flags)) for device, flags in acked.items()}
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        for device, flags in stored.items():
            for (uid,) in db.execute("SELECT uid FROM events WHERE device_id = ?", (device,)):
                head, _, seq = uid.rpartition(".")
                if head == device and seq.isdigit() and int(seq) < len(flags):
                    flags[int(seq)] = min(255, flags[int(seq)] + 1)
    finally:
        db.close()
    audit = Audit()
    for device, flags in acked.items():
        counts = stored[device]
        for seq, (was_acked, copies) in enumerate(zip(flags, counts)):
            audit.acked += was_acked
            audit.stored_twice += copies > 1
            audit.stored_unacked += bool(copies) and not was_acked
            if was_acked and not copies:
                audit.lost += 1
                if len(audit.first_lost) < 5:
                    audit.first_lost.append(f"{device}.{seq}")
    return audit


def report_audit(report: Report, audit: Audit) -> None:
    report.figures.update({"acknowledged": audit.acked, "lost": audit.lost, "stored twice": audit.stored_twice,
                           "stored, never acknowledged": audit.stored_unacked})
    report.check("every acknowledged event is in the store", audit.lost == 0,
                 f"{audit.lost} acknowledged event(s) missing, e.g. {', '.join(audit.first_lost)}")
    report.check("no event is stored twice", audit.stored_twice == 0, f"{audit.stored_twice} id(s) in 2+ rows")


def poll_until(predicate: Callable[[], Any], timeout_s: float) -> bool:
    """Whether a condition came true within a time (polled, never a fixed sleep)."""
    try:
        wait_until(predicate, timeout_s)
        return True
    except AssertionError:
        return False


def waited(report: Report, name: str, predicate: Callable[[], Any], timeout_s: float,
           detail: Callable[[], str] = lambda: "") -> bool:
    """A check that a condition comes true within a time."""
    came = poll_until(predicate, timeout_s)
    return report.check(name, came, "" if came else f"not within {timeout_s:g} s. {detail()}".strip())


def stop_cleanly(report: Report, daemon: Daemon, when: str = "") -> None:
    """SIGTERM must stop the daemon with exit code 0 within the harness's wait."""
    try:
        code: int | str = daemon.stop()
    except subprocess.TimeoutExpired:
        daemon.kill()
        code = "none: still running after 5 s, killed"
    report.check("SIGTERM exits 0" + (f" ({when})" if when else ""), code == 0,
                 f"exit code {code}; {last_traceback(daemon.log())}")


def restart_error(daemon: Daemon) -> str:
    """Start the daemon again on its data dir and ports; "" once it answers, else why it did not."""
    try:
        daemon.start()
        return ""
    except (RuntimeError, TimeoutError) as exc:  # their message holds the whole log: keep its first line
        return f"{str(exc).splitlines()[0]} {last_traceback(daemon.log())}"


class WalIndex:
    """SQLite's wal-index header in the -shm file (wal.c: mxFrame at byte 16, nBackfill at byte 96), read
    through a read-only map: the frames the WAL holds, and how many of them a checkpoint copied into the
    database. Reading it neither touches the database nor checkpoints, and costs a microsecond, so a busy
    poll sees a commit the moment it happens. FileNotFoundError when there is no -shm file."""

    SIZE = 136

    def __init__(self, db_path: Path) -> None:
        with open(f"{db_path}-shm", "rb") as fh:
            self.map = mmap.mmap(fh.fileno(), self.SIZE, access=mmap.ACCESS_READ)

    def frames(self) -> tuple[int, int]:
        """(frames in the WAL, frames checkpointed); retried while the two header copies disagree."""
        for _ in range(10_000):
            raw = self.map[:self.SIZE]
            if raw[:48] == raw[48:96]:
                return struct.unpack_from("=I", raw, 16)[0], struct.unpack_from("=I", raw, 96)[0]
        raise RuntimeError("the wal-index header never read consistently")

    def close(self) -> None:
        self.map.close()


def log_tail(daemon: Daemon, lines: int = 6) -> str:
    return " | ".join(daemon.log().strip().splitlines()[-lines:])


def end_daemon(daemon: Daemon) -> None:
    """Kill the daemon if it still runs: what every scenario's `finally` does."""
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.kill()
