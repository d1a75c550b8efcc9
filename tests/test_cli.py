"""The `engine-bridge` command as a user runs it, against a real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bridge import __version__
from tests.harness import Daemon, free_port

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_version_and_help() -> None:
    assert cli("--version").stdout.strip() == f"engine-bridge {__version__}"
    out = cli("--help").stdout
    for command in ("run", "status", "send", "configs", "demo"):
        assert command in out


def test_send_then_status(daemon: Daemon) -> None:
    sent = cli("send", "design", "event_id=ui:play", "value=1.5", "--ingress", daemon.ingress)
    assert sent.returncode == 0, sent.stderr
    ack = json.loads(sent.stdout)
    assert (ack["type"], ack["stored"]) == ("ack", 1)
    [row] = [e for e in daemon.events() if e["category"] == "design"]
    assert row["fields"] == {"event_id": "ui:play", "value": 1.5} and row["device_id"] == "cli"
    status = cli("status", "--ingress", daemon.ingress)
    assert status.returncode == 0
    assert "1 stored" in status.stdout and "sqlite:///" in status.stdout
    raw = json.loads(cli("status", "--json", "--ingress", daemon.ingress).stdout)
    assert raw["stored"] == 1


def test_status_shows_providers_with_their_trouble() -> None:
    from bridge.cli import format_status

    stats = {"daemon_version": "0.1.0", "uptime_s": 5, "clients": 1, "received": 3, "stored": 3, "duplicates": 0,
             "rejected": 0, "errors": 0, "rate_10s": 0.3, "last_errors": [],
             "store": {"url": "sqlite:///x", "events": 3, "undelivered": 3, "trimmed": 0},
             "providers": {"gameanalytics": {"queued": 3, "in_flight": 0, "delivered": 7, "dead_lettered": 1,
                                             "last_error": "HTTP 503 from the events route",
                                             "last_error_at": 1795600000000, "next_retry_at": None,
                                             "paused": "init refused with 401", "clock_offset_s": 2}}}
    page = format_status(stats)
    assert "gameanalytics: 3 queued, 0 in flight, 7 delivered, 1 dead-lettered" in page
    assert "PAUSED: init refused with 401" in page and "HTTP 503 from the events route" in page
    assert "clock_offset_s 2" in page
    assert "held" not in page  # no player's events wait for consent
    stats["store"] = {**stats["store"], "held": 2}
    assert "3 not yet delivered, 2 held for their players' consent" in format_status(stats)
    assert "this daemon" not in page and "leases" not in page  # one daemon on SQLite
    stats["store"]["daemon"] = "relay-2:41:ab12"
    stats["providers"]["gameanalytics"].update(leases={"relay-2:41:ab12": 40, "relay-1:7:cd34": 25}, leases_lost=1,
                                               taken_over=12, duplicates=9)
    page = format_status(stats)
    assert "store      sqlite:///x, this daemon relay-2:41:ab12" in page
    assert "leases: relay-1:7:cd34 25, relay-2:41:ab12 40; 1 lost, 12 taken over, 9 sent twice" in page


def test_send_reports_a_rejected_event(daemon: Daemon) -> None:
    sent = cli("send", "business", "event_id=gems:pack", "amount=1.5", "currency=USD", "--ingress", daemon.ingress)
    assert sent.returncode == 1
    assert json.loads(sent.stdout)["rejected"][0]["code"] == "wrong_type"


def test_configs_once_and_follow(daemon: Daemon) -> None:
    once = cli("configs", "--once", "--ingress", daemon.ingress)
    assert json.loads(once.stdout)["values"]["difficulty"] == "normal"
    follow = cli("configs", "--seconds", "1.5", "--publish", daemon.publish)
    assert json.loads(follow.stdout.splitlines()[0])["topic"] == "config/local"


def test_status_without_a_daemon_says_so() -> None:
    out = cli("status", "--ingress", f"tcp://127.0.0.1:{free_port()}")
    assert out.returncode == 1 and "is the daemon running?" in out.stderr


def test_run_with_a_bad_config_explains(tmp_path: Path) -> None:
    bad = tmp_path / "b.toml"
    bad.write_text('[store]\ndurability = "maybe"\n')
    out = cli("run", "--config", str(bad))
    assert out.returncode == 2 and "store.durability" in out.stderr


def test_secrets_never_reach_the_log(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ENGINE_BRIDGE_STORE_URL", "sqlite:///" + str(tmp_path / "x.db"))
    config = '[providers.gameanalytics]\ngame_key = "k"\nsecret_key = "TOPSECRET-123"\n'
    with Daemon(tmp_path, config=config, extra_args=["--log-level", "debug"]) as daemon:
        cli("send", "design", "event_id=a", "--ingress", daemon.ingress)
        cli("status", "--ingress", daemon.ingress)
    assert "TOPSECRET-123" not in daemon.log()
