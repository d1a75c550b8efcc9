"""The in-process tier: providers driven against their sandboxes without a daemon process.

Real here: the SQLite store in the test's directory, or a PostgreSQL one several bridges share as a fleet
(opened and upgraded as the daemon opens it); the rows the ingress writes (hello, sessions, events,
purchases), checked by the protocol's own readers, sessions kept by the ingress's `SessionBook`, committed
with `Ingest.commit_burst`; the `Dispatcher`, which builds the lanes, their senders and the purchase lane,
running on an asyncio loop in a thread of the test process; the `Publisher`, its XPUB on an inproc endpoint;
the purchase verdicts on the socket the ingress reads them from; and the sandbox over loopback HTTP. In the
test's hand: the providers' `Clock`, which moves only when told, and their timers, which turn only when told
(`tick`), so token expiry, refreshes and clock skew cost no sleeping. The ingress's own reply paths, kill -9
and the CLI stay with the daemon-level tests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import zmq

from bridge import __version__, protocol
from bridge.client import recv_publication
from bridge.dispatcher import Dispatcher
from bridge.ingress import PURCHASE_WAIT_S, VERDICTS
from bridge import intake
from bridge.intake import Consents, add_device, add_events, add_purchase, end_session, start_session
from bridge.lane import Lane
from bridge.providers.base import Clock
from bridge.publisher import Publisher
from bridge.sessions import SessionBook
from bridge.store import Burst, Ingest, Store, now_ms
from bridge.store.rows import DeadLetter
from bridge.store.database import DEFAULT_LEASE_S
from tests.sandboxes import CREDENTIALS, FAST

T = TypeVar("T")
CONFIGS = "inproc://configs"  # the publisher's XPUB, in the bridge's own ZeroMQ context
CALL_TIMEOUT_S = 30.0


def provider_spec(kind: str, url: str, **overrides: Any) -> dict[str, Any]:
    """A provider's table as the daemon reads it from `[providers.<name>]`: the sandbox's keys, fast timers."""
    return {"type": kind, "endpoint": url, **CREDENTIALS[kind], **FAST, **overrides}


class ManualClock(Clock):
    """The providers' wall and monotonic time, standing still until `advance` moves both."""

    def __init__(self, wall: float | None = None) -> None:
        self._wall = time.time() if wall is None else wall
        self._monotonic = time.monotonic()
        self.moved = 0.0

    def time(self) -> float:
        return self._wall + self.moved

    def monotonic(self) -> float:
        return self._monotonic + self.moved

    def advance(self, seconds: float) -> None:
        self.moved += seconds


class Game:
    """One game connection after its `hello`: what it sends becomes store rows as the ingress makes them."""

    def __init__(self, bridge: InProcessBridge, hello: protocol.Hello) -> None:
        self.bridge = bridge
        self.hello = hello
        self.device_id = hello.device_id

    def events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """An `events` request: stored, duplicates, rejected and invalid (the providers' `check`), as its ack."""
        return self.bridge._events(self.hello, {"type": "events", "events": events})

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.bridge._events(self.hello, {"type": "event", "event": event})

    def session_start(self, user_id: str | None = None, user_ip: str | None = None, ts: int | None = None,
                      **device: str) -> dict[str, Any]:
        """A `session_start`; `device` takes the player's platform, os_version, device, manufacturer and
        engine_version."""
        msg = {"type": "session_start", "user_id": user_id, "user_ip": user_ip, "ts": ts, **device}
        return self.bridge._session_start(self.hello, {k: v for k, v in msg.items() if v is not None})

    def session_end(self, user_id: str | None = None, ts: int | None = None) -> dict[str, Any] | None:
        msg = {"type": "session_end", "user_id": user_id, "ts": ts}
        return self.bridge._session_end(self.hello, {k: v for k, v in msg.items() if v is not None})

    def purchase(self, msg: dict[str, Any]) -> str:
        """Store a `purchase` request's purchase and have it verified; returns its id (see `verdict`)."""
        return self.bridge._purchase(self.hello, msg)

    def consent(self, user_id: str | None = None, **states: str) -> dict[str, Any]:
        """A `consent` (`analytics`, `ip_ads`: "granted" or "denied"); its reply's fields."""
        return self.bridge._player_request(self.hello, {"type": "consent", "user_id": user_id, **states})

    def forget(self, user_id: str | None = None) -> dict[str, Any]:
        """A `forget`; its reply's fields."""
        return self.bridge._player_request(self.hello, {"type": "forget", "user_id": user_id})

    def buy(self, msg: dict[str, Any], timeout_s: float = PURCHASE_WAIT_S) -> dict[str, Any] | None:
        """A purchase and its verdict, within the time the ingress holds a `purchase` reply for it (None:
        the engine would have heard "pending")."""
        return self.bridge.verdict(self.device_id, self.purchase(msg), timeout_s)


