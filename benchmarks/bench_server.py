"""Server mode (issue 12): a dedicated server's players through one connection, the collector answering late.

A dedicated server with P players sends R events/s for each, paced, through ONE connection (the server's own
device): each player begins with a `session_start` naming its `user_id` and `user_ip`, then every event names
its player. The GameAnalytics sandbox (`engine-bridge sandbox --latency-ms L`, its own process) answers every
request L ms late, each on its own. For D seconds, measured at the sandbox: the delivered rate, the lag of each
event from its send time at the client to its arrival at the sandbox (the time the sandbox stored it, after
the latency), requests per second and events per request; queue growth from the daemon's `stats` (stored
and not yet delivered).

The ceiling is a bare loop in this process, no daemon: the same requests the daemon would send (each player's
events as GameAnalytics JSON, gzip, HMAC-SHA256 Authorization, X-Forwarded-For, POSTed to the events route
with httpx), as many at once as the lane's `max_in_flight`, grouped as the issue asks, one request per player
per send interval. It runs twice: paced by the same offered load (the ratio's denominator), and unpaced (its
capacity at that concurrency and latency, which says whether the offered load can be kept up with at all).

    python -m benchmarks.bench_server [--quick] [--scenario 200x5|2000x1|all] [--runs N]
                                      [--players P --rate R] [--latency-ms L] [--seconds D]
                                      [--interval S] [--max-in-flight N] [--no-remote-configs]
                                      [--join-s J]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import heapq
import math
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack

from benchmarks.support import Daemon, gameanalytics_table, late_gameanalytics_sandbox
from bridge.client import Client
from bridge.protocol import MAX_BATCH_EVENTS, SESSION_START
from bridge.providers.gameanalytics.events import host_defaults, to_collector
from bridge.providers.gameanalytics.provider import GameAnalytics
from bridge.providers.gameanalytics.signing import Signature, encode_body, gzipped_json
from bridge.sandbox.gameanalytics import SANDBOX_GAME_KEY, SANDBOX_SECRET_KEY
from bridge.store import StoredEvent

SCENARIOS = {"200x5": (200, 5.0), "2000x1": (2000, 1.0)}
TICK_S = 0.05  # the server's frame: the events due since the last one go in one `events` request
SAMPLE_S = 1.0  # between two readings of the queue (each costs the daemon a stats reply)
FETCH_S = 2.0  # between two readings of the sandbox's records (it keeps the last 100,000)
WINDOW = 64  # requests out on the server's connection before it waits for acks
PLATFORM = {"platform": "linux", "os_version": "linux 6"}
BUILD = "1.0"
ENGINE = "custom"  # bridge.client.Client's hello
DEVICE = "bench-server"
GROWTH_LIMIT = 0.05  # keeping up: the queue grows by less than this share of the offered rate...
DELIVERED_FLOOR = 0.95  # ...and the sandbox receives at least this share of it
RATIO_TARGET = 0.80


@dataclass(frozen=True)
class Load:
    """P players at R events/s each: player p joins `join_s` * p / P s after the start (all within one event's
    period when `join_s` is 0) and sends its k-th event k / R s after it joined, until the load's end. Events
    are numbered in the order they fall due."""

    players: int
    rate: float
    seconds: float
    join_s: float = 0.0
    schedule: list[tuple[float, int, int]] = field(init=False, repr=False)  # (due s, player, k), by due
    times: list[float] = field(init=False, repr=False)  # each event's due s
    joins: list[float] = field(init=False, repr=False)  # each player's join s

    def __post_init__(self) -> None:
        spread = self.join_s or 1 / self.rate
        joins = [spread * p / self.players for p in range(self.players)]
        due = sorted((join + k / self.rate, p, k) for p, join in enumerate(joins)
                     for k in range(math.ceil((self.seconds - join) * self.rate)))
        object.__setattr__(self, "schedule", due)
        object.__setattr__(self, "times", [t for t, _, _ in due])
        object.__setattr__(self, "joins", joins)

    @property
    def per_second(self) -> float:
        return self.players * self.rate

    @property
    def total(self) -> int:
        return len(self.schedule)

    def due(self, elapsed: float) -> int:
        """How many events are due `elapsed` s after the start."""
        return bisect.bisect_right(self.times, elapsed) if elapsed >= 0 else 0

    def joined(self, elapsed: float) -> int:
        """How many players have joined `elapsed` s after the start (players join in their order)."""
        return bisect.bisect_right(self.joins, elapsed)

    def event(self, n: int) -> tuple[int, str]:
        """The player of event n and its event_id, which names both: the lag is matched by it."""
        _, player, seq = self.schedule[n]
        return player, f"bench:p{player}:s{seq}"


def user(player: int) -> str:
    return f"player-{player:05d}"


def user_ip(player: int) -> str:
    return f"10.{player >> 16 & 255}.{player >> 8 & 255}.{player & 255}"


@dataclass
class Run:
    """What one system did with the load: send times, arrivals at the sandbox, its queue, the sandbox's counts."""

    load: Load
    warm_s: float
    t0: float = 0.0  # epoch s of the first event
    sent_at: dict[str, float] = field(default_factory=dict)  # event_id -> epoch s it was sent
    arrived: dict[str, float] = field(default_factory=dict)  # event_id -> epoch s the sandbox stored it
    duplicates: int = 0
    backlog: list[tuple[float, int]] = field(default_factory=list)  # (s since t0, stored but not delivered)
    counts: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)  # "warm"/"end": (epoch s, counts)

    def figures(self, interval: float) -> dict[str, float]:
        d, warm, t0 = self.load.seconds, self.warm_s, self.t0
        offered = sum(1 for t in self.sent_at.values() if t0 + warm <= t < t0 + d) / (d - warm)
        delivered = sum(1 for t in self.arrived.values() if t0 + warm <= t <= t0 + d) / (d - warm)
        lags = sorted(self.arrived[e] - t if e in self.arrived else math.inf
                      for e, t in self.sent_at.items() if t0 + warm <= t < t0 + d)
        # However late: what the events arriving in the window had waited (sent in the window or before it).
        waited = sorted(t - self.sent_at[e] for e, t in self.arrived.items() if t0 + warm <= t <= t0 + d)
        # The queue is a sawtooth (it fills for an interval or a batch, then a delivery empties it): its growth
        # is that of its floor, the least it held over a cycle (two intervals), from the first to the last.
        cycle = min(2 * interval, (d - warm) / 2)
        first = [q for t, q in self.backlog if warm <= t < warm + cycle]
        last = [q for t, q in self.backlog if d - cycle <= t <= d]
        growth = (min(last) - min(first)) / (d - warm - cycle) if first and last else math.nan
        (t_warm, at_warm), (t_end, at_end) = self.counts["warm"], self.counts["end"]
        requests = _requests(at_end) - _requests(at_warm)
        accepted = _accepted(at_end) - _accepted(at_warm)
        return {"offered": offered, "delivered": delivered, "growth": growth,
                "p50": _percentile(lags, 0.50), "p99": _percentile(lags, 0.99),
                "undelivered": sum(math.isinf(lag) for lag in lags) / max(1, len(lags)),
                "arrived_p50": _percentile(waited, 0.50), "arrived_p99": _percentile(waited, 0.99),
                "requests_per_s": requests / (t_end - t_warm), "events_per_request": accepted / max(1, requests),
                "duplicates": self.duplicates}


