"""`engine-bridge demo`: the daemon, a local GameAnalytics sandbox and a scripted sample game, end to end.

Nothing leaves this machine: the daemon delivers to the sandbox (which checks every signature and event
exactly as the collector does), the sample game plays a session sending events of every category with a
window of batches in flight, and meanwhile a local config and a GameAnalytics remote config change and
reach the game. It ends with a summary read back from the daemon and the sandbox.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import Client, NoReply, recv_publication, subscribe
from .sandbox import gameramp, staq
from .sandbox.gameanalytics import SANDBOX_GAME_KEY, SANDBOX_SECRET_KEY, GameAnalyticsSandbox
from .sandbox.gameramp import GameRampSandbox
from .sandbox.server import SandboxServer
from .sandbox.staq import StaqSandbox

DEADLINE_S = 45.0
BATCH = 50
WINDOW = 4
EVENTS_PER_SECOND = 1500  # paced so the progress is visible; the benchmarks show the real ceiling

# A sample event of each category the demo sends (impression, ad revenue, is left out: a mobile ad SDK's).
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


DEVICE = "demo-device"
RECEIPT = "ZGVtby1yZWNlaXB0LTAwMQ=="  # base64 of a made-up receipt the staq sandbox is told is valid
PLAYER_CONFIG = {"playerStatus": {"isPayer": {"value": True, "defaultValue": False, "expiredAt": None}},
                 "storeConfig": {"activeSkus": ["gems_100", "gems_500"]}}


@dataclass
class Sandboxes:
    """The three local provider emulators the demo's daemon delivers to."""

    gameanalytics: GameAnalyticsSandbox = field(default_factory=GameAnalyticsSandbox)
    gameramp: GameRampSandbox = field(default_factory=GameRampSandbox)
    staq: StaqSandbox = field(default_factory=StaqSandbox)
    servers: dict[str, SandboxServer] = field(default_factory=dict)
    http: str = ""  # the daemon's [daemon] http: its inspector page

    def start(self) -> Sandboxes:
        self.gameanalytics.set_remote_configs([{"key": "gravity", "value": "80"}])
        self.gameramp.set_player_config(PLAYER_CONFIG, device_id=DEVICE)
        self.staq.register_receipt(RECEIPT, valid=True)
        for name in ("gameanalytics", "gameramp", "staq"):
            self.servers[name] = SandboxServer(getattr(self, name)).start()
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def config_text(self, difficulty: str) -> str:
        return f"""[daemon]
http = "{self.http}"

[configs]
difficulty = "{difficulty}"
max_lives = 3

[providers.gameanalytics]
endpoint = "{self.servers['gameanalytics'].url}"
game_key = "{SANDBOX_GAME_KEY}"
secret_key = "{SANDBOX_SECRET_KEY}"
interval = 0.5
remote_configs_refresh = 1.0

[providers.gameramp]
endpoint = "{self.servers['gameramp'].url}"
api_key = "{gameramp.DEV_API_KEY}"
api_secret = "{gameramp.DEV_API_SECRET}"

[providers.staq]
endpoint = "{self.servers['staq'].url}"
app_id = "{staq.DEFAULT_APP_ID}"
app_secret = "{staq.DEFAULT_APP_SECRET}"
interval = 0.5
"""


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

    def show(self, text: str) -> None:
        if self.tty:
            sys.stdout.write("\r" + text.ljust(100))
            sys.stdout.flush()
        elif time.monotonic() - self.last >= 1.0:
            self.last = time.monotonic()
            print(text, flush=True)

    def say(self, text: str) -> None:
        """A line of its own, above the progress line."""
        if self.tty:
            sys.stdout.write("\r" + " " * 100 + "\r")
        print(text, flush=True)


@dataclass
class Game:
    """The sample game's side of the run: what it sent, what was acknowledged, what configs it saw."""

    client: Client
    configs: Any
    sent: int = 0
    acked: int = 0
    in_flight: dict[int, int] = field(default_factory=dict)
    publications: list[dict[str, Any]] = field(default_factory=list)
    purchase: dict[str, Any] = field(default_factory=dict)

    def saw(self, topic: str, key: str, value: Any) -> bool:
        return any(p["topic"] == topic and p["values"].get(key) == value for p in self.publications)