class InProcessBridge:
    """A store, a dispatcher and a publisher in the test process; `with` starts and stops the dispatcher."""

    def __init__(self, workdir: Path, providers: dict[str, dict[str, Any]], clock: Clock | None = None,
                 consent: str = "not_required", store_url: str | None = None,
                 lease_s: float = DEFAULT_LEASE_S) -> None:
        self.providers = providers
        self.clock = clock or ManualClock()
        self.workdir = Path(workdir)
        self.db_path = self.workdir / "bridge.sqlite3"
        # a PostgreSQL `store_url` shared by several bridges makes them a fleet (each its own daemon id)
        self.store = Store(store_url or f"sqlite:///{self.db_path}", consent_required=consent == "required",
                           lease_s=lease_s)
        self.store.open()
        self.ingest = Ingest(self.store)
        self.conn = self.store.writer_connection()  # the ingress's connection: this thread's
        self.book = SessionBook(self.ingest, now_ms())
        self.consents = Consents(self.ingest)
        self._last_stamp = 0
        self.zmq: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.publisher = Publisher(self.zmq, CONFIGS, self.store)
        self._stop_publisher = threading.Event()
        self._publisher_thread = threading.Thread(target=self.publisher.run, args=(self._stop_publisher,),
                                                  name="publisher", daemon=True)
        self._publisher_thread.start()
        self._verdicts: zmq.Socket[bytes] = self.zmq.socket(zmq.PULL)  # as the ingress reads them
        self._verdicts.linger = 0
        self._verdicts.bind(VERDICTS)
        self.verdicts: dict[tuple[str, str], dict[str, Any]] = {}
        self.dispatcher = self._new_dispatcher()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sockets: list[zmq.Socket[bytes]] = []

    def _new_dispatcher(self) -> Dispatcher:
        return Dispatcher(self.providers, self.store, self.publisher, None, 3600.0, clock=self.clock,
                          data_dir=self.workdir)

    # --- the dispatcher's loop ----------------------------------------------------------------------

    def start(self) -> InProcessBridge:
        """Run the dispatcher: every provider started (as its timer starts it in the daemon), then its lane
        and the purchase lane as tasks. Timers turn only at `tick`."""
        if self.loop is not None:
            raise RuntimeError("already started")
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self.loop.run_forever, name="dispatcher", daemon=True)
        self._loop_thread.start()
        self.dispatcher.loop = self.loop
        self.call(self._start())
        return self

    async def _start(self) -> None:
        verdicts = self.zmq.socket(zmq.PUSH)  # the dispatcher's end, made on its own thread as in `run`
        verdicts.linger = 0
        verdicts.connect(VERDICTS)
        self.dispatcher.verdicts = verdicts
        for lane in self.lanes:
            await lane.start()
        await self._run()

    async def _run(self) -> None:
        self._tasks = [asyncio.create_task(lane.run(), name=lane.name) for lane in self.lanes]
        if self.store.leased:  # as the dispatcher does: leases renewed while their events wait or are retried
            self._tasks.extend(asyncio.create_task(lane.keep_leases(), name=f"{lane.name} leases")
                               for lane in self.lanes)
        if self.dispatcher.purchase_lane is not None:
            self._tasks.append(asyncio.create_task(self.dispatcher.purchase_lane.run(), name="purchases"))

    def pause(self) -> None:
        """The lanes stop claiming and sending, their providers (and what they hold in memory) kept: in a fleet,
        the other daemons take this one's players meanwhile. Call it once settled: what a lane holds stays
        leased to it."""
        async def cancel() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.call(cancel())

    def resume(self) -> None:
        """The lanes run again after `pause`, with the providers they had."""
        self.call(self._run())

    def stop(self) -> None:
        """Stop the dispatcher as a shutdown does (batches in flight are repeated from the store's cursor);
        a lane that had failed fails the test."""
        if self.loop is None:
            return
        failures = self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        assert self._loop_thread is not None
        self._loop_thread.join(10)
        self.loop.close()
        self.loop = self.dispatcher.loop = None  # a purchase stored meanwhile waits for the next start
        if failures:
            raise AssertionError(f"a dispatcher task failed: {failures}")

    async def _stop(self) -> list[str]:
        failures = [f"{t.get_name()}: {t.exception()!r}" for t in self._tasks if t.done() and not t.cancelled()
                    and t.exception() is not None]
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for lane in self.lanes:
            await lane.sender.aclose()
        if self.dispatcher.verdicts is not None:
            self.dispatcher.verdicts.close(0)
        return failures

    def restart(self) -> InProcessBridge:
        """A new dispatcher and new providers on the same store (what a daemon restart gives them), and the
        ingress's session book read back from the store."""
        self.stop()
        self.dispatcher = self._new_dispatcher()
        self.book = SessionBook(self.ingest, now_ms())
        self.consents = Consents(self.ingest)
        return self.start()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._stop_publisher.set()
            self.subscribe("\0wake")  # a subscription ends the publisher's poll now, not at its next timeout
            self._publisher_thread.join(5)
            for sock in [*self._sockets, self._verdicts]:
                sock.close(0)
            self.conn.close()
            self.store.dispose()
            self.zmq.destroy(0)

    def __enter__(self) -> InProcessBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Run a coroutine on the dispatcher's loop and wait for its result."""
        assert self.loop is not None, "the dispatcher is not started"
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout_s)

    @property
    def lanes(self) -> list[Lane]:
        return list(self.dispatcher.lanes.values())

    def lane(self, name: str) -> Lane:
        return self.dispatcher.lanes[name]

    def provider(self, name: str) -> Any:
        return self.dispatcher.lanes[name].provider

    def tick(self, advance_s: float = 0.0) -> None:
        """Move the clock by `advance_s`, then one turn of every provider's timers, waited for."""
        if advance_s:
            if not isinstance(self.clock, ManualClock):
                raise TypeError("only a ManualClock is moved by hand")
            self.clock.advance(advance_s)

        async def turn() -> None:
            for lane in self.lanes:
                await lane.tick()
        self.call(turn())

    def flush(self) -> None:
        """A `flush`: every lane sends what it holds now."""
        self.dispatcher.flush()

    # --- what the ingress would have written ---------------------------------------------------------

    def hello(self, device_id: str = "cli", **fields: Any) -> Game:
        """A game's `hello`, checked as the ingress checks it; a game (not a tool) is recorded as a device."""
        msg: dict[str, Any] = {"type": "hello", "protocol": protocol.PROTOCOL_VERSION, "engine": "custom",
                               "binding": "engine-bridge-python", "binding_version": __version__,
                               "game_build": "dev", "device_id": device_id, **fields}
        hello = protocol.read_hello(msg)
        burst = self._burst()
        if hello.role == protocol.ROLE_GAME:
            add_device(burst, hello, burst.stamp)
        self._commit(burst)
        return Game(self, hello)

    def _burst(self) -> Burst:
        stamp = max(now_ms(), self._last_stamp + 1)
        self._last_stamp = stamp
        return Burst(stamp)

    def _commit(self, burst: Burst) -> set[tuple[str, int, str]] | None:
        return self.ingest.commit_burst(self.conn, burst)

    def _events(self, hello: protocol.Hello, msg: dict[str, Any]) -> dict[str, Any]:
        good, rejected = protocol.read_events(msg, msg["type"])
        burst = self._burst()
        keys, invalid = add_events(burst, self.book, hello, good, burst.stamp, self.dispatcher.checkers(),
                                   self.consents)
        inserted = self._commit(burst)
        stored = len(keys) if inserted is None else len(set(keys) & inserted)
        return {"stored": stored, "duplicates": len(keys) - stored, "rejected": [r.to_wire() for r in rejected],
                "invalid": invalid, "discarded": len(good) - len(keys)}

    def _player_request(self, hello: protocol.Hello, msg: dict[str, Any]) -> dict[str, Any]:
        """A `consent` or `forget`, as the ingress handles it (a game's: its own device)."""
        msg = {k: v for k, v in msg.items() if v is not None}
        request = protocol.read_player_request(msg, hello.role == protocol.ROLE_TOOL)
        burst = self._burst()
        if msg["type"] == "consent":
            reply = intake.set_consent(burst, self.book, self.consents, hello, request, burst.stamp)
        else:
            reply = intake.forget_player(burst, self.book, self.consents, hello, request, burst.stamp, list(self.providers))
        self._commit(burst)
        return reply

    def erase_pending(self) -> int:
        """One turn of the dispatcher's erasures (every second in the daemon): the entries settled."""
        return self.call(self.dispatcher.erase_pending())

    def _session_start(self, hello: protocol.Hello, msg: dict[str, Any]) -> dict[str, Any]:
        burst = self._burst()
        session = start_session(burst, self.book, hello, protocol.read_session(msg, start=True), burst.stamp)
        self._commit(burst)
        return session

    def _session_end(self, hello: protocol.Hello, msg: dict[str, Any]) -> dict[str, Any] | None:
        burst = self._burst()
        ended = end_session(burst, self.book, hello, protocol.read_session(msg, start=False), burst.stamp)
        self._commit(burst)
        return ended

    def _purchase(self, hello: protocol.Hello, msg: dict[str, Any]) -> str:
        burst = self._burst()
        _, purchase_id = add_purchase(burst, self.book, hello, protocol.read_purchase(msg), burst.stamp)
        self._commit(burst)
        self.dispatcher.nudge_purchases()
        return purchase_id

    # --- what a test reads ---------------------------------------------------------------------------

    def verdict(self, device_id: str, purchase_id: str, timeout_s: float = 10.0) -> dict[str, Any] | None:
        """The verdict the dispatcher handed the ingress for a purchase, once it came (None: not in time)."""
        deadline = time.monotonic() + timeout_s
        while (device_id, purchase_id) not in self.verdicts:
            left = deadline - time.monotonic()
            if left <= 0 or not self._verdicts.poll(max(1, int(left * 1000))):
                return None
            device, pid, verdict = msgpack.unpackb(self._verdicts.recv())
            self.verdicts[(device, pid)] = verdict
        return self.verdicts[(device_id, purchase_id)]

    def figures(self, name: str) -> dict[str, Any]:
        """A provider's figures as `stats` shows them (read on the dispatcher's loop)."""
        lane = self.lane(name)

        async def status() -> dict[str, Any]:
            return lane.status()
        return self.call(status())

    def settled(self, name: str) -> dict[str, Any] | None:
        """The provider's figures once nothing is queued or in flight for it, else None (for wait_until)."""
        figures = self.figures(name)
        return figures if figures["queued"] == 0 and figures["in_flight"] == 0 else None

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, oldest first, with `fields` decoded."""
        with self.store.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT * FROM events ORDER BY pk").mappings().all()
        return [{**row, "fields": msgpack.unpackb(row["fields"])} for row in rows]

    def dead_letters(self, provider: str | None = None) -> list[DeadLetter]:
        return self.dispatcher.views.delivery.dead_letters(provider)

    def published(self, topic: str) -> dict[str, Any] | None:
        """A topic's latest publication, as the publisher's last-value cache holds it."""
        return self.publisher.snapshot_sized(topic)[0].get(topic)

    def subscribe(self, *prefixes: str) -> Subscription:
        """A subscriber on the publisher's XPUB (it gets the current values at once, then every change)."""
        sock: zmq.Socket[bytes] = self.zmq.socket(zmq.SUB)
        sock.linger = 0
        sock.connect(CONFIGS)
        for prefix in prefixes or ("",):
            sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self._sockets.append(sock)
        return Subscription(sock)