def _requests(counts: dict[str, Any]) -> int:
    return sum(counts["routes"].get("events", {}).values())


def _accepted(counts: dict[str, Any]) -> int:
    return int(counts["accepted"])  # every category: the sessions' `user` events are in requests too


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


class Monitor:
    """A thread reading, while a run goes: the queue every SAMPLE_S, the sandbox's new records every FETCH_S,
    and its counts once the warm-up is over and once the offered load ends."""

    def __init__(self, url: str, run: Run, backlog: Callable[[], int]) -> None:
        self.run = run
        self.backlog = backlog
        self.admin = httpx.Client(base_url=url, timeout=30)
        self.since = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="bench-monitor", daemon=True)
        self.error: BaseException | None = None

    def reset_sandbox(self) -> None:
        assert self.admin.post("/_sandbox/reset").status_code == 200

    def start(self) -> None:
        self.thread.start()

    def _watch(self) -> None:
        next_sample = next_fetch = 0.0
        run = self.run
        try:
            while not self.stop.wait(0.05):
                elapsed = time.time() - run.t0
                if elapsed >= next_sample:
                    run.backlog.append((elapsed, self.backlog()))
                    next_sample += SAMPLE_S
                for mark, at in (("warm", run.warm_s), ("end", run.load.seconds)):
                    if mark not in run.counts and elapsed >= at:
                        run.counts[mark] = (time.time(), self.admin.get("/_sandbox/counts").json())
                if elapsed >= next_fetch:
                    self.fetch()
                    next_fetch += FETCH_S
        except BaseException as exc:  # the run reports it instead of measuring nothing
            self.error = exc

    def fetch(self) -> None:
        """The sandbox's design records since the last fetch: each event's first arrival."""
        while True:
            page = self.admin.get("/_sandbox/events", params={"category": "design", "since": self.since,
                                                              "limit": 10_000}).json()
            for record in page["events"]:
                event_id = record["event"]["event_id"]
                if event_id in self.run.arrived:
                    self.run.duplicates += 1
                else:
                    self.run.arrived[event_id] = record["received_at"]
            if page["next"] == self.since:
                return
            self.since = page["next"]

    def finish(self) -> None:
        """Stop watching and read the records that came since the last fetch."""
        self.stop.set()
        try:
            if self.thread.ident is not None:
                self.thread.join(30)
            if self.error is not None:
                raise RuntimeError("the monitor failed") from self.error
            self.fetch()
        finally:
            self.admin.close()


