"""The C++ binding for real: engine_bindings/cpp built with CMake and g++/gcc into tmp_path, its programs run
against real daemons on test ports.

- `engine_bridge_test` (C++) makes its own checks and prints `N passed, N failed`. When it needs the daemon
  frozen, thawed, killed, started again or its configs changed, the staq sandbox to take receipts, go down and
  come back, or a daemon started late, it prints `@@ <command>` and waits for one reply line; this wrapper
  does it for real and answers.
- `engine_bridge_c_test` (C99, linked to the shared library's C ABI) does the same for the C functions.
- Purchases go to a daemon whose staq provider is the in-process staq sandbox on loopback; provider refusals
  come from a daemon whose GameAnalytics provider is the GameAnalytics sandbox; a plain TCP server that
  answers like a web server stands for another program holding the port.
- `engine_bridge_conformance` checks the wire code against engine_bindings/conformance/vectors.json.
- A consumer project finds the installed library with `find_package(engine_bridge CONFIG REQUIRED)` and builds
  with -fno-exceptions.
- `engine_bridge_sample` is the README's sample program; it also runs beside an edge whose relay delivers to the
  GameAnalytics sandbox.
- `engine_bridge_relay_test` is a game straight to a relay over CURVE (Settings::relay): its events reach the
  GameAnalytics sandbox as the player, its key pair is made once and kept, a wrong relay key never connects,
  and the relay's configs for its device reach its config callback.
Afterwards the wrapper reads the stores itself: every helper's fields, no event lost or stored twice across
the kill, only the newest events kept after an overflow, events in the store of a daemon the client launched.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import subprocess
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
import zmq.auth

from bridge import conformance
from bridge.client import Client as BridgeClient
from bridge.keys import RELAY, key_pair
from bridge.sandbox.gameanalytics import GameAnalyticsSandbox
from bridge.sandbox.server import SandboxServer
from bridge.sandbox.staq import StaqSandbox
from tests.bindings import cpp_build, shipping
from tests.harness import REPO, Daemon, free_port
from tests.sandboxes import GaSandbox, ga_daemon, provider_table, start_sandbox, wait_until
from tests.test_relay import edge_config

SOURCE = cpp_build.SOURCE
RUN_TIMEOUT_S = 240
# The checks each program makes when everything runs; each must report at least this many passed.
MIN_CPP_CHECKS = 140
MIN_C_CHECKS = 70

# No providers: nothing leaves the machine. [configs] becomes the topic config/local.
PROVIDERS = "[providers]\n\n"
INITIAL_CONFIGS = 'difficulty = "hard"\nmax_lives = 5\ntutorial = true\n'
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.MULTILINE)
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def config_text(configs: str) -> str:
    return f"{PROVIDERS}[configs]\n{configs}"


@pytest.fixture
def staq() -> Iterator[tuple[StaqSandbox, SandboxServer]]:
    """The staq sandbox, served on a free loopback port for the test's length."""
    sandbox, server = start_sandbox("staq")
    yield sandbox, server
    server.stop()


@pytest.fixture
def gameanalytics() -> Iterator[SandboxServer]:
    """The GameAnalytics sandbox, whose provider in the daemon refuses events that break GameAnalytics' rules."""
    _, server = start_sandbox("gameanalytics")
    yield server
    server.stop()


class WrongProgram:
    """Another program holding a port: a TCP server that answers every connection like a web server, then
    closes it. Counts the connections it accepted."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.connections += 1
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def wrong_program() -> Iterator[WrongProgram]:
    program = WrongProgram()
    yield program
    program.close()


def staq_daemon(workdir: Path, server: SandboxServer) -> Daemon:
    return Daemon(workdir, config=provider_table("staq", server.url, kind="staq"))


def unverified_purchases(daemon: Daemon) -> int:
    """Purchases the daemon stored and has no verdict for yet."""
    with sqlite3.connect(f"file:{daemon.db_path}?mode=ro", uri=True, timeout=5) as db:
        return db.execute("SELECT count(*) FROM purchases WHERE verified_at IS NULL").fetchone()[0]


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every target of engine_bindings/cpp configured and built (once per run, shared by every xdist worker:
    tests/bindings/cpp_build.py); returns the build directory."""
    return cpp_build.built(tmp_path_factory)


def summary(output: str) -> tuple[int, int]:
    found = SUMMARY.findall(output)
    assert found, f"no 'N passed, N failed' line in:\n{output}"
    passed, failed = found[-1]
    return int(passed), int(failed)


def fields_of(events: list[dict[str, Any]], category: str, **match: Any) -> list[dict[str, Any]]:
    """The `fields` of stored events of a category whose fields contain every `match` item."""
    return [e["fields"] for e in events
            if e["category"] == category and all(e["fields"].get(k) == v for k, v in match.items())]


