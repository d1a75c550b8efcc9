"""`engine-bridge demo`: the daemon and a scripted sample game, end to end, in well under a minute.

The sample game connects, subscribes to configs, plays a session sending events of every category with a
window of batches in flight, and meanwhile a local config changes and reaches it. It ends with a summary
read back from the daemon itself.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from .client import Client, NoReply, recv_publication, subscribe
from .protocol import CATEGORIES

DEADLINE_S = 45.0
BATCH = 50
WINDOW = 4
EVENTS_PER_SECOND = 1500  # paced so the progress is visible; the benchmarks show the real ceiling

SAMPLE_FIELDS: dict[str, Any] = {
    "design": lambda i: {"event_id": f"tutorial:step{i % 5}", "value": float(i % 7)},
    "business": lambda i: {"event_id": "gems:pack_small", "amount": 99, "currency": "USD"},
    "progression": lambda i: {"event_id": f"Complete:world01:level{i % 20:02d}", "attempt_num": 1 + i % 3,
                              "score": i * 10},
    "resource": lambda i: {"event_id": "Source:gold:reward:daily", "amount": 25},
    "error": lambda i: {"severity": "warning", "message": f"frame time spike #{i}"},
    "ads": lambda i: {"ad_action": "show", "ad_type": "rewarded_video", "ad_sdk_name": "admob",
                      "ad_placement": "level_end"},
    "custom": lambda i: {"name": "photo_mode_used", "filter": "sepia"},
}

PROVIDERS = "\n[providers]\n"  # none yet: the demo never leaves this machine
CONFIG_BEFORE = '[configs]\ndifficulty = "normal"\nmax_lives = 3\n' + PROVIDERS
CONFIG_AFTER = '[configs]\ndifficulty = "hard"\nmax_lives = 3\n' + PROVIDERS


def _free_endpoint() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class Progress:
    """One line redrawn in place on a terminal; a line a second in a log."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            sys.stdout.write("\r" + text.ljust(100))
            sys.stdout.flush()
        elif force or now - self.last >= 1.0:
            self.last = now
            print(text, flush=True)

    def done(self) -> None:
        if self.tty:
            sys.stdout.write("\n")


def sample_events(total: int) -> list[dict[str, Any]]:
    cycle = itertools.cycle(CATEGORIES)
    now = int(time.time() * 1000)
    return [{"id": str(uuid.uuid4()), "category": c, "ts": now + i, "fields": SAMPLE_FIELDS[c](i)}
            for i, c in zip(range(total), cycle)]


def run_demo(total: int) -> int:
    work = Path(tempfile.mkdtemp(prefix="engine-bridge-demo-"))
    config = work / "bridge.toml"
    config.write_text(CONFIG_BEFORE)
    ingress, publish = _free_endpoint(), _free_endpoint()
    print(f"engine-bridge demo: daemon on {ingress} (configs {publish}), store in {work}")
    log = open(work / "daemon.log", "wb")
    daemon = subprocess.Popen([sys.executable, "-m", "bridge", "run", "--config", str(config), "--data-dir",
                               str(work), "--ingress", ingress, "--publish", publish], stdout=log, stderr=log)
    try:
        return _play(daemon, config, ingress, publish, total, work)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        log.close()


def _play(daemon: subprocess.Popen[bytes], config: Path, ingress: str, publish: str, total: int,
          work: Path) -> int:
    started = time.monotonic()
    client = Client(ingress, timeout_ms=10_000, device_id="demo-device")
    configs = subscribe(publish, "config/")
    try:
        welcome = _wait_welcome(client, daemon, work)
        print(f"connected: protocol {welcome['protocol']}, daemon {welcome['daemon_version']}")
        session = client.request({"type": "session_start"})
        print(f"session {session['session_num']} started: {session['session_id']}")
        events = sample_events(total)
        sent = acked = stored = 0
        received_configs: list[dict[str, Any]] = []
        in_flight: dict[int, int] = {}
        changed = False
        progress = Progress()
        while (acked < total or in_flight) and time.monotonic() - started < DEADLINE_S:
            pace_ok = sent < (time.monotonic() - started) * EVENTS_PER_SECOND
            while sent < total and len(in_flight) < WINDOW and pace_ok:
                batch = events[sent:sent + BATCH]
                in_flight[client.send({"type": "events", "events": batch})] = len(batch)
                sent += len(batch)
            if in_flight:
                reply = client.recv()
                count = in_flight.pop(reply["rid"], 0)
                if reply["type"] == "ack":
                    acked += count
                    stored += reply["stored"]
            else:
                time.sleep(0.01)
            pub = recv_publication(configs, 0)
            while pub is not None:
                received_configs.append(pub)
                progress.show(f"config {pub['topic']} v{pub['version']}: {pub['values']}", force=True)
                progress.done()
                pub = recv_publication(configs, 0)
            if not changed and acked >= total // 2:
                changed = True
                config.write_text(CONFIG_AFTER)
                daemon.send_signal(signal.SIGHUP)
                progress.show("edited the config file: difficulty = hard", force=True)
                progress.done()
            progress.show(f"sent {sent:>6}  acknowledged {acked:>6}  configs received {len(received_configs)}")
        progress.done()
        deadline = time.monotonic() + 3
        while not any(p["values"].get("difficulty") == "hard" for p in received_configs) \
                and time.monotonic() < deadline:
            pub = recv_publication(configs, 100)
            if pub is not None:
                received_configs.append(pub)
        ended = client.request({"type": "session_end"})
        client.request({"type": "flush"})
        stats = client.request({"type": "stats"})
    finally:
        client.close()
        configs.close(0)
    took = time.monotonic() - started
    stop_at = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(10)
    stop_took = time.monotonic() - stop_at
    got_change = any(p["values"].get("difficulty") == "hard" for p in received_configs)
    print("\nsummary")
    print(f"  events sent          {sent}")
    print(f"  acknowledged         {acked}")
    print(f"  stored by the daemon {stats['stored']} (+ session markers; {stats['store']['events']} rows in "
          f"the store)")
    print(f"  duplicates/rejected  {stats['duplicates']}/{stats['rejected']}")
    print(f"  configs received     {len(received_configs)} (the live change {'arrived' if got_change else 'MISSING'})")
    print(f"  session              {ended['session_num']}, {ended['length']} s")
    print(f"  took                 {took:.1f} s; daemon stopped in {stop_took:.2f} s with exit code {code}")
    ok = acked == sent == total and stats["stored"] == total and got_change and code == 0
    print("demo OK" if ok else "demo FAILED: see " + str(work / "daemon.log"))
    return 0 if ok else 1


def _wait_welcome(client: Client, daemon: subprocess.Popen[bytes], work: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited: see {work / 'daemon.log'}")
        try:
            client.timeout_ms = 500
            reply = client.hello(engine="demo", game_build="1.0.0")
            client.timeout_ms = 10_000
            return reply
        except NoReply:
            continue
    raise SystemExit("the daemon did not start within 15 s")