# ---------------------------------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------------------------------

class Connection:
    """The server's one connection: requests sent without waiting, at most WINDOW out, each ack checked."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.out: dict[int, int] = {}  # rid -> events it carries (0: a session_start)
        self.stored = 0

    def send(self, msg: dict[str, Any], events: int = 0) -> None:
        if len(self.out) >= WINDOW:
            self.settle(WINDOW // 2)
        self.out[self.client.send(msg)] = events

    def read(self, timeout_ms: int) -> None:
        """Every reply that came; waits up to `timeout_ms` for the first."""
        sock = self.client.sock
        if not sock.poll(timeout_ms):
            return
        while sock.poll(0):
            reply = msgpack.unpackb(sock.recv(), raw=False)
            events = self.out.pop(reply.get("rid"), None)
            if events is None:
                continue
            if reply.get("type") == "ack" and reply["stored"] == events and not reply["rejected"] \
                    and not reply["invalid"]:
                self.stored += events
            elif reply.get("type") != "session":
                raise RuntimeError(f"the daemon refused a request: {reply}")

    def settle(self, at_most: int = 0, timeout_s: float = 30) -> None:
        """Wait until no more than `at_most` requests are out."""
        deadline = time.monotonic() + timeout_s
        while len(self.out) > at_most and time.monotonic() < deadline:
            self.read(100)
        if len(self.out) > at_most:
            raise TimeoutError(f"{len(self.out)} requests unanswered after {timeout_s:g} s")


def daemon_settings(interval: float, max_in_flight: int, timeout: float, remote_configs: bool) -> dict[str, Any]:
    """The provider's settings that matter in server mode, given explicitly (by default, its defaults)."""
    return {"interval": interval, "max_in_flight": max_in_flight, "timeout": timeout,
            "remote_configs": remote_configs}