class Driver:
    """Runs the test program and carries out its `@@` requests on the real daemons and the staq sandbox."""

    def __init__(self, daemon: Daemon, sandbox: StaqSandbox, purchases: Daemon, late: Daemon,
                 wrong: WrongProgram) -> None:
        self.daemon = daemon
        self.sandbox = sandbox
        self.purchases = purchases
        self.late = late
        self.wrong = wrong
        self.lines: list[str] = []
        self.stream_after_kill: int | None = None
        self.faults_while_down: dict[str, int] = {}

    def run(self, cmd: list[str]) -> int:
        env = dict(os.environ, PYTHONPATH=str(REPO))  # the launcher check runs `python -m bridge`
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, cwd=REPO, env=env)
        assert proc.stdin is not None and proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        try:
            while True:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    pytest.fail(f"test program still running after {RUN_TIMEOUT_S}s:\n" + "\n".join(self.lines))
                if line is None:
                    break
                self.lines.append(line)
                if line.startswith("@@ "):
                    proc.stdin.write(self.act(line[3:]) + "\n")
                    proc.stdin.flush()
            return proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)

    def act(self, command: str) -> str:
        name, _, arg = command.partition(" ")
        if name == "freeze":
            assert self.daemon.proc is not None
            self.daemon.proc.send_signal(signal.SIGSTOP)
        elif name == "thaw":
            assert self.daemon.proc is not None
            self.daemon.proc.send_signal(signal.SIGCONT)
        elif name == "count":  # the device's own events, not the daemon's session markers
            return str(sum(e["device_id"] == arg and not e["category"].startswith("session_")
                           for e in self.daemon.events()))
        elif name == "late_start":
            self.late.start()
        elif name == "wrong_connections":
            return str(self.wrong.connections)
        elif name == "kill":
            self.daemon.kill()
            self.stream_after_kill = len(fields_of(self.daemon.events(), "custom", name="stream"))
            return str(self.stream_after_kill)
        elif name == "start":
            self.daemon.start()
        elif name == "config":
            assert self.daemon.config_path is not None and self.daemon.proc is not None
            self.daemon.config_path.write_text(config_text("\n".join(p.strip() for p in arg.split(";")) + "\n"))
            self.daemon.proc.send_signal(signal.SIGHUP)
        elif name == "receipt":
            receipt, verdict = arg.split()
            self.sandbox.register_receipt(receipt, valid=verdict == "valid")
        elif name == "staq_down":
            self.sandbox.faults.fail("iap_apple", status=503, count=None)
        elif name == "staq_up":
            self.faults_while_down = self.sandbox.faults.fired()
            self.sandbox.faults.clear()
            wait_until(lambda: unverified_purchases(self.purchases) == 0, 30, "every stored purchase verified")
        elif name == "staq_daemon_restart":
            self.purchases.restart()
        else:
            pytest.fail(f"unknown request from the test program: {command}")
        return "ok"


