"""The bundled daemon (`engine-bridge bundle`, built once per run: tests/bundle_build.py) as a player's machine
runs it: from a clean environment (`env -i`: no venv, no PATH, no HOME), with no Python of the system's."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from bridge.bundle import pyinstaller_args, size_bytes
from bridge.game import default_endpoints
from tests import bundle_build
from tests.harness import Client, free_port, make_event
from tests.sandboxes import GaSandbox, wait_until


@pytest.fixture(scope="session")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundle_build.daemon_program(tmp_path_factory)


def clean_run(program: Path, *args: str, home: Path) -> subprocess.Popen[bytes]:
    """The bundle started as a launcher would on a player's machine: nothing inherited but a HOME."""
    log = open(home / "daemon.log", "ab")
    try:
        return subprocess.Popen(["env", "-i", f"HOME={home}", str(program), *args], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def first_welcome(endpoint: str, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the bundled daemon exited with {proc.returncode}"
        try:
            with Client(endpoint, timeout_ms=100, device_id="smoke-device") as client:
                return client.hello(game_build="1.0.0")
        except TimeoutError:
            continue
    raise AssertionError(f"no welcome within {timeout_s} s")


def test_pyinstaller_is_asked_for_one_folder_with_third_party_providers(tmp_path: Path) -> None:
    args = pyinstaller_args(tmp_path / "out", tmp_path, tmp_path / "main.py", ["acme_provider"])
    assert "--onedir" in args and "--onefile" not in args
    assert args[args.index("--collect-submodules") + 1] == "acme_provider"
    assert args[args.index("--copy-metadata") + 1] == "acme_provider"  # its entry point is found


@pytest.mark.alone
def test_bundle_smoke_from_a_clean_environment(program: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    """A hello is welcomed on the game's own (ipc://) endpoints, an event acknowledged is in the game's store,
    SIGTERM stops it cleanly; its size and time to the first welcome are printed at the end of the run."""
    game = f"smoke-{uuid.uuid4().hex[:8]}"
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)  # as under env -i
    ingress, _ = default_endpoints(game)
    started = time.monotonic()
    proc = clean_run(program, "run", "--game", game, home=tmp_path)
    try:
        welcome = first_welcome(ingress, proc)
        took = time.monotonic() - started
        assert (welcome["type"], welcome["game"]) == ("welcome", game)
        with Client(ingress, device_id="smoke-device") as client:
            client.hello()
            event = make_event("design", event_id="smoke:start")
            assert client.request({"type": "event", "event": event})["stored"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert not Path(ingress[len("ipc://"):]).exists()  # the socket went with the daemon
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(Path(ingress[len("ipc://"):]).parent, ignore_errors=True)  # the rest stays the user's
    store = tmp_path / ".local" / "share" / "engine-bridge" / "games" / game / "bridge.sqlite3"
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT uid FROM events WHERE category = 'design'").fetchall() == [(event["id"],)]
    log = (store.parent / "engine-bridge.log").read_text()
    assert "SIGTERM: stopping" in log and "stopped: 1 events stored this run" in log
    bundle_build.record(tmp_path_factory, f"one folder, {size_bytes(program.parent) / 1e6:.1f} MB; first welcome "
                                          f"{took:.2f} s after the start (env -i)")


@pytest.mark.alone
def test_bundled_daemon_forwards_nothing_unless_configured(program: Path, tmp_path: Path,
                                                           ga_sandbox: GaSandbox) -> None:
    """No configuration: events are stored and acknowledged, nothing reaches the (local) GameAnalytics sandbox,
    and `status` says why. A provider table without keys does not start; with --sandbox the same table delivers
    there (so the sandbox would have seen what a default sent)."""
    sandbox, server = ga_sandbox
    ingress, publish = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    where = ["--ingress", ingress, "--publish", publish, "--data-dir", str(tmp_path / "data")]
    config = tmp_path / "bridge.toml"
    config.write_text(f'[providers.gameanalytics]\nendpoint = "{server.url}"\ninterval = 0.1\n')

    def send_and_flush(proc: subprocess.Popen[bytes], event_id: str) -> None:
        first_welcome(ingress, proc)
        with Client(ingress, device_id="quiet-device") as client:
            client.hello(game_build="1.0.0")
            assert client.request({"type": "event", "event": make_event("design", event_id=event_id)})["stored"] == 1
            client.request({"type": "flush"})

    proc = clean_run(program, "run", *where, home=tmp_path)
    try:
        send_and_flush(proc, "quiet:start")
        status = subprocess.run(["env", "-i", str(program), "status", "--ingress", ingress], capture_output=True,
                                text=True, timeout=30)
        assert "forwarding NOTHING: no provider is configured" in status.stdout, status.stdout + status.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "WARNING bridge.daemon: no provider is configured" in (tmp_path / "daemon.log").read_text()
    keyless = subprocess.run(["env", "-i", f"HOME={tmp_path}", str(program), "run", *where, "--config", str(config)],
                             capture_output=True, text=True, timeout=30)
    assert keyless.returncode == 2 and "game_key" in keyless.stderr, keyless.stderr
    assert sandbox.accepted_events() == []

    proc = clean_run(program, "run", *where, "--config", str(config), "--sandbox", home=tmp_path)
    try:
        send_and_flush(proc, "sandbox:start")
        wait_until(lambda: len(sandbox.accepted_events(category="design")) == 2, 20, "the --sandbox delivery")
    finally:
        proc.kill()
        proc.wait(5)
    # What was stored while no provider was configured goes once one is: stored, never lost.
    assert sorted(e["event_id"] for e in sandbox.accepted_events(category="design")) == ["quiet:start",
                                                                                       "sandbox:start"]
    assert os.path.getsize(tmp_path / "data" / "bridge.sqlite3") > 0