def daemon_run(url: str, load: Load, settings: dict[str, Any], warm_s: float, grace_s: float,
               workdir: Path) -> Run:
    run = Run(load, warm_s)
    stats: list[Client] = []

    def queued() -> int:
        return int(stats[0].request({"type": "stats"})["providers"]["gameanalytics"]["queued"])

    monitor = Monitor(url, run, queued)
    config = gameanalytics_table(url, **settings)
    with (Daemon(workdir, config=config) as daemon,
          Client(daemon.ingress, device_id=DEVICE, timeout_ms=30_000) as game,
          Client(daemon.ingress, device_id="bench-monitor", timeout_ms=30_000) as tool):
        try:
            monitor.reset_sandbox()  # the daemon's start-up init and remote configs are not counted
            game.hello(game_build=BUILD, **PLATFORM)
            tool.hello(role="tool")
            stats.append(tool)  # from here on used by the monitor's thread only
            conn = Connection(game)
            run.t0 = time.time()
            monitor.start()
            sent = joined = 0
            while sent < load.total:
                elapsed = time.time() - run.t0
                due = load.due(elapsed)
                for player in range(joined, load.joined(elapsed)):  # each begins with its session: user and IP
                    conn.send({"type": "session_start", "user_id": user(player), "user_ip": user_ip(player)})
                joined = max(joined, load.joined(elapsed))
                while sent < due:
                    now = time.time()
                    batch = []
                    for n in range(sent, min(due, sent + MAX_BATCH_EVENTS)):
                        player, event_id = load.event(n)
                        batch.append({"id": f"e{n}", "category": "design", "ts": int(now * 1000),
                                      "user_id": user(player), "fields": {"event_id": event_id, "value": 1.0}})
                        run.sent_at[event_id] = now
                    conn.send({"type": "events", "events": batch}, len(batch))
                    sent += len(batch)
                conn.read(0)
                time.sleep(max(0.0, TICK_S - (time.time() - run.t0) % TICK_S))
            conn.settle()
            end = run.t0 + load.seconds + grace_s
            while time.time() < end:
                time.sleep(0.1)
        finally:
            monitor.finish()
        assert conn.stored == load.total, f"the daemon stored {conn.stored} of {load.total} events"
    return run


# ---------------------------------------------------------------------------------------------------
# The bare loop
# ---------------------------------------------------------------------------------------------------

def _row(**values: Any) -> StoredEvent:
    """A stored event with `values`; the columns this benchmark does not set (the player's own device, and those
    the store gains as it grows) are None, as for a player whose session named no device."""
    columns: dict[str, Any] = {f.name: None for f in dataclasses.fields(StoredEvent)}
    return StoredEvent(**{**columns, **values})


class Requests:
    """The requests the daemon would send for a player's events, built as its provider does (the provider's
    collector JSON, `encode_body` gzip and `Signature` HMAC), without its lane or sender."""

    def __init__(self, url: str, players: int) -> None:
        self.events_url = f"{url}/v2/{SANDBOX_GAME_KEY}/events"
        self.init_url = f"{url}/v2/{SANDBOX_GAME_KEY}/init"
        self.signature = Signature(SANDBOX_SECRET_KEY)
        self.defaults = host_defaults()
        self.sessions = [str(uuid.uuid4()) for _ in range(players)]
        self.started = [False] * players

    def _collector(self, player: int, uid: str, category: str, fields: dict[str, Any], at: float) -> dict[str, Any]:
        """The collector's event, from the row the daemon would have stored (the hello's engine, no player device)."""
        ms = int(at * 1000)
        stored = _row(pk=0, device_id=DEVICE, uid=uid, user_id=user(player), session_id=self.sessions[player],
                      category=category, client_ts=ms, received_at=ms, game_build=BUILD, fields=fields, session_num=1,
                      user_ip=user_ip(player), platform=PLATFORM["platform"], os_version=PLATFORM["os_version"],
                      engine=ENGINE)
        return to_collector(stored, 0, self.defaults, {})

    def events(self, player: int, items: list[tuple[str, float]]) -> httpx.Request:
        """One request: the player's events (its session's start first, the first time)."""
        body = [] if self.started[player] else \
            [self._collector(player, f"session-{player}", SESSION_START, {}, items[0][1])]
        self.started[player] = True
        body += [self._collector(player, event_id, "design", {"event_id": event_id, "value": 1.0}, at)
                 for event_id, at in items]
        return gzipped_json("POST", self.events_url, encode_body(body), {"X-Forwarded-For": user_ip(player)})

    def init(self) -> httpx.Request:
        return gzipped_json("POST", self.init_url, encode_body({**PLATFORM, "sdk_version": "rest api v2"}))