def test_cpp_binding_against_the_daemon(build: Path, tmp_path: Path, staq: tuple[StaqSandbox, SandboxServer],
                                        gameanalytics: SandboxServer, wrong_program: WrongProgram) -> None:
    sandbox, server = staq
    # The places (ports, data dir, command line) of a daemon started late on request, and of one the client
    # launches itself.
    late = Daemon(tmp_path / "late", config=PROVIDERS)
    launched = Daemon(tmp_path / "launched", config=PROVIDERS)
    with Daemon(tmp_path / "main", config=config_text(INITIAL_CONFIGS)) as daemon, \
            staq_daemon(tmp_path / "staq", server) as purchases, \
            ga_daemon(tmp_path / "ga", gameanalytics.url) as ga, ExitStack() as cleanup:
        cleanup.callback(late.__exit__)  # started when the program asks; stopped here
        driver = Driver(daemon, sandbox, purchases, late, wrong_program)
        rc = driver.run([str(build / "engine_bridge_test"), daemon.ingress, daemon.publish, purchases.ingress,
                         purchases.publish, ga.ingress, ga.publish, late.ingress, late.publish,
                         wrong_program.endpoint, launched.ingress, launched.publish, str(launched.log_path),
                         *launched.command()])
        output = "\n".join(driver.lines)
        passed, failed = summary(output)
        assert failed == 0 and rc == 0, output
        assert passed >= MIN_CPP_CHECKS, output
        events = daemon.events()
        ga_events = ga.events()
        late_events = late.events()

    # The outage was real (staq answered 503 while the purchases waited) and every purchase reached staq once
    # it was back: the first three, the late one, the earlier run's, the returned player's. The resent
    # purchase was answered from the daemon's store.
    assert driver.faults_while_down.get("iap_apple", 0) >= 1
    verified = [p for p in sandbox.purchases() if p["store"] == "apple"]
    assert len(verified) == 6 and sum(p["isValid"] for p in verified) == 5

    mine = [e for e in events if e["device_id"] == "cpp-test-device"]
    assert all(e["game_build"] == "2.0.0" for e in mine)
    # Every helper's event, with exactly the fields the helper was given.
    assert fields_of(mine, "design", event_id="ui:click:play") == [{"event_id": "ui:click:play", "value": 1.5}]
    assert fields_of(mine, "business") == [
        {"event_id": "gems:pack_small", "amount": 99, "currency": "USD", "cart_type": "shop"}]
    assert fields_of(mine, "progression") == [
        {"event_id": "Complete:world01:level02:boss", "attempt_num": 2, "score": 1200}]
    assert fields_of(mine, "resource") == [{"event_id": "Sink:gold:weapon:sword", "amount": 250.5}]
    assert fields_of(mine, "error") == [{"severity": "critical", "message": "NullReference in Player.Update"}]
    assert fields_of(mine, "ads") == [
        {"ad_action": "show", "ad_type": "rewarded_video", "ad_sdk_name": "admob", "ad_placement": "end_of_level",
         "ad_duration": 30000},
        {"ad_action": "failed_show", "ad_type": "app_open", "ad_sdk_name": "applovin_max", "ad_placement": "launch",
         "ad_fail_show_reason": "unable_to_precache"},
        # The deprecated ad_fb_error extra field reaches the store under its new name, and only so.
        {"ad_action": "failed_show", "ad_type": "video", "ad_sdk_name": "admob", "ad_placement": "end_of_level",
         "ad_duration": 0, "ad_fail_show_reason": "no_fill", "custom_01": "vip"}]
    assert fields_of(mine, "impression") == [
        {"ad_network_name": "max", "ad_network_version": "12.4.1",
         "impression_data": {"revenue": 0.0123, "currency": "USD", "precision": "exact",
                             "ad_unit": {"id": "u-1", "format": "REWARDED"}}},
        {"ad_network_name": "admob", "ad_network_version": "23.0.0",
         "impression_data": {"value_micros": 1200, "currency_code": "EUR"}}]
    [custom] = fields_of(mine, "custom", name="tutorial_step")
    assert custom == {"name": "tutorial_step", "step": 3, "skipped": True, "ratio": 0.25, "tags": ["a", "b"],
                      "nested": {"k": "v"}, "unicode": "h\u00e9llo \u2713"}
    # The generic helper: the caller's id, user and time, and a float that stays a float.
    [generic] = [e for e in mine if e["uid"] == "cpp-generic-1"]
    assert (generic["category"], generic["user_id"], generic["client_ts"]) == ("design", "player-7", 1700000000000)
    assert generic["fields"] == {"event_id": "generic:event", "value": 2.0}
    assert isinstance(generic["fields"]["value"], float)
    client_made = [e for e in mine if not e["category"].startswith("session_") and e["uid"] != "cpp-generic-1"]
    assert all(UUID4.match(e["uid"]) for e in client_made)

    # Across the freeze, kill -9 and restart: every event of the stream once, none lost.
    counts = Counter(e["uid"] for e in events)
    assert max(counts.values()) == 1
    stream = sorted(f["n"] for f in fields_of(mine, "custom", name="stream"))
    assert stream == list(range(2000))
    assert driver.stream_after_kill is not None and driver.stream_after_kill >= 1000
    # 20150 events into a queue of 100 while the daemon was down: only the newest 100 arrive.
    overflow_device = [e for e in events if e["device_id"] == "cpp-overflow-device"]
    overflow = sorted(f["n"] for f in fields_of(overflow_device, "custom", name="overflow"))
    assert overflow == list(range(20050, 20150))

    # The 6 s outage at 1,000 events/s: every event kept by the default queue and stored once.
    assert sorted(f["n"] for f in fields_of(mine, "custom", name="outage")) == list(range(6000))
    # The full queue of 100 kept the event in flight to the frozen daemon and dropped the oldest never sent.
    drops = sorted(f["n"] for f in fields_of([e for e in events if e["device_id"] == "cpp-drops-device"],
                                             "custom", name="drops"))
    assert drops == [0, *range(151, 250)]
    # The events GameAnalytics refuses are stored all the same (and dead-lettered for that provider).
    refused = [e["uid"] for e in ga_events if e["device_id"] == "cpp-ga-device" and e["category"] == "design"]
    assert "cpp-ga-bad-1" in refused and len(refused) == 22
    # The event tracked while no daemon ran reached the daemon started later.
    assert fields_of(late_events, "design", event_id="late:before") == [{"event_id": "late:before"}]

    # The daemon the client launched stored its events and was stopped with the client.
    assert sorted(f["n"] for f in fields_of(launched.events(), "custom", name="launched")) == list(range(10))