def sample_events(total: int) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [{"id": str(uuid.uuid4()), "category": c, "ts": now + i, "fields": SAMPLE_FIELDS[c](i)}
            for i, c in zip(range(total), itertools.cycle(SAMPLE_FIELDS))]


def run_demo(total: int, keep_open: bool = False) -> int:
    work = Path(tempfile.mkdtemp(prefix="engine-bridge-demo-"))
    sandboxes = Sandboxes().start()
    config = work / "bridge.toml"
    ingress, publish = _free_endpoint(), _free_endpoint()
    sandboxes.http = http = _free_endpoint().removeprefix("tcp://")
    config.write_text(sandboxes.config_text("normal"))
    print(f"engine-bridge demo: daemon on {ingress} (configs {publish}), store in {work}")
    print(f"inspector: http://{http}/ (live events and each provider's verdict; /health, /metrics), open while the "
          "demo runs" + ("" if keep_open else ", or run `engine-bridge demo --keep-open` to look around after"))
    print("local provider sandboxes, checking every request as the real APIs would: " +
          ", ".join(f"{name} {server.url}" for name, server in sandboxes.servers.items()))
    log = open(work / "daemon.log", "wb")
    daemon = subprocess.Popen([sys.executable, "-m", "bridge", "run", "--config", str(config), "--data-dir",
                               str(work), "--ingress", ingress, "--publish", publish], stdout=log, stderr=log)
    try:
        return _play(daemon, config, sandboxes, ingress, publish, total, work, http if keep_open else None)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        log.close()
        sandboxes.stop()


def _play(daemon: subprocess.Popen[bytes], config: Path, sandboxes: Sandboxes, ingress: str, publish: str,
          total: int, work: Path, keep_open: str | None) -> int:
    started = time.monotonic()
    sandbox = sandboxes.gameanalytics
    game = Game(Client(ingress, timeout_ms=10_000, device_id=DEVICE), subscribe(publish, "config/"))
    progress = Progress()
    try:
        welcome = _wait_welcome(game.client, daemon, work)
        progress.say(f"connected: protocol {welcome['protocol']}, daemon {welcome['daemon_version']}")
        session = game.client.request({"type": "session_start"})
        progress.say(f"session {session['session_num']} started: {session['session_id']}")
        game.purchase = game.client.request({"type": "purchase", "id": "demo-purchase-1", "store": "apple",
                                             "receipt": RECEIPT, "price_usd": 4.99})
        progress.say(f"purchase {game.purchase['id']}: {game.purchase['state']}, valid {game.purchase['is_valid']}, "
                     f"duplicate {game.purchase['is_duplicate']} ({game.purchase['reason']})")
        events = sample_events(total)
        changed = False
        while (game.acked < total or game.in_flight) and time.monotonic() - started < DEADLINE_S:
            _send_window(game, events, started)
            _read_configs(game, progress)
            if not changed and game.acked >= total // 2:
                changed = True
                config.write_text(sandboxes.config_text("hard"))
                daemon.send_signal(signal.SIGHUP)
                sandbox.set_remote_configs([{"key": "gravity", "value": "60"}])
                progress.say("changed: difficulty = hard (config file), gravity = 60 (GameAnalytics remote config)")
            delivered = len(sandbox.accepted())
            progress.show(f"sent {game.sent:>6}  acknowledged {game.acked:>6}  delivered to GameAnalytics "
                          f"{delivered:>6}  configs {len(game.publications)}")
        game.client.request({"type": "session_end"})
        game.client.request({"type": "flush"})
        stats = _wait_delivered(game, progress, sandbox)
    finally:
        game.client.close()
        game.configs.close(0)
    took = time.monotonic() - started
    if keep_open:
        _stay_open(keep_open)
    stop_at = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(10)
    return _summary(game, stats, sandboxes, total, took, time.monotonic() - stop_at, code, work)