# The bare loop's httpx client is configured as the daemon's Sender's is: a timeout and httpx's default pool (at
# most 100 connections, 20 kept alive). Keeping one alive per request in flight measured no faster (slower at
# 100 in flight, on the loaded 2-core machine).


async def _send(http: httpx.AsyncClient, requests: Requests, request: httpx.Request) -> None:
    answer = await http.send(request, auth=requests.signature)
    if answer.status_code != 200:
        raise RuntimeError(f"the sandbox answered {answer.status_code}: {answer.text[:300]}")


async def _bare_paced(url: str, load: Load, interval: float, max_in_flight: int, timeout: float, run: Run,
                      grace_s: float, counters: list[int]) -> None:
    requests = Requests(url, load.players)
    todo: asyncio.Queue[tuple[int, list[tuple[str, float]]]] = asyncio.Queue()

    async def worker(http: httpx.AsyncClient) -> None:
        while True:
            player, items = await todo.get()
            await _send(http, requests, requests.events(player, items))
            counters[1] += len(items)

    async with httpx.AsyncClient(timeout=timeout) as http:
        await _send(http, requests, requests.init())
        workers = [asyncio.create_task(worker(http)) for _ in range(max_in_flight)]
        buffers: list[list[tuple[str, float]]] = [[] for _ in range(load.players)]
        flushes = [(join + interval, player) for player, join in enumerate(load.joins)]  # a heap, by when
        sent = 0
        try:
            while sent < load.total or any(buffers):
                elapsed = time.time() - run.t0
                due = load.due(elapsed)
                now = time.time()
                for n in range(sent, due):
                    player, event_id = load.event(n)
                    buffers[player].append((event_id, now))
                    run.sent_at[event_id] = now
                counters[0] += due - sent
                sent = due
                while flushes[0][0] <= elapsed:  # one request per player per send interval, from its join
                    at, player = heapq.heappop(flushes)
                    if buffers[player]:
                        todo.put_nowait((player, buffers[player]))
                        buffers[player] = []
                    heapq.heappush(flushes, (at + interval, player))
                for task in workers:
                    if task.done():
                        task.result()  # a refused request ends the run
                await asyncio.sleep(max(0.0, TICK_S - (time.time() - run.t0) % TICK_S))
            end = run.t0 + load.seconds + grace_s
            while time.time() < end:
                await asyncio.sleep(0.1)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)


def bare_run(url: str, load: Load, interval: float, max_in_flight: int, timeout: float, warm_s: float,
             grace_s: float) -> Run:
    """The bare loop paced by the offered load; its queue is what it generated and has not had answered."""
    run = Run(load, warm_s)
    counters = [0, 0]  # events generated, events answered 200
    monitor = Monitor(url, run, lambda: counters[0] - counters[1])
    try:
        monitor.reset_sandbox()
        run.t0 = time.time()
        monitor.start()
        asyncio.run(_bare_paced(url, load, interval, max_in_flight, timeout, run, grace_s, counters))
    finally:
        monitor.finish()
    return run


async def _bare_capacity(url: str, players: int, per_request: int, max_in_flight: int, timeout: float,
                         seconds: float) -> float:
    requests = Requests(url, players)
    for player in range(players):
        requests.started[player] = True  # only design events: the figure is events/s at the grouping asked
    answered = [0]
    turn = iter(range(10**9))

    async def worker(http: httpx.AsyncClient, until: float) -> None:
        while time.perf_counter() < until:
            n = next(turn)
            player = n % players
            items = [(f"bench:p{player}:c{n}-{i}", time.time()) for i in range(per_request)]
            await _send(http, requests, requests.events(player, items))
            answered[0] += per_request

    async with httpx.AsyncClient(timeout=timeout) as http:
        await _send(http, requests, requests.init())
        began = time.perf_counter()
        await asyncio.gather(*(worker(http, began + seconds) for _ in range(max_in_flight)))
        return answered[0] / (time.perf_counter() - began)


