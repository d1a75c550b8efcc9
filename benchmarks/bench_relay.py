"""Edge and relay (issue 15): the edge's forwarding over CURVE against a bare pyzmq loop, and the CURVE cost.

Three figures, each the median of --runs:
- edge -> relay: the edge's store filled while the relay is down, then the relay started and the time until
  the edge's relay lane has forwarded everything (each request: a device's events as protocol `events`
  messages, the relay checks and commits them, then acks);
- engine -> edge -> relay -> sandbox: a game sends through its edge, the relay delivers to the GameAnalytics
  sandbox (its own process); the time from the first send to the last event at the sandbox;
- the ceiling: a bare pyzmq DEALER -> ROUTER loop over CURVE in this process, sending the messages the edge
  sends (the same bytes, one at a time, each answered by a small ack), and the same loop over NULL: CURVE's
  cost over no security;
- the relay's side alone: a bare CURVE client sending the same requests to a relay daemon, one at a time
  (what the relay's checks and commits cost, with no edge).

    python -m benchmarks.bench_relay [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgpack
import zmq

from benchmarks.support import Daemon, drained, free_port, gameanalytics_sandbox, gameanalytics_table, wait_until
from bridge.client import Client
from bridge.keys import RELAY, KeyPair, key_pair
from bridge.protocol import MAX_BATCH_EVENTS

BATCH = MAX_BATCH_EVENTS  # one `events` request of the relay lane carries this many
TIMERS = {"interval": 0.2, "retry_base": 0.05, "retry_cap": 0.2, "paused_retry": 0.3, "timeout": 5.0}
TARGET = 0.70


def game_event(n: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "category": "design", "ts": int(time.time() * 1000),
            "fields": {"event_id": f"bench:level{n % 50}", "value": 1.5}}


def relay_daemon(workdir: Path, port: int, url: str | None) -> Daemon:
    providers = gameanalytics_table(url, remote_configs=False, **TIMERS) if url else "[providers]\n"
    return Daemon(workdir, providers + f'[relay]\nbind = "tcp://127.0.0.1:{port}"\nevents_per_second = 1e9\n'
                           f"burst_events = 1000000000\nevents_per_day = 1000000000\n")


def edge_daemon(workdir: Path, port: int, relay_key: bytes) -> Daemon:
    lines = ["[providers.relay]", 'type = "relay"', f'endpoint = "tcp://127.0.0.1:{port}"',
             f'relay_key = "{relay_key.decode()}"', *(f"{k} = {v}" for k, v in TIMERS.items())]
    return Daemon(workdir, "\n".join(lines) + "\n")


def fill(edge: Daemon, total: int) -> None:
    with Client(edge.ingress, device_id="bench-pc") as game:
        game.hello(user_id="bench")
        for start in range(0, total, MAX_BATCH_EVENTS):
            ack = game.request({"type": "events", "events": [game_event(n) for n in range(start, start + 1000)]})
            assert ack["stored"] == MAX_BATCH_EVENTS, ack


def edge_to_relay(workdir: Path, total: int) -> float:
    """Events/s the edge forwards to the relay (committed there), from a full edge store."""
    port = free_port()
    relay = relay_daemon(workdir / "relay", port, None)
    relay.start()
    relay_key = key_pair(relay.data_dir, RELAY).public
    relay.stop()
    with edge_daemon(workdir / "edge", port, relay_key) as edge, Client(edge.ingress, device_id="bench-tool") as tool:
        tool.hello(role="tool")
        fill(edge, total)
        with relay:  # from the relay's readiness: its start-up is not forwarding (the edge's retry wait is)
            began = time.perf_counter()
            drained(tool, "relay", 600)
            elapsed = time.perf_counter() - began
            with Client(relay.ingress) as local:
                local.hello(role="tool")
                stored = local.request({"type": "stats"})["stored"]
    assert stored >= total, f"the relay stored {stored} of {total}"
    return total / elapsed


def relay_ingest(workdir: Path, total: int) -> float:
    """Events/s a bare CURVE client gets the relay to commit, sending the edge's requests one at a time: the
    relay's side of the edge's forwarding, with no edge."""
    port = free_port()
    with relay_daemon(workdir / "relay", port, None) as relay:
        client = Client(f"tcp://127.0.0.1:{port}", 10_000, "bench-bare", key_pair(relay.data_dir, RELAY).public)
        with client:
            client.hello(user_id="bench")
            messages = [msgpack.unpackb(m) for m in edge_messages(total)]
            for message in messages:  # fresh ids, so that none is a duplicate of another run's
                for event in message["events"]:
                    event["id"] = str(uuid.uuid4())
                del message["rid"]
            began = time.perf_counter()
            for message in messages:
                assert client.request(message)["stored"] == BATCH
            return total / (time.perf_counter() - began)


def end_to_end(workdir: Path, total: int, url: str) -> float:
    """Events/s from a game's first send to its last event at the sandbox, through edge and relay."""
    port = free_port()
    httpx.post(f"{url}/_sandbox/reset")
    with relay_daemon(workdir / "relay", port, url) as relay:
        relay_key = key_pair(relay.data_dir, RELAY).public
        with edge_daemon(workdir / "edge", port, relay_key) as edge:
            began = time.perf_counter()
            fill(edge, total)
            wait_until(lambda: httpx.get(f"{url}/_sandbox/counts").json()["accepted"] >= total or None, 600,
                       "every event at the sandbox")
            return total / (time.perf_counter() - began)