def _stay_open(http: str) -> None:
    print(f"\nthe daemon, its inspector (http://{http}/) and the sandboxes stay up: Ctrl-C stops them", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print()


def _send_window(game: Game, events: list[dict[str, Any]], started: float) -> None:
    pace_ok = game.sent < (time.monotonic() - started) * EVENTS_PER_SECOND
    while game.sent < len(events) and len(game.in_flight) < WINDOW and pace_ok:
        batch = events[game.sent:game.sent + BATCH]
        game.in_flight[game.client.send({"type": "events", "events": batch})] = len(batch)
        game.sent += len(batch)
    if not game.in_flight:
        time.sleep(0.01)
        return
    reply = game.client.recv()
    count = game.in_flight.pop(reply["rid"], 0)
    if reply["type"] == "ack":
        game.acked += count


def _read_configs(game: Game, progress: Progress) -> None:
    pub = recv_publication(game.configs, 0)
    while pub is not None:
        game.publications.append(pub)
        progress.say(f"config {pub['topic']} v{pub['version']}: {pub['values']}")
        pub = recv_publication(game.configs, 0)


def _wait_delivered(game: Game, progress: Progress, sandbox: GameAnalyticsSandbox) -> dict[str, Any]:
    """Wait (briefly) until every provider has everything and all config changes reached the game."""
    deadline = time.monotonic() + 20
    while True:
        _read_configs(game, progress)
        stats = game.client.request({"type": "stats"})
        lanes = stats["providers"].values()
        done = bool(lanes) and all(p.get("queued", 1) == 0 and p.get("in_flight", 1) == 0 for p in lanes)
        configs = (game.saw("config/local", "difficulty", "hard") and game.saw("config/gameanalytics", "gravity", "60")
                   and game.saw(f"config/gameramp/{DEVICE}", "isPayer", True))
        if (done and configs) or time.monotonic() > deadline:
            return stats
        progress.show(f"waiting for deliveries: {len(sandbox.accepted())} at GameAnalytics, "
                      f"{sum(p.get('queued', 0) for p in lanes)} queued")
        time.sleep(0.2)


def _summary(game: Game, stats: dict[str, Any], sandboxes: Sandboxes, total: int, took: float,
             stop_took: float, code: int, work: Path) -> int:
    providers = stats["providers"]
    ga, sq = providers.get("gameanalytics", {}), providers.get("staq", {})
    counts = sandboxes.gameanalytics.counts()
    local_ok = game.saw("config/local", "difficulty", "hard")
    remote_ok = game.saw("config/gameanalytics", "gravity", "60")
    player_ok = game.saw(f"config/gameramp/{DEVICE}", "isPayer", True)
    purchase_ok = game.purchase.get("state") == "verified" and game.purchase.get("is_valid") is True
    custom = total // len(SAMPLE_FIELDS)  # every seventh sample event is custom: staq's, not a GameAnalytics category
    staq_events = [e for e in sandboxes.staq.events() if not str(e.get("event", "")).startswith("server_")]
    print("\nsummary")
    print(f"  events sent            {game.sent}")
    print(f"  acknowledged           {game.acked}")
    print(f"  stored by the daemon   {stats['stored']} ({stats['store']['events']} rows with session markers)")
    print(f"  delivered to GA        {ga.get('delivered', 0)} (the sandbox accepted {counts['accepted']}, "
          f"rejected {counts['rejected']})")
    print(f"  delivered to staq      {len(staq_events)} custom events ({sq.get('delivered', 0)} with the session "
          "start)")
    print(f"  dead letters           {ga.get('dead_lettered', 0) + sq.get('dead_lettered', 0)}")
    print(f"  purchase               {'verified valid by staq' if purchase_ok else 'NOT VERIFIED'}")
    print(f"  configs received       {len(game.publications)} (local change {'arrived' if local_ok else 'MISSING'}, "
          f"remote config change {'arrived' if remote_ok else 'MISSING'}, GameRamp player config "
          f"{'arrived' if player_ok else 'MISSING'})")
    print(f"  took                   {took:.1f} s; daemon stopped in {stop_took:.2f} s with exit code {code}")
    ok = (game.acked == game.sent == total and stats["stored"] == total and local_ok and remote_ok and player_ok
          and purchase_ok and counts["rejected"] == 0 and counts["accepted"] >= total - custom
          and len(staq_events) == custom and code == 0)
    print("demo OK" if ok else "demo FAILED: see " + str(work / "daemon.log"))
    return 0 if ok else 1


def _wait_welcome(client: Client, daemon: subprocess.Popen[bytes], work: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    client.timeout_ms = 500
    try:
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited: see {work / 'daemon.log'}")
            try:
                return client.hello(engine="demo", game_build="1.0.0", platform="linux", os_version="linux 6")
            except NoReply:
                continue
        raise SystemExit("the daemon did not start within 15 s")
    finally:
        client.timeout_ms = 10_000
