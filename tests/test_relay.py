"""Edge and relay (issue 15): a game's daemon holding no provider secret forwards to the studio's relay over
CURVE, and the relay delivers as a dedicated server's daemon does. Daemon-level: a real edge, a real relay and
the GameAnalytics sandbox, all on loopback."""

from __future__ import annotations

import base64
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from bridge.client import Client, recv_publication, subscribe
from bridge.keys import EDGE, RELAY, KeyPair, key_pair
from bridge.sandbox.gameanalytics import SANDBOX_SECRET_KEY
from bridge.sandbox.server import SandboxServer
from bridge.sandbox.staq import StaqSandbox
from tests.harness import Daemon, free_port, make_event
from tests.sandboxes import CREDENTIALS, FAST, GaSandbox, provider_table, wait_until


def edge_config(relay_port: int, relay_key: bytes) -> str:
    lines = ["[providers.relay]", 'type = "relay"', f'endpoint = "tcp://127.0.0.1:{relay_port}"',
             f'relay_key = "{relay_key.decode()}"', *(f"{k} = {v}" for k, v in FAST.items())]
    return "\n".join(lines) + "\n"


def test_a_games_events_and_sessions_reach_the_sandbox_through_edge_and_relay(tmp_path: Path,
                                                                                ga_sandbox: GaSandbox) -> None:
    sb, server = ga_sandbox
    port = free_port()
    relay_config = provider_table("gameanalytics", server.url, remote_configs=False) + \
        f'[relay]\nbind = "tcp://127.0.0.1:{port}"\n'
    with Daemon(tmp_path / "relay", relay_config) as relay:
        relay_key = key_pair(relay.data_dir, RELAY).public
        with Daemon(tmp_path / "edge", edge_config(port, relay_key)) as edge:
            with Client(edge.ingress, device_id="pc-1") as game:
                game.hello(user_id="ana", platform="windows", os_version="windows 10", engine="unity")
                started = game.request({"type": "session_start"})
                ack = game.request({"type": "events", "events": [make_event("design", event_id=f"edge:{n}")
                                                                 for n in range(5)]})
                assert ack["stored"] == 5
                game.request({"type": "session_end", "ts": started["started_at"] + 65_000})
                game.request({"type": "flush"})
                wait_until(lambda: len(sb.accepted_events(category="design")) == 5, 60,
                           what="the events at the sandbox, through the relay")
                wait_until(lambda: sb.accepted_events(category="session_end"), 60, what="the session's end")
            edge_files = [p for p in edge.workdir.rglob("*") if p.is_file()]
    design = sb.accepted_events(category="design")
    assert {e["event_id"] for e in design} == {f"edge:{n}" for n in range(5)}
    assert {(e["user_id"], e["platform"], e["session_id"]) for e in design} == {("ana", "windows",
                                                                                 started["session_id"])}
    [end] = sb.accepted_events(category="session_end")
    assert end["length"] == 65
    with sqlite3.connect(relay.db_path) as db:  # one session at the relay, the edge's own
        assert db.execute("SELECT session_id, user_id, user_ip FROM sessions").fetchall() == [
            (started["session_id"], "ana", "127.0.0.1")]
    assert edge_files and all(SANDBOX_SECRET_KEY.encode() not in p.read_bytes() for p in edge_files)