def test_c_abi_against_the_daemon(build: Path, tmp_path: Path, staq: tuple[StaqSandbox, SandboxServer],
                                  gameanalytics: SandboxServer) -> None:
    sandbox, server = staq
    receipt = "Yy1hYmktcmVjZWlwdA=="  # base64 "c-abi-receipt"
    sandbox.register_receipt(receipt, valid=True)
    # The daemon the C client launches: a script that records its arguments, then runs the repository's daemon.
    launcher, launched_args, launched_data = tmp_path / "launch.sh", tmp_path / "launched-args", tmp_path / "launched"
    launcher.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{launched_args}"\nexec "{sys.executable}" -m bridge "$@"\n')
    launcher.chmod(0o755)
    launch_ingress, launch_configs = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    with Daemon(tmp_path / "main", config=config_text(INITIAL_CONFIGS)) as daemon, \
            staq_daemon(tmp_path / "staq", server) as purchases, \
            ga_daemon(tmp_path / "ga", gameanalytics.url) as ga:
        result = subprocess.run([str(build / "engine_bridge_c_test"), daemon.ingress, daemon.publish,
                                 purchases.ingress, purchases.publish, receipt, ga.ingress, ga.publish,
                                 f"tcp://127.0.0.1:{free_port()}", str(launcher), launch_ingress, launch_configs,
                                 str(launched_data)],
                                capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
        output = result.stdout + result.stderr
        passed, failed = summary(output)
        assert failed == 0 and result.returncode == 0, output
        assert passed >= MIN_C_CHECKS, output
        events = [e for e in daemon.events() if e["device_id"] == "c-abi-device"]
    # One verification for the verdict in the callback, one for the replayed receipt; the next run's handler
    # got its verdict from the daemon, not from staq.
    assert [(p["isValid"], p["isDuplicate"]) for p in sandbox.purchases()] == [(True, False), (True, True)]
    # The C ABI's `game`, `daemon_executable` and `daemon_arguments` made exactly this command line.
    assert launched_args.read_text().splitlines() == [
        "run", "--ingress", launch_ingress, "--publish", launch_configs, "--parent-pipe", "--game", "c-abi-game",
        "--data-dir", str(launched_data), "--log-level", "info"]
    with sqlite3.connect(launched_data / "bridge.sqlite3") as db:
        assert db.execute("SELECT device_id FROM events WHERE category = 'design'").fetchall() == [("c-abi-launch",)]
    assert {e["category"] for e in events} >= {"design", "business", "progression", "resource", "error", "ads",
                                               "impression", "custom"}
    assert fields_of(events, "design", event_id="c:design") == [{"event_id": "c:design", "value": 2.5}]
    assert fields_of(events, "design", event_id="c:generic") == [{"event_id": "c:generic"}]
    assert fields_of(events, "business") == [{"event_id": "coins:bag", "amount": 199, "currency": "EUR"}]
    assert fields_of(events, "progression") == [{"event_id": "Fail:w1:l3", "score": 10}]
    assert fields_of(events, "resource") == [{"event_id": "Source:gems:reward:chest", "amount": 5.0}]
    assert fields_of(events, "error") == [{"severity": "warning", "message": "low memory"}]
    assert fields_of(events, "ads") == [
        {"ad_action": "clicked", "ad_type": "banner", "ad_sdk_name": "admob", "ad_placement": "menu"},
        {"ad_action": "failed_show", "ad_type": "app_open", "ad_sdk_name": "admob", "ad_placement": "launch",
         "ad_fail_show_reason": "no_fill"}]
    assert fields_of(events, "impression") == [
        {"ad_network_name": "max", "ad_network_version": "12.4.1", "impression_data": {"revenue": 0.01, "currency": "USD"}}]
    assert fields_of(events, "custom") == [{"name": "c_custom", "level": 3}]
    # eb_track_with: the event's own id, player and time.
    [opt] = [e for e in events if e["uid"] == "c-opt-1"]
    assert (opt["user_id"], opt["client_ts"], opt["fields"]) == ("player-3", 1700000000123, {"event_id": "c:opts"})


def test_conformance_vectors(build: Path) -> None:
    """The wire code (msgpack writer and reader, request builders, reply readers, local checks) against the
    vectors every binding shares."""
    result = subprocess.run([str(build / "engine_bridge_conformance"), str(conformance.VECTORS_PATH)],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    passed, failed = summary(output)
    assert failed == 0 and result.returncode == 0, output
    vectors = json.loads(conformance.VECTORS_PATH.read_text(encoding="utf-8"))
    trees = sum(len(vectors[k]) for k in ("msgpack", "requests", "replies", "publications"))
    assert passed >= 2 * trees, output  # a reader and a writer check each, at least
    # Every request type the binding sends is built, and its local checks meet most limit cases.
    built = int(re.search(r"request builders: (\d+) built", output).group(1))
    compared = int(re.search(r"local checks: (\d+) compared", output).group(1))
    assert built >= 17 and compared >= 25, output


def test_installed_package_in_a_consumer_built_without_exceptions(build: Path, tmp_path: Path) -> None:
    """`cmake --install`, then a separate project finds it with find_package(engine_bridge CONFIG REQUIRED)
    and builds with -fno-exceptions (the C++ API) and as C (the shared C ABI)."""
    prefix, out = tmp_path / "prefix", tmp_path / "consumer"
    installed = subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)], capture_output=True,
                               text=True, timeout=120)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    configure = subprocess.run(["cmake", "-S", str(SOURCE / "tests" / "consumer"), "-B", str(out),
                                f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_C_COMPILER=gcc", "-DCMAKE_CXX_COMPILER=g++"],
                               capture_output=True, text=True, timeout=120)
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compiled = subprocess.run(["cmake", "--build", str(out), "-j", "2"], capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    with Daemon(tmp_path / "daemon", config=PROVIDERS) as daemon:
        run = subprocess.run([str(out / "consumer"), daemon.ingress, daemon.publish], capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        events = [e for e in daemon.events() if e["device_id"] == "consumer-device"]
    assert "refused: TrackDesign: event_id" in run.stdout
    assert fields_of(events, "design") == [{"event_id": "consumer:built", "value": 1.0}]
    run_c = subprocess.run([str(out / "consumer_c")], capture_output=True, text=True, timeout=30)
    assert run_c.returncode == 0 and "game_build" in run_c.stdout, run_c.stdout + run_c.stderr


def test_sample_program(build: Path, tmp_path: Path) -> None:
    with Daemon(tmp_path, config=config_text(INITIAL_CONFIGS)) as daemon:
        result = subprocess.run([str(build / "engine_bridge_sample"), daemon.ingress, daemon.publish],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        events = [e for e in daemon.events() if e["device_id"] == "sample-device"]
    assert "config difficulty = hard" in result.stdout
    assert "refused: TrackResource: amount must be a finite number, got NaN" in result.stdout
    assert "flush: done" in result.stdout
    categories = Counter(e["category"] for e in events)
    assert categories == {"design": 1, "business": 1, "progression": 2, "resource": 1, "ads": 1, "error": 1,
                          "custom": 1, "session_start": 1, "session_end": 1}


def ship_game(build: Path, install: shipping.Install, *args: str) -> list[str]:
    """The C++ game program copied into the install folder, as a shipped game's executable is."""
    program = install.folder / "engine_bridge_ship_test"
    if not program.exists():
        shutil.copy2(build / "engine_bridge_ship_test", program)
    return [str(program), *args]


@pytest.mark.alone
@pytest.mark.parametrize("quit_cleanly", [False, True], ids=["killed", "quits"])
def test_cpp_game_with_the_bundled_daemon(build: Path, install: shipping.Install, tmp_path: Path,
                                          quit_cleanly: bool) -> None:
    mode = "quit" if quit_cleanly else "play"
    shipping.play(ship_game(build, install, mode, install.game, shipping.DAEMON, str(shipping.COUNT)), install,
                  tmp_path, quit_cleanly)


@pytest.mark.alone
def test_cpp_bundled_daemon_missing_and_another_games_daemon(build: Path, install: shipping.Install,
                                                            tmp_path: Path) -> None:
    with Daemon(tmp_path / "other", extra_args=["--game", "other-game"]) as other:
        shipping.missing_and_wrong_game(
            ship_game(build, install, "missing", install.game, "engine-bridge-missing/engine-bridge"),
            ship_game(build, install, "missing", install.game, shipping.NOT_EXECUTABLE),
            ship_game(build, install, "wrong", install.game, other.ingress, other.publish, str(shipping.COUNT)),
            install, tmp_path, other)


@pytest.mark.alone
def test_cpp_game_killed_stops_the_daemon_its_own_command_launched(build: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings::daemon.command, a command of the game's own without --parent-pipe: a game killed with SIGKILL
    still takes its daemon down within 3 s (Linux: PR_SET_PDEATHSIG, SIGTERM: a clean stop), every acknowledged
    event in its store."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the command runs `python -m bridge`
    launched = Daemon(tmp_path / "launched")
    install = shipping.Install(tmp_path, Path(tempfile.mkdtemp(prefix="eb-", dir="/tmp")))
    game = shipping.Game([str(build / "engine_bridge_ship_test"), "command", install.game, launched.ingress,
                          launched.publish, str(shipping.COUNT), *launched.command()], install, tmp_path)
    try:
        pid = int(game.wait_for("ACKED")[2])
        game.wait_for("PLAYING")
        game.proc.send_signal(signal.SIGKILL)
        wait_until(lambda: shipping.gone(pid), shipping.GONE_WITHIN_S, f"the daemon (pid {pid}) gone after the game")
        # Its log (its standard error is the game's) says it stopped on SIGTERM, cleanly.
        wait_until(lambda: "stopped:" in "\n".join(game.output()), 5, "the daemon's last log line")
        assert "SIGTERM: stopping" in "\n".join(game.output()), game.output()
    finally:
        game.close()
        shutil.rmtree(install.home, ignore_errors=True)
    assert sorted(e["fields"]["n"] for e in launched.events() if e["category"] == "custom") == list(
        range(shipping.COUNT))


# --- Engines straight to a relay (issue 15): Settings::relay, CURVE over loopback, the GameAnalytics sandbox ---

RELAY_GAME = "engine_bridge_relay_test"


class Relay:
    """A relay daemon (tests/test_relay.py's kind) whose GameAnalytics provider delivers to the sandbox (or with
    `providers` of its own), with its CURVE ingress and configs sockets on free loopback ports."""

    def __init__(self, workdir: Path, ga_url: str, remote_configs: bool = True, providers: str | None = None) -> None:
        self.port, self.publish_port = free_port(), free_port()
        providers = providers or provider_table("gameanalytics", ga_url, remote_configs=remote_configs)
        self.daemon = Daemon(workdir, config=providers +
                             f'[relay]\nbind = "tcp://127.0.0.1:{self.port}"\n'
                             f'publish = "tcp://127.0.0.1:{self.publish_port}"\n')

    def __enter__(self) -> Relay:
        self.daemon.__enter__()
        self.key = key_pair(self.daemon.data_dir, RELAY).public.decode()
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.__exit__(*exc)

    def game(self, build: Path, mode: str, key_file: Path, device: str, tag: str, count: int, *config: str,
             relay_key: str | None = None) -> subprocess.CompletedProcess[str]:
        """The C++ program straight to this relay (its configs socket too), with `relay_key` for the relay's."""
        return subprocess.run([str(build / RELAY_GAME), mode, f"tcp://127.0.0.1:{self.port}",
                               f"tcp://127.0.0.1:{self.publish_port}", relay_key or self.key, str(key_file), device,
                               tag, str(count), *config], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)

    def owner(self, device: str) -> str | None:
        """The client key the relay binds `device` to."""
        with sqlite3.connect(f"file:{self.daemon.db_path}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT client_key FROM devices WHERE device_id = ?", (device,)).fetchone()
        return row[0] if row else None

    def stats(self) -> dict[str, Any]:
        with BridgeClient(self.daemon.ingress) as local:
            local.hello(role="tool")
            figures: dict[str, Any] = local.request({"type": "stats"})["relay"]
        return figures


def delivered(sb: GameAnalyticsSandbox, prefix: str, count: int) -> list[dict[str, Any]]:
    """The sandbox's accepted design records of events `prefix:0` ... once all `count` are there, else []."""
    records = [r for r in sb.accepted(category="design") if r["event"]["event_id"].startswith(prefix + ":")]
    return records if len(records) >= count else []


def test_cpp_straight_to_a_relay_over_curve_keeps_its_key_and_gets_its_configs(
        build: Path, tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    """Settings::relay: a C++ game with no daemon beside it sends over CURVE to the relay, which delivers to the
    GameAnalytics sandbox as the player (X-Forwarded-For: the player's address); the key pair is made once in the
    save data (owner-only) and the same key says hello at the next start (the relay would refuse another for
    the device: a fresh key file proves it); the relay's configs for the device reach the config callback."""
    sb, server = ga_sandbox
    sb.set_remote_configs([{"key": "gravity", "value": "80"}])
    save = tmp_path / "save"
    save.mkdir()
    key_file = save / "engine-bridge.key"
    with Relay(tmp_path / "relay", server.url) as relay:
        first = relay.game(build, "send", key_file, "cpp-relay-device", "relay1", 20, "gravity", "80")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "CONFIG gravity = 80" in first.stdout and "ACKED 20 stored 20 of 20" in first.stdout, first.stdout
        assert key_file.stat().st_mode & 0o777 == 0o600
        public, secret = zmq.auth.load_certificate(str(key_file))  # a ZeroMQ certificate, as pyzmq writes them
        assert secret is not None and zmq.curve_public(secret) == public
        assert relay.owner("cpp-relay-device") == public.decode()
        made = key_file.read_bytes()

        second = relay.game(build, "send", key_file, "cpp-relay-device", "relay2", 5)
        assert second.returncode == 0, second.stdout + second.stderr
        assert key_file.read_bytes() == made  # read back, not made again
        wait_until(lambda: delivered(sb, "relay1", 20) and delivered(sb, "relay2", 5), 60,
                   "both runs' events at the sandbox, through the relay")
        # Another install's key for the same device: the relay refuses its hello, and it keeps its events.
        other = relay.game(build, "refused", save / "another.key", "cpp-relay-device", "stolen", 3)
        assert other.returncode == 0, other.stdout + other.stderr
        assert "belongs to another client key" in other.stdout and "REFUSED 1 connected=0 queued=3" in other.stdout
        assert relay.owner("cpp-relay-device") == public.decode()
        at_relay = [e for e in relay.daemon.events() if e["device_id"] == "cpp-relay-device"]
    assert sorted(r["event"]["event_id"] for r in delivered(sb, "relay1", 20)) == sorted(
        f"relay1:{n}" for n in range(20))
    assert {r["forwarded_for"] for r in delivered(sb, "relay1", 20) + delivered(sb, "relay2", 5)} == {"127.0.0.1"}
    assert not any(e["fields"].get("event_id", "").startswith("stolen:") for e in at_relay)
    assert sorted(e["fields"]["event_id"] for e in at_relay if e["category"] == "design") == sorted(
        [f"relay1:{n}" for n in range(20)] + [f"relay2:{n}" for n in range(5)])
    for output in (first, second, other):  # the secret key is never written anywhere but its file
        assert secret.decode() not in output.stdout + output.stderr


def test_cpp_with_a_wrong_relay_key_never_connects_and_keeps_its_events(
        build: Path, tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    """A relay key that is not the relay's: the CURVE handshake fails, the binding says it is not connected
    (ConnectionState::WrongPeer, the reason in its log, once) and keeps every event, dialling again with a
    growing delay; the relay counts each refusal and stores nothing. A damaged key file is refused at Connect and left as it is."""
    sb, server = ga_sandbox
    key_file = tmp_path / "engine-bridge.key"
    with Relay(tmp_path / "relay", server.url, remote_configs=False) as relay:
        assert relay.stats()["handshakes_refused"] == 0
        wrong = zmq.curve_keypair()[0].decode()
        # The game plays on, refused: it dials again after 1 s, 2 s, 4 s (not libzmq's 100 ms each time), stays
        # WrongPeer, never taken for a relay that is away, and warns once.
        game = subprocess.Popen([str(build / RELAY_GAME), "refused-hold", f"tcp://127.0.0.1:{relay.port}", "-", wrong,
                                 str(key_file), "cpp-wrong-key", "wrong", "7"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert game.stdout is not None and game.stdin is not None
            refused = ""
            while not refused.splitlines()[-1:] or not refused.splitlines()[-1].startswith("REFUSED"):
                line = game.stdout.readline()
                assert line, refused
                refused += line
            assert "REFUSED 1 connected=0 queued=7 acknowledged=0" in refused, refused
            first = wait_until(lambda: relay.stats()["handshakes_refused"], 30, "the relay's count of refused handshakes")
            began = time.monotonic()
            wait_until(lambda: relay.stats()["handshakes_refused"] >= first + 3, 60, "three more refused handshakes")
            redialled_in = time.monotonic() - began
            out, err = game.communicate("stop\n", timeout=30)
        finally:
            if game.poll() is None:
                game.kill()
                game.wait(5)
        assert game.returncode == 0, refused + out + err
        assert "HELD connected=0 queued=7 acknowledged=0" in out, out
        assert redialled_in > 5, f"three redials in {redialled_in:.1f} s"
        states = [line.split()[1] for line in (refused + out).splitlines() if line.startswith("STATE ")]
        assert states == ["wrong_peer"], refused + out
        # The binding's console (standard error) says why, once.
        assert err.count("refuses this client's CURVE handshake") == 1, err
        assert relay.owner("cpp-wrong-key") is None
        assert not [e for e in relay.daemon.events() if e["device_id"] == "cpp-wrong-key"]

        key_file.write_text(key_file.read_text().replace("secret-key", "secret-kez"))
        damaged = key_file.read_bytes()
        result = relay.game(build, "send", key_file, "cpp-wrong-key", "damaged", 1)
        assert result.returncode == 3 and "does not hold a CURVE key pair" in result.stdout, result.stdout
        assert key_file.read_bytes() == damaged
    assert not sb.accepted(category="design")


def test_cpp_sample_through_edge_and_relay(build: Path, tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    """The sample program beside an edge (a daemon whose one provider is the relay, no provider secret): its
    session and events reach the GameAnalytics sandbox through the edge and the relay."""
    sb, server = ga_sandbox
    with Relay(tmp_path / "relay", server.url, remote_configs=False) as relay, \
            Daemon(tmp_path / "edge", edge_config(relay.port, relay.key.encode())) as edge:
        result = subprocess.run([str(build / "engine_bridge_sample"), edge.ingress, edge.publish],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "flush: done" in result.stdout
        wait_until(lambda: sb.accepted_events(category="session_end") and
                   len(sb.accepted_events(category="progression")) == 2, 60,
                   "the sample's session at the sandbox, through edge and relay")
        at_relay = Counter(e["category"] for e in relay.daemon.events() if e["device_id"] == "sample-device")
    assert [e["event_id"] for e in sb.accepted_events(category="design")] == ["ui:click:play"]
    assert [e["event_id"] for e in sb.accepted_events(category="business")] == ["gems:pack_small"]
    assert sorted(e["event_id"] for e in sb.accepted_events(category="progression")) == [
        "Complete:world01:level01", "Start:world01:level01"]
    assert {r["forwarded_for"] for r in sb.accepted()} == {"127.0.0.1"}
    assert at_relay["design"] == 1 and at_relay["progression"] == 2 and at_relay["session_end"] == 1


def test_c_abi_straight_to_a_relay(build: Path, tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    """The C ABI's relay_* settings: a C program's events reach the sandbox through the relay over CURVE, under
    the key it made in its key file."""
    sb, server = ga_sandbox
    key_file = tmp_path / "c-engine-bridge.key"
    with Relay(tmp_path / "relay", server.url, remote_configs=False) as relay:
        result = subprocess.run([str(build / "engine_bridge_c_relay_test"), f"tcp://127.0.0.1:{relay.port}",
                                 relay.key, str(key_file), "c-relay-device", "4"],
                                capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ACKED 4 stored 4 connected 1" in result.stdout
        assert relay.owner("c-relay-device") == zmq.auth.load_certificate(str(key_file))[0].decode()
        records = wait_until(lambda: delivered(sb, "c-relay", 4), 60, "the C program's events at the sandbox")
    assert sorted(r["event"]["event_id"] for r in records) == [f"c-relay:{n}" for n in range(4)]
    assert {r["forwarded_for"] for r in records} == {"127.0.0.1"}


STAQ_WAIT_S = 7  # staq's answer to the first verification comes this late: after the relay's 5 s reply wait


def test_cpp_purchase_straight_to_a_relay_gets_its_verdict_through_the_subscription(
        build: Path, tmp_path: Path, staq: tuple[StaqSandbox, SandboxServer]) -> None:
    """VerifyPurchase straight to a relay whose staq provider verifies it (staq's secret stays there): staq
    answers after the relay's 5 s wait, so the relay replies `pending` and the verdict is published on the
    device's purchase topic behind this install's key (protocol.md 11.4); the binding's subscription gets it,
    and VerifyPurchase's callback runs once with it. The same receipt again is a duplicate."""
    sb, server = staq
    receipt = base64.b64encode(os.urandom(16)).decode()
    sb.register_receipt(receipt, valid=True)
    sb.faults.slow("iap_apple", delay_s=STAQ_WAIT_S, count=1)
    key_file = tmp_path / "engine-bridge.key"
    # The relay's HTTP timeout outlasts staq's slow answer (the tests' fast one, 2 s, would retry it sooner).
    providers = provider_table("staq", server.url, kind="staq", timeout=STAQ_WAIT_S * 2)
    with Relay(tmp_path / "relay", "", providers=providers) as relay:
        result = relay.game(build, "purchase", key_file, "cpp-buyer", receipt, 2)
        assert result.returncode == 0, result.stdout + result.stderr
        with sqlite3.connect(f"file:{relay.daemon.db_path}?mode=ro", uri=True, timeout=5) as db:
            stored = db.execute("SELECT purchase_id, is_valid, is_duplicate FROM purchases WHERE device_id = ? "
                                "ORDER BY purchase_id", ("cpp-buyer",)).fetchall()
        assert relay.owner("cpp-buyer") == zmq.auth.load_certificate(str(key_file))[0].decode()
    verdicts = {words[1]: dict(w.split("=", 1) for w in words[2:6])
                for words in (line.split() for line in result.stdout.splitlines()) if words[:1] == ["VERDICT"]}
    assert set(verdicts) == {"cpp-buyer-buy-0", "cpp-buyer-buy-1"}, result.stdout  # each once
    first, replay = verdicts["cpp-buyer-buy-0"], verdicts["cpp-buyer-buy-1"]
    assert (first["ok"], first["valid"], first["duplicate"]) == ("1", "1", "0"), result.stdout
    # Later than the relay's reply (pending, after 5 s): the verdict came on the subscription.
    assert int(first["after_ms"]) >= STAQ_WAIT_S * 1000 - 500, result.stdout
    assert (replay["ok"], replay["duplicate"]) == ("1", "1"), result.stdout
    assert sb.faults.fired().get("iap_apple") == 1, sb.faults.fired()
    assert stored == [("cpp-buyer-buy-0", 1, 0), ("cpp-buyer-buy-1", 1, 1)], stored
    assert [p["receipt"] for p in sb.purchases()] == [receipt, receipt]