def bare_capacity(url: str, load: Load, interval: float, max_in_flight: int, timeout: float, seconds: float) -> float:
    """Events/s of the bare loop unpaced: requests of a player's events of one interval, back to back,
    `max_in_flight` at once."""
    with httpx.Client(base_url=url) as admin:
        admin.post("/_sandbox/reset")
    per_request = max(1, round(load.rate * interval))
    return asyncio.run(_bare_capacity(url, load.players, per_request, max_in_flight, timeout, seconds))


# ---------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------

def _ms(seconds: float) -> str:
    return "not delivered" if math.isinf(seconds) else "-" if math.isnan(seconds) else f"{seconds * 1000:,.0f} ms"


def _median(runs: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in runs]
    if any(math.isinf(v) for v in values):  # undelivered: the median of the order, not of the values
        return sorted(values)[len(values) // 2]
    return statistics.median(values)


def report(load: Load, latency_ms: float, settings: dict[str, Any], runs: int, warm_s: float, grace_s: float,
           capacity: list[float], daemon: list[dict[str, float]], bare: list[dict[str, float]]) -> None:
    interval = settings["interval"]
    lag_target = interval + 1.0
    need_rps = load.players / interval
    per_request = max(1, round(load.rate * interval))
    print(f"engine-bridge server mode: {load.players:,} players x {load.rate:g} events/s through one connection, "
          f"collector {latency_ms:g} ms away, {load.seconds:g} s of load, median of {runs}")
    print(f"  players join {f'evenly over the first {load.join_s:g} s' if load.join_s else 'at the start'}, "
          "each with its session_start")
    print(f"  daemon's GameAnalytics settings: interval {interval:g} s, max_in_flight {settings['max_in_flight']}, "
          f"batch_size {GameAnalytics.batch_size} (the provider's, not a setting), timeout {settings['timeout']:g} s, "
          f"remote_configs {str(settings['remote_configs']).lower()}")
    print(f"  rates over {warm_s:g}-{load.seconds:g} s (before: the sessions' start, the first interval); the lag of "
          f"the events sent then, one not at the sandbox {grace_s:g} s after the load ended counting as never;")
    print(f"  keeping up: the queue grows by under {GROWTH_LIMIT:.0%} of the offered rate and the sandbox receives "
          f"{DELIVERED_FLOOR:.0%} of it or more")
    print(f"  {'':30}{'daemon':>16}{'bare loop':>16}   target")
    count, rate = (lambda v: f"{v:,.0f}"), (lambda v: f"{v:,.1f}")
    rows: list[tuple[str, str, Callable[[float], str], str]] = [
        ("offered events/s", "offered", count, ""),
        ("delivered events/s (sandbox)", "delivered", count, "the offered rate (keeps up)"),
        ("queue growth, events/s", "growth", lambda v: f"{v:+,.0f}", "about 0 (the queue does not grow)"),
        ("lag p50, send -> sandbox", "p50", _ms, ""),
        ("lag p99, send -> sandbox", "p99", _ms, f"< {lag_target * 1000:,.0f} ms (send interval + 1 s)"),
        ("  events never delivered", "undelivered", lambda v: f"{v:.0%}", ""),
        ("  lag p50 of what did arrive", "arrived_p50", _ms, "(whenever it was sent: how far behind)"),
        ("  lag p99 of what did arrive", "arrived_p99", _ms, ""),
        ("requests/s at the sandbox", "requests_per_s", rate, f"{need_rps:,.0f}: one per player per interval"),
        ("events per request", "events_per_request", rate, f"{load.rate * interval:g} at one per player per interval"),
        ("duplicates at the sandbox", "duplicates", count, "0"),
    ]
    for label, key, fmt, target in rows:
        print(f"  {label:30}{fmt(_median(daemon, key)):>16}{fmt(_median(bare, key)):>16}   {target}")
    ceiling = statistics.median(capacity)
    print(f"  bare loop capacity, unpaced ({settings['max_in_flight']} in flight, {per_request} events per request): "
          f"{ceiling:,.0f} events/s; one request per player per interval at {latency_ms:g} ms needs about "
          f"{math.ceil(need_rps * latency_ms / 1000)} in flight to keep up, "
          f"{math.ceil(load.players * latency_ms / 1000)} to have each interval's requests out within 1 s")
    ratios = [d["delivered"] / b["delivered"] if b["delivered"] else math.nan
              for d, b in zip(daemon, bare, strict=True)]
    ratio = statistics.median(ratios)
    of_capacity = _median(daemon, "delivered") / ceiling if ceiling else math.nan
    print(f"  ratio daemon / bare loop at the same offered load: {ratio:.0%} (target >= {RATIO_TARGET:.0%}); "
          f"daemon / bare loop capacity: {of_capacity:.0%}")
    for name, figures in (("daemon", daemon), ("bare loop", bare)):
        offered, delivered = _median(figures, "offered"), _median(figures, "delivered")
        keeps_up = delivered >= DELIVERED_FLOOR * offered and _median(figures, "growth") < GROWTH_LIMIT * offered
        verdicts = [f"keeps up {'yes' if keeps_up else 'NO'}",
                    f"lag p99 < {lag_target:g} s {'yes' if _median(figures, 'p99') < lag_target else 'NO'}"]
        if name == "daemon":
            verdicts.append(f">= {RATIO_TARGET:.0%} of the bare loop {'yes' if ratio >= RATIO_TARGET else 'NO'}")
        print(f"  {name + ':':11}{'; '.join(verdicts)}")


@contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="eb-bench-server-") as work:
        yield Path(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="15 s of load instead of 60 (CI-like checks)")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--players", type=int, help="players (with --rate: a scenario of your own)")
    parser.add_argument("--rate", type=float, help="events/s of each player")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="the collector's latency (default 100)")
    parser.add_argument("--seconds", type=float, help="seconds of offered load (default 60, --quick 15)")
    parser.add_argument("--interval", type=float, default=2.0, help="the lane's send interval, s (default 2)")
    parser.add_argument("--max-in-flight", type=int, default=4, help="the lane's requests at once (default 4)")
    parser.add_argument("--timeout", type=float, default=10.0, help="one request's timeout, s (default 10)")
    parser.add_argument("--remote-configs", action=argparse.BooleanOptionalAction, default=True,
                        help="the daemon asks for remote configs (the default), at start and per new session")
    parser.add_argument("--join-s", type=float, default=0.0,
                        help="players join over this many seconds, evenly (default 0: all at the start)")
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario; figures are their medians")
    args = parser.parse_args()
    seconds = args.seconds or (15.0 if args.quick else 60.0)
    capacity_s = 5.0 if args.quick else 10.0
    if (args.players is None) != (args.rate is None):
        parser.error("--players and --rate go together")
    scenarios = [(args.players, args.rate)] if args.players is not None else \
        [SCENARIOS[args.scenario]] if args.scenario != "all" else list(SCENARIOS.values())
    settings = daemon_settings(args.interval, args.max_in_flight, args.timeout, args.remote_configs)
    # The players' joining and the first send interval after it are left out; what is measured is whole intervals.
    whole = math.floor((seconds - args.join_s - args.interval - 1.0) / args.interval)
    warm_s = seconds - whole * args.interval if whole >= 2 else seconds / 4
    grace_s = args.interval + 1.0 + 2 * args.latency_ms / 1000  # the last events' time to arrive within target
    with late_gameanalytics_sandbox(args.latency_ms) as url, _workdir() as work:
        for index, (players, rate) in enumerate(scenarios):
            load = Load(players, rate, seconds, args.join_s)
            capacity: list[float] = []
            daemon: list[dict[str, float]] = []
            bare: list[dict[str, float]] = []
            for n in range(args.runs):
                capacity.append(bare_capacity(url, load, args.interval, args.max_in_flight, args.timeout, capacity_s))
                bare.append(bare_run(url, load, args.interval, args.max_in_flight, args.timeout, warm_s,
                                     grace_s).figures(args.interval))
                daemon.append(daemon_run(url, load, settings, warm_s, grace_s,
                                         work / f"daemon-{index}-{n}").figures(args.interval))
            if index:
                print()
            report(load, args.latency_ms, settings, args.runs, warm_s, grace_s, capacity, daemon, bare)


if __name__ == "__main__":
    main()
