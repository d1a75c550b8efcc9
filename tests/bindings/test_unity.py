"""The Unity binding for real: its C# sources compiled with Mono's `mcs -langversion:7.2` (what Unity's
compiler accepts and more), run with `mono` against real daemons on test ports.

The C# test program (engine_bindings/unity/Tests~/BridgeTests.cs) makes its own checks and prints
`N passed, N failed`. The daemons belong to this wrapper: one without providers; one that verifies purchases
through a staq sandbox served here; one that delivers to a GameAnalytics sandbox, whose rules refuse some of the
program's events; and one whose welcome announces, and whose checks enforce, smaller limits than protocol.md's.
The program prints `@@ <command>` when it needs a daemon frozen, thawed, killed, stopped, started or its configs
changed, a receipt made valid, or staq down or back, and waits for `ok`. Afterwards the wrapper reads the stores
itself: fields of every helper, sessions, no duplicate and no lost event across the kill and the outage, only the
newest events kept after an overflow and exactly the stored ones counted, the purchases the program reported, the
refused events dead-lettered with the rule the game was told.

The WebGL build is compiled with `-define:UNITY_WEBGL` and run on its own (Tests~/WebGLTests.cs).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.sandbox.staq import StaqSandbox
from tests.bindings import shipping
from tests.harness import REPO, Daemon
from tests.sandboxes import provider_table, start_sandbox, wait_until

UNITY = REPO / "engine_bindings" / "unity"
TESTS = UNITY / "Tests~"
RUN_TIMEOUT_S = 300
# Checks the C# program makes when everything runs; it must report at least this many passed.
MIN_CHECKS = 182
# What the limits daemon's welcome announces and its checks enforce (Tests~/BridgeTests.cs LimitChecks).
SMALL_LIMITS = {"max_message_bytes": 8192, "max_batch_events": 10, "max_event_id_chars": 40, "max_fields": 8,
                "max_string_chars": 100, "max_depth": 2}

# No [providers] entries: nothing leaves the machine. [configs] is the topic config/local.
CONFIG = "[providers]\n\n[configs]\n"
PRESETS = {
    "initial": 'difficulty = "hard"\nmax_lives = 5\n',
    "update": 'difficulty = "easy"\nmax_lives = 7\nspeed = 2.5\ntutorial = "true"\n',
    "final": 'difficulty = "brutal"\nmax_lives = 1\n',
}
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CATEGORIES = {"design", "business", "progression", "resource", "error", "ads", "impression", "custom"}


def compile_program(out: Path, *sources: Path, defines: tuple[str, ...] = ()) -> Path:
    """The package's Runtime/ sources plus a program, built with mcs as the issue requires; warnings are errors."""
    mcs = shutil.which("mcs")
    if mcs is None or shutil.which("mono") is None:
        pytest.fail("mcs and mono are missing: run scripts/install-system-deps.sh (Debian package mono-mcs)")
    runtime = sorted((UNITY / "Runtime").rglob("*.cs"))
    cmd = [mcs, "-langversion:7.2", "-warnaserror+", "-nologo", f"-out:{out}", *(f"-define:{d}" for d in defines),
           *map(str, runtime), *map(str, sources)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"mcs failed:\n{result.stdout}\n{result.stderr}"
    return out


def limits_site(folder: Path) -> Path:
    """A `sitecustomize` that gives a daemon SMALL_LIMITS, in its welcome and in its checks: a daemon of another
    configuration or version, to show the binding follows what the welcome says."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "from bridge import protocol\n"
        f"for key, value in {SMALL_LIMITS!r}.items():\n"
        "    assert hasattr(protocol, key.upper()), key\n"
        "    setattr(protocol, key.upper(), value)\n"
        "    protocol.LIMITS[key] = value\n")
    return folder


def dead_letters(daemon: Daemon, provider: str, device: str) -> dict[str, str]:
    """Event uid → reason of a device's dead letters for a provider."""
    with sqlite3.connect(daemon.db_path) as db:
        rows = db.execute("SELECT e.uid, d.reason FROM dead_letters d JOIN events e ON e.pk = d.event_pk "
                          "WHERE d.provider = ? AND e.device_id = ?", (provider, device)).fetchall()
    return dict(rows)


def unverified_purchases(daemon: Daemon) -> int:
    with sqlite3.connect(daemon.db_path) as db:
        return db.execute("SELECT count(*) FROM purchases WHERE verified_at IS NULL").fetchone()[0]


class Driver:
    """Runs the C# program and answers its `@@` requests by acting on the real daemons and the staq sandbox."""

    def __init__(self, daemon: Daemon, staq: StaqSandbox, staq_daemon: Daemon) -> None:
        self.daemon = daemon
        self.staq = staq
        self.staq_daemon = staq_daemon
        self.lines: list[str] = []
        self.reports: dict[str, str] = {}

    def run(self, cmd: list[str]) -> int:
        # PYTHONPATH lets the daemon the program launches itself (python -m bridge) find the package.
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert proc.stdin is not None and proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=self._pump, args=(proc.stdout, lines), daemon=True)
        reader.start()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        try:
            while True:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                if line is None:
                    break
                self.lines.append(line)
                if line.startswith("@@ "):
                    self.act(line[3:])
                    proc.stdin.write("ok\n")
                    proc.stdin.flush()
                elif line.startswith("## "):
                    key, _, value = line[3:].partition(" ")
                    self.reports[key] = value
            return proc.wait(timeout=30)
        except queue.Empty:
            pytest.fail("the C# test program timed out:\n" + self.output())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)

    def act(self, command: str) -> None:
        daemon = self.daemon
        assert daemon.proc is not None
        if command.startswith("receipt "):
            self.staq.register_receipt(command.split(" ", 1)[1], valid=True)
        elif command == "staq down":
            self.staq.faults.fail("iap_apple", status=503, count=None)
        elif command == "staq up":
            self.staq.faults.clear()
            wait_until(lambda: unverified_purchases(self.staq_daemon) == 0, 15, "every purchase verified")
        elif command == "freeze":
            os.kill(daemon.proc.pid, signal.SIGSTOP)
        elif command == "thaw":
            os.kill(daemon.proc.pid, signal.SIGCONT)
        elif command == "kill":
            daemon.kill()
        elif command == "stop":
            daemon.stop()
        elif command == "start":
            daemon.start()
        elif command.startswith("config "):
            assert daemon.config_path is not None
            daemon.config_path.write_text(CONFIG + PRESETS[command.split(" ", 1)[1]])
            daemon.proc.send_signal(signal.SIGHUP)
        else:
            raise AssertionError(f"unknown request from the C# program: {command!r}")

    def output(self) -> str:
        return "\n".join(self.lines)

    def summary(self) -> tuple[int, int]:
        for line in reversed(self.lines):
            match = re.fullmatch(r"(\d+) passed, (\d+) failed", line.strip())
            if match:
                return int(match.group(1)), int(match.group(2))
        pytest.fail("no 'N passed, N failed' line:\n" + self.output())

    @staticmethod
    def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)


