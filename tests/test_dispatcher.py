"""The dispatcher's own promises, whatever the provider: independent lanes, the store cap, dead letters."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from tests.sandboxes import provider_table, start_sandbox, wait_until
from tests.harness import REPO, Client, Daemon, make_event

HELLO = {"platform": "linux", "os_version": "linux 6"}


def test_a_provider_down_does_not_slow_another(tmp_path: Path) -> None:
    healthy, healthy_server = start_sandbox()
    stuck, stuck_server = start_sandbox()
    # The stuck provider answers nothing for longer than the test's waits: a healthy lane that waited on it
    # would miss its events' wait, however slow or fast the machine.
    stuck.faults.slow("events", delay_s=40.0, count=None)
    config = provider_table("fast", healthy_server.url) + provider_table("stuck", stuck_server.url, timeout=60.0)
    try:
        with Daemon(tmp_path, config=config) as daemon, Client(daemon.ingress) as c:
            c.hello(**HELLO)
            for k in range(5):
                c.request({"type": "event", "event": make_event("design", event_id=f"lane:{k}")})
                wait_until(lambda: len(healthy.accepted_events(category="design")) == k + 1, 6,
                           what=f"event {k} at the healthy provider")
            # The lane records what it finished in store turns, a moment after the provider's answer.
            stats = wait_until(lambda: ((st := c.request({"type": "stats"})["providers"])["fast"]["queued"] == 0
                                        and st), 6, what="the healthy lane's cursor past its events")
        assert stats["fast"]["delivered"] >= 5
        assert stats["stuck"]["delivered"] == 0 and stats["stuck"]["queued"] >= 5
    finally:
        stuck.faults.clear()
        healthy_server.stop()
        stuck_server.stop()


def test_store_cap_trims_the_oldest_sessions(tmp_path: Path) -> None:
    down, server = start_sandbox()
    down.faults.fail("events", status=503, count=None)
    config = provider_table("gameanalytics", server.url) + "[store]\ncap_mb = 0.3\n"
    try:
        with Daemon(tmp_path, config=config) as daemon, Client(daemon.ingress) as c:
            c.hello(**HELLO)
            sessions = []
            for _ in range(6):
                sessions.append(c.request({"type": "session_start"})["session_id"])
                for _ in range(4):
                    c.request({"type": "events", "events": [make_event("error", message="x" * 400)
                                                            for _ in range(100)]})
            stats = wait_until(lambda: (st := c.request({"type": "stats"}))["store"]["trimmed"] > 0 and st, 20,
                               what="trimming")
            kept = {e["session_id"] for e in daemon.events()}
        assert stats["store"]["trimmed"] >= 400
        assert sessions[-1] in kept and sessions[0] not in kept  # oldest sessions go first, newest play stays
    finally:
        down.faults.clear()
        server.stop()


def test_dead_letters_can_be_requeued_after_a_fix(tmp_path: Path) -> None:
    sb, server = start_sandbox(max_body_bytes=1000)
    try:
        with Daemon(tmp_path, config=provider_table("gameanalytics", server.url)) as daemon, \
                Client(daemon.ingress) as c:
            c.hello(**HELLO)
            noise = {f"k{i}": uuid.uuid4().hex + uuid.uuid4().hex for i in range(40)}  # gzip cannot shrink it
            big = make_event("design", custom_fields=noise)
            c.request({"type": "event", "event": big})
            wait_until(lambda: c.request({"type": "stats"})["providers"]["gameanalytics"]["dead_lettered"] == 1,
                       what="the too-large event dead-lettered")
            cli = [sys.executable, "-m", "bridge", "dead-letters", "--data-dir", str(daemon.data_dir)]
            listed = subprocess.run(cli, capture_output=True, text=True, timeout=20, cwd=REPO)
            assert "too_large" in listed.stdout and big["id"] in listed.stdout
            sb.max_body_bytes = 1_000_000  # the fix
            subprocess.run(cli + ["--requeue"], capture_output=True, text=True, timeout=20, cwd=REPO, check=True)
            wait_until(lambda: sb.accepted_events(category="design"), what="the re-queued event delivered")
            wait_until(lambda: c.request({"type": "stats"})["providers"]["gameanalytics"]["dead_lettered"] == 0,
                       what="the dead letter settled")
            after = subprocess.run(cli, capture_output=True, text=True, timeout=20, cwd=REPO)
        assert big["id"] not in after.stdout
    finally:
        server.stop()


def test_unknown_provider_type_fails_start_up_with_a_reason(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, config='[providers.x]\ntype = "nosuch"\n')
    out = subprocess.run(daemon.command(), capture_output=True, text=True, timeout=20, cwd=REPO)
    assert out.returncode == 2 and "no provider type 'nosuch'" in out.stderr


POISON_PROVIDER = """
from bridge.providers.base import Built, Outcome, Provider


class Fragile(Provider):
    kind = "fragile"
    categories = frozenset({"custom"})
    builds = 0

    async def build(self, events):
        self.builds += 1
        if any(e.fields.get("poison") for e in events):
            raise RuntimeError("cannot digest poison")
        return Built(settled=Outcome(delivered={e.pk for e in events}))

    def status(self):
        return {"builds": self.builds}
"""


def test_a_poison_event_is_dead_lettered_and_the_lane_goes_on(tmp_path: Path) -> None:
    """A provider that raises on one event of 500: the lane halves what it raises on, so that event alone
    goes to the dead letters, with the error, in a few requests (it once took one request per event)."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "fragile_provider.py").write_text(POISON_PROVIDER)
    info = plugin / "fragile_provider-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fragile-provider\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[engine_bridge.providers]\nfragile = fragile_provider:Fragile\n")
    config = '[providers.fragile]\ntype = "fragile"\ninterval = 0.1\nretry_base = 0.05\nretry_cap = 0.2\n'
    with Daemon(tmp_path / "d", config=config, python_path=[plugin]) as daemon, Client(daemon.ingress) as c:
        c.hello(**HELLO)
        batch = [make_event("custom", name=f"ok{i}") for i in range(499)]
        batch.insert(321, make_event("custom", name="bad", poison=True))
        c.request({"type": "events", "events": batch})
        stats = wait_until(lambda: (s := c.request({"type": "stats"})["providers"]["fragile"])["queued"] == 0
                           and s, 15, what="the batch settled")
        listed = subprocess.run([sys.executable, "-m", "bridge", "dead-letters", "--data-dir", str(daemon.data_dir)],
                                capture_output=True, text=True, timeout=20, cwd=REPO)
    assert stats["dead_lettered"] == 1 and stats["delivered"] == 499  # the good events, before and after it
    # halving 500 down to the one: the first try, 2 per halving (9 of them), 3 tries of the event alone, and
    # a spare for a batch claimed in two parts; one request per event (once ~500) fails this
    assert stats["builds"] <= 1 + 2 * 9 + 3 + 2, stats
    assert "provider_error: RuntimeError: cannot digest poison" in listed.stdout
    assert batch[321]["id"] in listed.stdout