def test_kill_9_of_the_edge_then_of_the_relay_mid_stream_loses_nothing_acknowledged(
        tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    """A game streams batches to its edge; the edge is killed (-9) and restarted, later the relay too, while
    events flow. Every event the edge acknowledged reaches the sandbox, and the relay holds each once."""
    sb, server = ga_sandbox
    port = free_port()
    relay = Daemon(tmp_path / "relay", provider_table("gameanalytics", server.url, remote_configs=False) +
                   f'[relay]\nbind = "tcp://127.0.0.1:{port}"\n')
    with relay:
        edge = Daemon(tmp_path / "edge", edge_config(port, key_pair(relay.data_dir, RELAY).public))
        with edge:
            acked: set[str] = set()

            def stream(batches: int, start: int) -> None:
                for b in range(start, start + batches):
                    batch = [make_event("design", event_id=f"k9:{b}:{n}") for n in range(20)]
                    while True:  # a batch without its ack (the edge was down) is sent again, same ids and ts
                        try:
                            with Client(edge.ingress, timeout_ms=2000, device_id="pc-9") as game:
                                game.hello(user_id="kim")
                                ack = game.request({"type": "events", "events": batch})
                            break
                        except TimeoutError:
                            edge.start()
                    assert ack["stored"] + ack["duplicates"] == 20
                    acked.update(e["fields"]["event_id"] for e in batch)

            stream(5, 0)
            relay.kill()  # the edge keeps and acks what it cannot forward ...
            stream(5, 5)
            edge.kill()  # ... and is killed holding it
            relay.start()
            edge.start()
            stream(5, 10)
            sb.faults.fail("events", status=503, count=None)  # the relay now holds what it cannot deliver ...
            stream(5, 15)
            wait_until(lambda: relay.events() and len([e for e in relay.events() if e["category"] == "design"])
                       >= 400, 30, what="the edge's events at the relay")
            relay.kill()  # ... and is killed holding it, while the edge goes on forwarding
            stream(5, 20)
            sb.faults.clear()
            relay.start()
            stream(5, 25)
            with Client(edge.ingress, device_id="pc-9") as game:
                game.hello(user_id="kim")
                game.request({"type": "flush"})
            wait_until(lambda: acked <= {e["event_id"] for e in sb.accepted_events(category="design")}, 60,
                       what="every acknowledged event at the sandbox")
    assert len(acked) == 600
    at_relay = [e for e in relay.events() if e["category"] == "design"]
    assert len(at_relay) == len({e["uid"] for e in at_relay}) == 600


def test_a_players_configs_come_back_through_the_relay_and_only_to_its_own_edge(tmp_path: Path,
                                                                                 ga_sandbox: GaSandbox) -> None:
    """The relay asks GameAnalytics for the edge's player as its session starts; the configs reach the game
    on its edge's configs socket (its device's topic, and the v1 topic), a change follows the moment it is
    published, and a client with another key cannot subscribe to them."""
    sb, server = ga_sandbox
    sb.set_remote_configs([{"key": "gravity", "value": "80"}])
    port, publish = free_port(), free_port()
    relay_config = provider_table("gameanalytics", server.url) + \
        f'[relay]\nbind = "tcp://127.0.0.1:{port}"\npublish = "tcp://127.0.0.1:{publish}"\n'
    with Daemon(tmp_path / "relay", relay_config) as relay:
        relay_key = key_pair(relay.data_dir, RELAY).public
        config = edge_config(port, relay_key) + f'publish = "tcp://127.0.0.1:{publish}"\n'
        with Daemon(tmp_path / "edge", config) as edge, Client(edge.ingress, device_id="pc-7") as game:
            sub = subscribe(edge.publish, "config/gameanalytics")
            game.hello(user_id="lea")
            game.request({"type": "session_start"})
            game.request({"type": "flush"})
            got = collect(sub, {"config/gameanalytics/pc-7", "config/gameanalytics"},
                          lambda p: p["values"] == {"gravity": "80"})
            assert got["config/gameanalytics/pc-7"]["source"] == "gameanalytics"
            sb.set_remote_configs([{"key": "gravity", "value": "60"}])  # asked again on the relay's refresh
            collect(sub, {"config/gameanalytics/pc-7"}, lambda p: p["values"] == {"gravity": "60"})
            spy = zmq.Context.instance().socket(zmq.SUB)  # another client, its own key, asking for pc-7's
            spy.setsockopt(zmq.LINGER, 0)
            spy_keys = KeyPair(*zmq.curve_keypair())
            spy.setsockopt(zmq.CURVE_SERVERKEY, relay_key)
            spy.setsockopt(zmq.CURVE_PUBLICKEY, spy_keys.public)
            spy.setsockopt(zmq.CURVE_SECRETKEY, spy_keys.secret)
            spy.setsockopt(zmq.SUBSCRIBE, key_pair(edge.data_dir, EDGE).public)
            spy.connect(f"tcp://127.0.0.1:{publish}")
            with Client(relay.ingress) as local:
                local.hello(role="tool")
                wait_until(lambda: local.request({"type": "stats"})["relay"]["subscriptions_refused"] >= 1, 30,
                           what="the spy's subscription refused")
            spy.close(0)
            sub.close(0)


def collect(sub: zmq.Socket[bytes], topics: set[str], done: Callable[[dict[str, Any]], bool],
            timeout_s: float = 60.0) -> dict[str, dict[str, Any]]:
    """The latest publication of each topic, once each satisfies `done`."""
    latest: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while not all(t in latest and done(latest[t]) for t in topics):
        assert time.monotonic() < deadline, f"publications seen: {latest}"
        pub = recv_publication(sub, 500)
        if pub is not None:
            latest[pub["topic"]] = pub
    return latest


def test_a_purchase_made_on_the_edge_is_verified_at_the_relay_and_its_verdict_comes_back(
        tmp_path: Path, staq_sandbox: tuple[StaqSandbox, SandboxServer]) -> None:
    """staq's secret stays at the relay: the edge's purchase is verified there, and the verdict reaches the
    game in its reply (or, later, on its edge's purchase/<device_id> topic); a replayed receipt is a duplicate."""
    sb, server = staq_sandbox
    good = base64.b64encode(uuid.uuid4().bytes).decode()
    sb.register_receipt(good, valid=True)
    port = free_port()
    relay_config = provider_table("staq", server.url, kind="staq") + f'[relay]\nbind = "tcp://127.0.0.1:{port}"\n'
    with Daemon(tmp_path / "relay", relay_config) as relay:
        config = edge_config(port, key_pair(relay.data_dir, RELAY).public)
        with Daemon(tmp_path / "edge", config) as edge, Client(edge.ingress, timeout_ms=10_000,
                                                               device_id="pc-3") as game:
            sub = subscribe(edge.publish, "purchase/pc-3")
            game.hello(user_id="max")
            first = game.request({"type": "purchase", "id": "buy-1", "store": "apple", "receipt": good})
            replay = game.request({"type": "purchase", "id": "buy-2", "store": "apple", "receipt": good})
            verdicts = collect(sub, {"purchase/pc-3"}, lambda p: {"buy-1", "buy-2"} <= set(p["values"]))
            edge_files = [p for p in edge.workdir.rglob("*") if p.is_file()]
    values = verdicts["purchase/pc-3"]["values"]
    assert (values["buy-1"]["is_valid"], values["buy-1"]["is_duplicate"]) == (True, False)
    assert values["buy-2"]["is_duplicate"] is True
    for reply, verdict in ((first, values["buy-1"]), (replay, values["buy-2"])):
        assert reply["state"] == "pending" or reply["is_duplicate"] == verdict["is_duplicate"]
    secret = CREDENTIALS["staq"]["app_secret"].encode()
    assert edge_files and all(secret not in p.read_bytes() for p in edge_files)


def test_an_edge_whose_device_another_key_owns_keeps_its_events_and_says_why(tmp_path: Path) -> None:
    """The relay refuses the edge's hello (another client key owns the device): the edge's lane pauses with
    the relay's reason in its stats and keeps every event, dead-lettering none."""
    port = free_port()
    with Daemon(tmp_path / "relay", f'[relay]\nbind = "tcp://127.0.0.1:{port}"\n') as relay:
        relay_key = key_pair(relay.data_dir, RELAY).public
        with Client(f"tcp://127.0.0.1:{port}", 5000, "pc-taken", relay_key) as squatter:
            assert squatter.hello()["type"] == "welcome"
        with Daemon(tmp_path / "edge", edge_config(port, relay_key)) as edge, \
                Client(edge.ingress, device_id="pc-taken") as game:
            game.hello()
            assert game.request({"type": "events", "events": [make_event() for _ in range(3)]})["stored"] == 3
            game.request({"type": "flush"})
            lane = wait_until(lambda: (s := game.request({"type": "stats"})["providers"]["relay"]).get("paused")
                              and s, 30, what="the edge's relay lane paused")
    assert "belongs to another client key" in lane["paused"]
    assert lane["queued"] >= 3 and lane["dead_lettered"] == 0


def test_an_edges_backlog_goes_in_runs_of_batches_and_a_refusal_inside_a_run_loses_nothing(
        tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    """6,000 events wait at the edge while the relay is down; once it is up they go as runs of `events` requests
    side by side on the device's connection, into a rate limit (2,500 events of burst) that refuses some of a
    run while later ones of it were taken (6,000 events at 500/s past the burst: refusals whatever the machine's
    pace): each event is stored once at the relay and reaches the sandbox."""
    sb, server = ga_sandbox
    port = free_port()
    relay = Daemon(tmp_path / "relay", provider_table("gameanalytics", server.url, remote_configs=False) +
                   f'[relay]\nbind = "tcp://127.0.0.1:{port}"\nevents_per_second = 500\nburst_events = 2500\n')
    sent: set[str] = set()
    with Daemon(tmp_path / "edge", edge_config(port, key_pair(relay.data_dir, RELAY).public)) as edge:
        with Client(edge.ingress, device_id="pc-6") as game:
            game.hello(user_id="lea")
            for b in range(6):
                batch = [make_event("design", event_id=f"run:{b}:{n}") for n in range(1000)]
                assert game.request({"type": "events", "events": batch})["stored"] == 1000
                sent.update(e["fields"]["event_id"] for e in batch)
        with relay:
            wait_until(lambda: sent <= {e["event_id"] for e in sb.accepted_events(category="design")}, 90,
                       what="the edge's backlog at the sandbox")
            with Client(relay.ingress) as tool:
                tool.hello(role="tool")
                refused = tool.request({"type": "stats"})["relay"]["rate_limited"]
            at_relay = [e for e in relay.events() if e["category"] == "design"]
    assert refused > 0
    assert len(at_relay) == len({e["uid"] for e in at_relay}) == 6000