def edge_messages(total: int) -> list[bytes]:
    """The `events` requests the edge sends for `total` stored events: MAX_BATCH_EVENTS each, as it packs them."""
    events = [{"id": str(uuid.uuid4()), "ts": int(time.time() * 1000), "category": "design", "user_id": "bench",
               "fields": {"event_id": f"bench:level{n % 50}", "value": 1.5}} for n in range(BATCH)]
    return [msgpack.packb({"type": "events", "events": events, "rid": n}, use_bin_type=True)
            for n in range(total // BATCH)]


def bare_loop(messages: list[bytes], curve: bool) -> float:
    """Events/s of DEALER -> ROUTER, one message at a time, each answered by a small ack (CURVE or NULL)."""
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    if curve:
        server, client = KeyPair(*zmq.curve_keypair()), KeyPair(*zmq.curve_keypair())
        router.setsockopt(zmq.CURVE_SERVER, 1)
        router.setsockopt(zmq.CURVE_SECRETKEY, server.secret)
        dealer.setsockopt(zmq.CURVE_SERVERKEY, server.public)
        dealer.setsockopt(zmq.CURVE_PUBLICKEY, client.public)
        dealer.setsockopt(zmq.CURVE_SECRETKEY, client.secret)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    ack = msgpack.packb({"type": "ack", "stored": BATCH, "duplicates": 0, "rejected": [], "invalid": []})

    def serve() -> None:
        for _ in messages:
            identity, _payload = router.recv_multipart()
            router.send_multipart([identity, ack])

    server_thread = threading.Thread(target=serve)
    server_thread.start()
    began = time.perf_counter()
    for message in messages:
        dealer.send(message)
        dealer.recv()
    elapsed = time.perf_counter() - began
    server_thread.join()
    ctx.destroy(0)
    return len(messages) * BATCH / elapsed


def median(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer events (CI-like checks)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; the figures are medians")
    args = parser.parse_args()
    total = 20_000 if args.quick else 100_000
    messages = edge_messages(total)
    with gameanalytics_sandbox() as url, tempfile.TemporaryDirectory(prefix="eb-bench-relay-") as work:
        run = iter(range(10_000))
        forwarded = median(args.runs, lambda: edge_to_relay(Path(work) / f"f{next(run)}", total))
        ingest = median(args.runs, lambda: relay_ingest(Path(work) / f"i{next(run)}", total))
        pipeline = median(args.runs, lambda: end_to_end(Path(work) / f"e{next(run)}", total, url))
    curve = median(args.runs, lambda: bare_loop(messages, curve=True))
    null = median(args.runs, lambda: bare_loop(messages, curve=False))
    print(f"engine-bridge edge and relay: {total:,} events, batches of {BATCH}, loopback, median of {args.runs}")
    print(f"  edge -> relay (forwarded, committed at the relay)   {forwarded:>10,.0f} events/s")
    print(f"  bare CURVE client -> relay (the relay's side alone) {ingest:>10,.0f} events/s")
    print(f"  engine -> edge -> relay -> sandbox                  {pipeline:>10,.0f} events/s")
    print(f"  bare DEALER -> ROUTER loop, CURVE                   {curve:>10,.0f} events/s")
    print(f"  bare DEALER -> ROUTER loop, NULL                    {null:>10,.0f} events/s")
    print(f"  CURVE's cost over NULL (bare loop)                  {1 - curve / null:>10.0%}")
    print(f"  ratio edge -> relay / bare CURVE loop               {forwarded / curve:>10.0%} (target >= {TARGET:.0%})")
    print(f"  ratio edge -> relay / bare client -> relay          {forwarded / ingest:>10.0%}")


if __name__ == "__main__":
    main()
