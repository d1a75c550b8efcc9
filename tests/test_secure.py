"""A relay's CURVE ingress (bridge/secure.py): who may connect, what one client key may send, what it may read.

Daemon-level: a real daemon with a `[relay]` table, real CURVE handshakes over loopback TCP."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from bridge.client import Client, NoReply
from bridge.keys import RELAY, KeyPair, key_pair
from tests.harness import Daemon, free_port, make_event
from tests.postgres import PostgresServer
from tests.sandboxes import wait_until

RATE = 0.2  # events/s per key: a third batch of 10 is over it unless 50 s passed since the second
BURST = 20


def relay_config(port: int, allow: tuple[bytes, ...] = ()) -> str:
    keys = ", ".join(f'"{key.decode()}"' for key in allow)
    return (f'[relay]\nbind = "tcp://127.0.0.1:{port}"\nallow = [{keys}]\n'
            f"events_per_second = {RATE}\nburst_events = {BURST}\n")


class Relay:
    def __init__(self, daemon: Daemon, port: int) -> None:
        self.daemon = daemon
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.public = key_pair(daemon.data_dir, RELAY).public  # the file the daemon made at its first start

    def client(self, device_id: str, keys: KeyPair | None = None, relay_key: bytes | None = None,
               timeout_ms: int = 5000) -> Client:
        return Client(self.endpoint, timeout_ms, device_id, relay_key or self.public, keys)

    def figures(self) -> dict[str, Any]:
        with Client(self.daemon.ingress) as local:
            local.hello(role="tool")
            return dict(local.request({"type": "stats"})["relay"])


def start_relay(tmp_path: Path, allow: tuple[bytes, ...] = ()) -> Iterator[Relay]:
    port = free_port()
    with Daemon(tmp_path, relay_config(port, allow)) as daemon:
        yield Relay(daemon, port)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    yield from start_relay(tmp_path)


def test_a_curve_client_is_served_with_its_address_as_its_players_ip(relay: Relay) -> None:
    with relay.client("phone-1") as phone:
        assert phone.hello(user_id="ana")["type"] == "welcome"
        ack = phone.request({"type": "events", "events": [make_event("design", event_id="relay:one")]})
        assert ack["stored"] == 1
        refused = phone.request({"type": "stats"})
        assert refused["type"] == "error" and refused["code"] == "forbidden"
    with sqlite3.connect(relay.daemon.db_path) as db:
        assert db.execute("SELECT user_id, user_ip FROM sessions").fetchall() == [("ana", "127.0.0.1")]
    assert relay.figures()["client_keys"] == 1
    with relay.client("phone-1") as forger:  # another key (each Client makes its own pair) as the same device
        refused = forger.hello(user_id="ana")
    assert refused["type"] == "error" and refused["code"] == "forbidden" and refused["field"] == "device_id"
    with sqlite3.connect(relay.daemon.db_path) as db:
        [(owner,)] = db.execute("SELECT client_key FROM devices WHERE device_id = 'phone-1'").fetchall()
    assert owner is not None and len(owner) == 40


def test_the_relay_key_is_kept_owner_only_and_printed_by_the_cli(relay: Relay) -> None:
    printed = subprocess.run([sys.executable, "-m", "bridge", "keys", "--data-dir", str(relay.daemon.data_dir)],
                             capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    assert printed.encode() == relay.public == key_pair(relay.daemon.data_dir, RELAY).public  # kept, not made anew
    secret_file = relay.daemon.data_dir / f"{RELAY}.key_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert key_pair(relay.daemon.data_dir, RELAY).secret.decode() not in relay.daemon.log()


def test_wrong_server_key_and_null_clients_are_refused_at_the_handshake(relay: Relay) -> None:
    impostor = KeyPair(*zmq.curve_keypair()).public  # not the relay's key
    with relay.client("phone-2", relay_key=impostor, timeout_ms=500) as phone:
        with pytest.raises(NoReply):
            phone.hello()
    wait_until(lambda: relay.figures()["handshakes_refused"] >= 1, what="the wrong-key handshake counted")
    with Client(relay.endpoint, 500, "plain") as null_client:  # NULL security on the CURVE socket
        with pytest.raises(NoReply):
            null_client.hello()
    wait_until(lambda: relay.figures()["handshakes_refused"] >= 2, what="the NULL handshake counted")
    with relay.client("phone-3") as phone:  # and the relay still serves
        assert phone.hello()["type"] == "welcome"


def test_only_allowed_client_keys_connect_when_the_relay_has_an_allow_list(tmp_path: Path) -> None:
    allowed, other = KeyPair(*zmq.curve_keypair()), KeyPair(*zmq.curve_keypair())
    for relay in start_relay(tmp_path, allow=(allowed.public,)):
        with relay.client("stranger", other, timeout_ms=500) as stranger:
            with pytest.raises(NoReply):
                stranger.hello()
        wait_until(lambda: relay.figures()["keys_refused"] == 1, what="the unknown key refused by the ZAP handler")
        with relay.client("known", allowed) as known:
            assert known.hello()["type"] == "welcome"


def test_a_client_key_over_its_rate_gets_rate_limited_and_the_others_are_served(relay: Relay) -> None:
    batches = [[make_event("design", event_id=f"flood:{n}") for n in range(BURST // 2)] for _ in range(3)]
    with relay.client("flooder") as flooder, relay.client("player") as player:
        flooder.hello()
        player.hello()
        replies = [flooder.request({"type": "events", "events": batch}) for batch in batches]
        assert [r.get("stored") for r in replies[:2]] == [BURST // 2, BURST // 2]
        limited = replies[2]
        assert limited["type"] == "error" and limited["code"] == "rate_limited"
        assert 0 < limited["detail"]["retry_after_ms"] <= 1000 * BURST / RATE
        assert player.request({"type": "event", "event": make_event("design")})["stored"] == 1
    assert relay.figures()["rate_limited"] == 1


def test_a_client_keys_daily_quota_is_the_stores_across_a_fleet_of_relays_and_a_restart(tmp_path: Path) -> None:
    """Two relays on one PostgreSQL store count one client key's day together, and a restarted relay goes on
    from the stored count (a forged client cannot multiply its quota by the relays, or by waiting for one to
    restart)."""
    pg = PostgresServer().start()
    try:
        ports = [free_port(), free_port()]
        configs = [f'[relay]\nbind = "tcp://127.0.0.1:{port}"\nevents_per_second = 1000\nburst_events = 1000\n'
                   "events_per_day = 25\n" for port in ports]
        keys = key_pair(tmp_path / "game", "client")
        batch = [make_event("design", event_id=f"q:{n}") for n in range(20)]

        def send(relay: Relay, events: list[dict[str, Any]]) -> dict[str, Any]:
            with relay.client("quota-device", keys) as client:
                client.hello()
                return client.request({"type": "events", "events": events})

        with Daemon(tmp_path / "a", configs[0], store_url=pg.url) as a, \
                Daemon(tmp_path / "b", configs[1], store_url=pg.url) as b:
            first, second = Relay(a, ports[0]), Relay(b, ports[1])
            assert send(first, batch)["stored"] == 20
            over = send(second, batch[:10])
            assert over["type"] == "error" and over["code"] == "quota_exceeded"
            assert send(second, [make_event("design", event_id=f"r:{n}") for n in range(5)])["stored"] == 5
            assert second.figures()["quota_exceeded"] == 1
        with Daemon(tmp_path / "a", configs[0], store_url=pg.url) as a:
            refused = send(Relay(a, ports[0]), [make_event("design", event_id="s")])
            assert refused["code"] == "quota_exceeded" and refused["detail"]["retry_after_ms"] > 0
    finally:
        pg.stop()
