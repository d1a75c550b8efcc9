"""`engine-bridge tap` against a real daemon: lines for stored, delivered, dead-lettered events and duplicates,
its filters, its JSON lines; and the human lines' words."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from bridge.ops.tap import human, parse_sse
from bridge.sandbox.faults import Fault
from tests.harness import REPO, free_port, make_event
from tests.ops.conftest import OpsDaemon
from tests.sandboxes import settled, wait_until


class Tap:
    """`engine-bridge tap` as a child process; its stdout and stderr lines collected as they come."""

    def __init__(self, http: str, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bridge", "tap", "--http", http, *args], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._collect, args=(stream, lines), daemon=True).start()
        wait_until(lambda: any("connected to" in line for line in self.err) or self.proc.poll() is not None,
                   timeout_s=20, what="the tap connected")
        assert self.proc.poll() is None, self.err

    @staticmethod
    def _collect(stream: IO[str] | None, lines: list[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.append(line.rstrip("\n"))

    def items(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.out)]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


@contextmanager
def tap(ops: OpsDaemon, *args: str) -> Iterator[Tap]:
    running = Tap(ops.http, *args)
    try:
        yield running
    finally:
        running.stop()


def test_tap_shows_stored_delivered_dead_lettered_and_duplicates(ops_daemon: OpsDaemon) -> None:
    good = make_event("design", event_id="tap:good")
    invalid = make_event("design", event_id="tap bad $")
    refused = make_event("progression")
    with tap(ops_daemon, "--json") as everything, tap(ops_daemon, "--category", "progression") as progression, \
            ops_daemon.game("dev-tap") as game:
        game.request({"type": "events", "events": [good, invalid]})
        game.request({"type": "event", "event": good})  # a duplicate
        wait_until(lambda: {(i["kind"], i.get("id")) for i in everything.items()} >= {
            ("stored", good["id"]), ("stored", invalid["id"]), ("delivered", good["id"]),
            ("dead_lettered", invalid["id"]), ("duplicates", None)}, what="the tap's lines")
        ops_daemon.sandbox.faults.add(Fault("status", "events", count=1, status=400, body='{"error": "nope"}'))
        game.request({"type": "event", "event": refused})
        wait_until(lambda: any(i["kind"] == "dead_lettered" and i["id"] == refused["id"] for i in everything.items()),
                   what="the collector's refusal")
        wait_until(lambda: any("dead-lettered" in line for line in progression.out), what="the filtered tap's line")
    items = everything.items()
    by = {(i["kind"], i.get("id")): i for i in items}
    order = [(i["kind"], i.get("id")) for i in items]
    assert order.index(("stored", good["id"])) < order.index(("delivered", good["id"]))  # as they happened
    stored = by[("stored", good["id"])]
    assert (stored["category"], stored["user_id"], stored["fields"]) == ("design", "dev-tap", good["fields"])
    assert stored["verdicts"] == {"gameanalytics": "queued"}
    assert by[("stored", invalid["id"])]["verdicts"]["gameanalytics"].startswith("invalid: event_id: part 'tap bad $'")
    dead = by[("dead_lettered", invalid["id"])]
    assert (dead["provider"], dead["code"]) == ("gameanalytics", "invalid") and "tap bad $" in dead["reason"]
    assert by[("delivered", good["id"])]["provider"] == "gameanalytics"
    assert by[("duplicates", None)]["count"] == 1
    collector = by[("dead_lettered", refused["id"])]
    assert collector["code"] != "invalid" and "400" in collector["reason"], collector
    # the filtered tap, in lines for people: only progression events, with the collector's reason
    assert progression.out and all(" progression " in line for line in progression.out), progression.out
    assert any(line.split()[1] == "stored" for line in progression.out), progression.out
    [refusal] = [line for line in progression.out if "dead-lettered" in line]
    assert refused["id"] in refusal and "400" in refusal


def test_a_tap_that_stops_reading_loses_its_own_lines_and_is_told_how_many(ops_daemon: OpsDaemon) -> None:
    """A stopped tap (SIGSTOP: a paused terminal, a pipe nobody reads) while 12,000 events are stored and
    delivered: the daemon acknowledges and delivers them all meanwhile; once the tap reads again, a `dropped`
    line says how many of its lines it lost."""
    with tap(ops_daemon, "--json") as stalled, ops_daemon.game("dev-flood") as game:
        stalled.proc.send_signal(signal.SIGSTOP)
        try:
            for _ in range(12):
                ack = game.request({"type": "events", "events": [make_event("design") for _ in range(1000)]})
                assert ack["stored"] == 1000
            stats = wait_until(lambda: settled(game, "gameanalytics"), timeout_s=60, what="all delivered")
            assert stats["delivered"] == 12001  # with the session's start
        finally:
            stalled.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: any('"kind": "dropped"' in line for line in list(stalled.out)), timeout_s=30,
                   what="the tap told of its loss")
        notices = [i for i in stalled.items() if i["kind"] == "dropped"]
        shown = [i for i in stalled.items() if i["kind"] in ("stored", "delivered", "skipped")]
        lost = sum(n["count"] for n in notices)
        assert lost > 1000 and lost == notices[-1]["total"] and shown, (notices, len(shown))  # lost, and kept some
        more = make_event("design", event_id="tap:after")
        game.request({"type": "event", "event": more})
        wait_until(lambda: any(more["id"] in line and '"kind": "delivered"' in line for line in list(stalled.out)),
                   timeout_s=30, what="the tap follows again")


def test_a_tap_with_no_daemon_says_so_and_exits_1() -> None:
    done = subprocess.run([sys.executable, "-m", "bridge", "tap", "--http", f"127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, timeout=30, cwd=REPO)
    assert done.returncode == 1 and "nothing answers on http://127.0.0.1:" in done.stderr
    assert "[daemon] http" in done.stderr


def test_human_lines_name_what_happened() -> None:
    at = 1795600000123
    stored = {"kind": "stored", "at": at, "pk": 1, "id": "e-1", "category": "design", "user_id": "u-1",
              "fields": {"event_id": "ui:play"}, "verdicts": {"gameanalytics": "invalid: event_id: bad"}}
    assert human(stored).endswith("design       ui:play                      user u-1  -> gameanalytics "
                                  "invalid: event_id: bad")
    assert human({"kind": "dropped", "at": at, "count": 5, "total": 9}).endswith(
        "dropped        5 line(s) lost: this tap could not keep up (9 in all)")
    assert "2 event(s) retried: HTTP 503" in human({"kind": "retry", "at": at, "provider": "ga", "events": 2,
                                                    "paused": False, "error": "HTTP 503"})
    lines = ["retry: 1000", ": connected", "", "event: stored", 'data: {"a": 1}', "", ": keepalive", ""]
    assert list(parse_sse(lines)) == [("stored", {"a": 1})]