def of_device(events: list[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    """A device's game events (the daemon also stores session_start/session_end rows)."""
    return [e for e in events if e["device_id"] == device and e["category"] in CATEGORIES]


def tick_values(events: list[dict[str, Any]], device: str, event_id: str) -> list[int]:
    return sorted(int(e["fields"]["value"]) for e in of_device(events, device) if e["fields"]["event_id"] == event_id)


def test_unity_binding_against_real_daemon(tmp_path: Path) -> None:
    exe = compile_program(tmp_path / "BridgeTests.exe", TESTS / "BridgeTests.cs", TESTS / "Checks.cs")
    launch_config = tmp_path / "launched.toml"
    launch_config.write_text(CONFIG + PRESETS["initial"])
    started_ms = int(time.time() * 1000)
    with contextlib.ExitStack() as stack:
        staq, staq_server = start_sandbox("staq")
        stack.callback(staq_server.stop)
        _, ga_server = start_sandbox("gameanalytics")
        stack.callback(ga_server.stop)
        daemon = stack.enter_context(Daemon(tmp_path / "daemon", config=CONFIG + PRESETS["initial"]))
        staq_daemon = stack.enter_context(Daemon(tmp_path / "staq-daemon",
                                                 config=provider_table("staq", staq_server.url, kind="staq")))
        ga_daemon = stack.enter_context(Daemon(tmp_path / "ga-daemon",
                                               config=provider_table("gameanalytics", ga_server.url)))
        limits_daemon = stack.enter_context(Daemon(tmp_path / "limits-daemon", config=CONFIG,
                                                   python_path=[limits_site(tmp_path / "limits-site")]))
        driver = Driver(daemon, staq, staq_daemon)
        code = driver.run(["timeout", "-k", "5", str(RUN_TIMEOUT_S), "mono", "--debug", str(exe),
                           "--ingress", daemon.ingress, "--publish", daemon.publish,
                           "--staq-ingress", staq_daemon.ingress, "--staq-publish", staq_daemon.publish,
                           "--ga-ingress", ga_daemon.ingress, "--ga-publish", ga_daemon.publish,
                           "--limits-ingress", limits_daemon.ingress, "--limits-publish", limits_daemon.publish,
                           "--python", sys.executable, "--repo", str(REPO), "--workdir", str(tmp_path),
                           "--launch-config", str(launch_config)])
        passed, failed = driver.summary()
        assert failed == 0 and code == 0, driver.output()
        assert passed >= MIN_CHECKS, driver.output()
        events = daemon.events()
        with sqlite3.connect(staq_daemon.db_path) as db:
            purchases = db.execute("SELECT device_id, purchase_id, is_valid, is_duplicate FROM purchases").fetchall()
        # The refused events: dead-lettered for GameAnalytics with the rule the game's callback was given.
        refused = [e for e in of_device(ga_daemon.events(), "unity-refused")
                   if e["fields"]["event_id"] != "ui:click:play"]
        wait_until(lambda: len(dead_letters(ga_daemon, "gameanalytics", "unity-refused")) == len(refused), 15,
                   "every refused event dead-lettered")
        letters = dead_letters(ga_daemon, "gameanalytics", "unity-refused")
        limited = of_device(limits_daemon.events(), "unity-limits")

    # Every helper's event, with exactly the fields it was given.
    helpers = of_device(events, "unity-helpers")
    expected = [
        ("design", {"event_id": "ui:click:play"}),
        ("design", {"event_id": "level:boss", "value": 2.5}),
        ("business", {"event_id": "gems:pack_small", "amount": 99, "currency": "USD", "cart_type": "shop"}),
        ("progression", {"event_id": "Complete:world01:level01", "score": 1200, "attempt_num": 2}),
        ("resource", {"event_id": "Sink:gold:weapons:sword", "amount": 150.0}),
        ("error", {"severity": "critical", "message": "NullReference in Player.Update \u00fcn\u00efc\u00f8d\u00e9 \U0001F3AE"}),
        ("ads", {"ad_action": "reward_received", "ad_type": "rewarded_video", "ad_sdk_name": "admob",
                 "ad_placement": "end_of_level", "ad_duration": 15000}),
        ("ads", {"ad_action": "failed_show", "ad_type": "app_open", "ad_sdk_name": "applovin_max",
                 "ad_placement": "launch", "ad_fail_show_reason": "unable_to_precache"}),
        # The deprecated ad_fb_error extra field reaches the store under its new name, and only so.
        ("ads", {"ad_action": "failed_show", "ad_type": "video", "ad_sdk_name": "admob", "ad_placement": "end_of_level",
                 "ad_duration": 0, "ad_fail_show_reason": "no_fill", "custom_01": "vip"}),
        ("impression", {"ad_network_name": "max", "ad_network_version": "12.4.1",
                        "impression_data": {"revenue": 0.0123, "currency": "USD", "precision": "exact",
                                            "network_name": "AppLovin",
                                            "ad_unit": {"id": "u-1", "format": "REWARDED"},
                                            "deepest": {"k": {"k": 1}}}}),
        ("impression", {"ad_network_name": "admob", "ad_network_version": "23.0.0",
                        "impression_data": {"value_micros": 1200, "currency_code": "EUR"}}),
        ("custom", {"name": "tutorial_skipped"}),
        ("custom", {"name": "boss_fight", "step": 3, "ratio": 0.5, "tags": ["a", "b"], "nested": {"k": True},
                    "none": None}),
        ("business", {"event_id": "coins:starter", "amount": 499, "currency": "EUR", "custom_01": "vip",
                      "receipt_info": {"receipt": "r-1", "store": "apple"}}),
        ("custom", {"name": "replayed"}),
    ]
    assert [(e["category"], e["fields"]) for e in helpers] == expected
    # Track with EventOptions: its own id, user and time, stored once although sent twice.
    replayed = helpers.pop()
    assert (replayed["uid"], replayed["user_id"], replayed["client_ts"]) == ("replayed-event-1", "player-2", 1700000000000)
    session_id = driver.reports["session"]
    assert UUID4.match(session_id)
    now_ms = int(time.time() * 1000)
    for event in helpers:
        assert event["user_id"] == "unity-helpers"
        assert event["session_id"] == session_id
        assert event["game_build"] == "1.2.3"
        assert UUID4.match(event["uid"]), event["uid"]
        assert started_ms - 1000 <= event["client_ts"] <= now_ms

    # Frozen past the request timeout, then thawed: every event exactly once.
    assert tick_values(events, "unity-frozen", "frozen:tick") == list(range(1000))

    # Killed and restarted mid-stream: every event exactly once, none lost.
    streamed = int(driver.reports["stream_events"])
    assert tick_values(events, "unity-stream", "stream:tick") == list(range(streamed))
    stream_ids = [e["uid"] for e in of_device(events, "unity-stream")]
    assert len(stream_ids) == len(set(stream_ids)) == streamed

    # Overflow: the oldest were dropped, the newest 100 arrived.
    assert tick_values(events, "unity-overflow", "overflow:tick") == list(range(150, 250))
    # Overflow while events were in flight: what the client counted stored is what the store holds, the newest kept.
    live = tick_values(events, "unity-overflow-live", "overflow:live")
    assert len(live) == int(driver.reports["overflow_live_stored"]) and live[-100:] == list(range(400, 500))

    # The outage at 1,000 events/s with the default queue: every event exactly once.
    assert tick_values(events, "unity-outage", "outage:tick") == list(range(int(driver.reports["outage_events"])))

    # Provider refusals: the first one reported to the game is the daemon's dead letter, for the same rule.
    assert len(refused) == 31 and set(letters) == {e["uid"] for e in refused}
    assert letters[driver.reports["refused_id"]] == driver.reports["refused_rule"]

    # The small limits: every event within them stored, batched as that daemon accepts.
    assert len(limited) == 100 and all(len(e["fields"]) == 8 for e in limited)

    # Refused calls sent nothing; the one good call after them arrived.
    assert [e["fields"] for e in of_device(events, "unity-badargs")] == [{"event_id": "after:errors", "value": 1.0}]

    # Purchases: each stored once (a purchase id verified again is the same purchase) with the verdict the
    # program's callbacks reported.
    by_device: dict[str, list[tuple[bool, bool]]] = {}
    for device, _, valid, duplicate in purchases:
        by_device.setdefault(device, []).append((bool(valid), bool(duplicate)))
    assert sorted(by_device) == ["unity-buyer", "unity-returning"], purchases
    assert sorted(by_device["unity-buyer"]) == [(False, False)] + [(True, False)] * 5 + [(True, True)], purchases
    assert by_device["unity-returning"] == [(True, False)] * 3, purchases
    assert len(staq.purchases()) == len(purchases)  # re-verified ids were answered from the daemon's store


def test_unity_console_sample(tmp_path: Path) -> None:
    exe = compile_program(tmp_path / "ConsoleSample.exe", UNITY / "Samples~" / "ConsoleSample" / "ConsoleSample.cs")
    with Daemon(tmp_path / "daemon", config=CONFIG + PRESETS["initial"]) as daemon:
        result = subprocess.run(["timeout", "-k", "5", "60", "mono", str(exe), "--ingress", daemon.ingress,
                                 "--publish", daemon.publish, "--device", "console-sample", "--seconds", "2"],
                                capture_output=True, text=True, timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "difficulty = hard" in result.stdout, result.stdout
        events = of_device(daemon.events(), "console-sample")
    assert {e["category"] for e in events} == {"design", "progression", "resource", "business"}, events


def package_assets(folder: Path) -> list[Path]:
    """What Unity imports from the package: everything but hidden files, .meta files and folders ending in ~."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name.endswith("~") or path.suffix == ".meta":
            continue
        found.append(path)
        if path.is_dir():
            found += package_assets(path)
    return found


def test_unity_package_layout() -> None:
    """What the Unity Package Manager needs: a manifest whose version the binding reports in hello, the asmdef,
    and a .meta with a unique GUID beside every asset (Unity ignores assets without one in an installed package);
    and UnityEngine used only behind UNITY_5_3_OR_NEWER, so the Mono build of Runtime/ stays engine-free."""
    manifest = json.loads((UNITY / "package.json").read_text())
    version = re.search(r'BindingVersion = "([^"]+)"', (UNITY / "Runtime" / "BridgeClient.cs").read_text())
    assert version is not None and manifest["version"] == version.group(1)
    assert f"## [{manifest['version']}]" in (UNITY / "CHANGELOG.md").read_text()
    assert all((UNITY / sample["path"]).is_dir() for sample in manifest["samples"])
    assert json.loads((UNITY / "Runtime" / "EngineBridge.Runtime.asmdef").read_text())["name"] == "EngineBridge.Runtime"

    guids: dict[str, Path] = {}
    assets = package_assets(UNITY)
    for asset in assets:
        meta = asset.with_name(asset.name + ".meta")
        assert meta.is_file(), f"{asset.relative_to(UNITY)} has no .meta"
        match = re.search(r"^guid: ([0-9a-f]{32})$", meta.read_text(), re.MULTILINE)
        assert match is not None, meta
        assert match.group(1) not in guids, f"{asset} and {guids[match.group(1)]} share a GUID"
        guids[match.group(1)] = asset
    orphans = [m for m in UNITY.rglob("*.meta") if m.with_suffix("") not in assets]
    assert not orphans, orphans

    for source in (UNITY / "Runtime").rglob("*.cs"):
        text = source.read_text()
        if "UnityEngine" in text:
            assert text.index("#if UNITY_5_3_OR_NEWER") < text.index("using UnityEngine"), source


def test_unity_webgl_build(tmp_path: Path) -> None:
    """Built as for a WebGL player: game code naming the API compiles (the test program and the console sample),
    and every call is a no-op that makes no thread or socket; the one warning reaches the default console."""
    compile_program(tmp_path / "ConsoleSample.exe", UNITY / "Samples~" / "ConsoleSample" / "ConsoleSample.cs",
                    defines=("UNITY_WEBGL",))
    exe = compile_program(tmp_path / "WebGLTests.exe", TESTS / "WebGLTests.cs", TESTS / "Checks.cs",
                          defines=("UNITY_WEBGL",))
    result = subprocess.run(["timeout", "-k", "5", "60", "mono", str(exe)], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0 and result.stdout.rstrip().endswith(" passed, 0 failed"), result.stdout + result.stderr
    assert "warning: engine-bridge: WebGL has no threads and no TCP sockets" in result.stderr, result.stderr


def test_unity_conformance_vectors(tmp_path: Path) -> None:
    """The writer, reader, request builders, reply parsers, limits and call-site checks against the shared vectors
    (engine_bindings/conformance/vectors.json; its README says what each section asks): one check per vector at least."""
    path = REPO / "engine_bindings" / "conformance" / "vectors.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing: python -m bridge.conformance writes it")
    vectors = json.loads(path.read_text())
    exe = compile_program(tmp_path / "ConformanceTests.exe", TESTS / "ConformanceTests.cs", TESTS / "Checks.cs")
    result = subprocess.run(["timeout", "-k", "5", "60", "mono", str(exe), str(path)], capture_output=True, text=True,
                            timeout=90)
    match = re.search(r"^(\d+) passed, (\d+) failed$", result.stdout, re.MULTILINE)
    assert result.returncode == 0 and match is not None and match.group(2) == "0", result.stdout + result.stderr
    sections = [vectors["msgpack"], vectors["requests"], vectors["replies"], vectors["publications"],
                vectors["limits"]["cases"], vectors["limits"]["frames"]]
    assert int(match.group(1)) >= sum(map(len, sections)), result.stdout


def ship_game(install: shipping.Install, *args: str) -> list[str]:
    """The Unity game program built into the install folder, as a shipped game's assemblies are."""
    program = install.folder / "ShipGame.exe"
    if not program.exists():
        compile_program(program, TESTS / "ShipGame.cs")
    return ["mono", str(program), *args]


@pytest.mark.alone
@pytest.mark.parametrize("quit_cleanly", [False, True], ids=["killed", "quits"])
def test_unity_game_with_the_bundled_daemon(install: shipping.Install, tmp_path: Path, quit_cleanly: bool) -> None:
    mode = "quit" if quit_cleanly else "play"
    shipping.play(ship_game(install, mode, install.game, shipping.DAEMON, str(shipping.COUNT)), install, tmp_path,
                  quit_cleanly)


@pytest.mark.alone
def test_unity_bundled_daemon_missing_and_another_games_daemon(install: shipping.Install, tmp_path: Path) -> None:
    with Daemon(tmp_path / "other", extra_args=["--game", "other-game"]) as other:
        shipping.missing_and_wrong_game(
            ship_game(install, "missing", install.game, "engine-bridge-missing/engine-bridge"),
            ship_game(install, "missing", install.game, shipping.NOT_EXECUTABLE),
            ship_game(install, "wrong", install.game, other.ingress, other.publish, str(shipping.COUNT)),
            install, tmp_path, other)