class Subscription:
    """A SUB socket on the publisher. A publication made while the subscription itself is being taken may
    arrive twice (from the last-value cache, then as it goes out): reads skip versions already seen."""

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self.sock = sock
        self.seen: dict[str, int] = {}  # topic -> the highest version received

    def _recv(self, timeout_ms: int) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            pub = recv_publication(self.sock, max(0, int((deadline - time.monotonic()) * 1000)))
            if pub is None or pub["version"] > self.seen.get(pub["topic"], 0):
                if pub is not None:
                    self.seen[pub["topic"]] = pub["version"]
                return pub

    def next(self, timeout_s: float = 10.0, what: str = "a publication") -> dict[str, Any]:
        pub = self._recv(int(timeout_s * 1000))
        if pub is None:
            raise AssertionError(f"timed out waiting for {what}")
        return pub

    def pending(self) -> dict[str, Any] | None:
        """A new publication already delivered, or None."""
        return self._recv(0)

    def collect(self, topics: Iterable[str], timeout_s: float = 10.0) -> dict[str, dict[str, Any]]:
        """The first publication on each of `topics`."""
        wanted = set(topics)
        got: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while not wanted <= set(got):
            pub = self._recv(max(1, int((deadline - time.monotonic()) * 1000)))
            if pub is None:
                raise AssertionError(f"timed out waiting for publications on {sorted(wanted - set(got))}")
            got.setdefault(pub["topic"], pub)
        return got
