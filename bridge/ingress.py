"""The ingress: a ROUTER socket that takes protocol v1 requests from the engines.

One loop in its own thread: take every message waiting (a burst), check each, gather all their writes
into one `Burst`, commit it in one transaction, and only then send the replies. Under load a burst holds
hundreds of messages and one commit acknowledges them all; when idle a burst is one message and the reply
goes out at once.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zmq
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from zmq.utils.monitor import recv_monitor_message

from . import __version__, protocol
from .intake import (
    Checker,
    Consents,
    add_device,
    add_events,
    add_purchase,
    end_session,
    forget_player,
    set_consent,
    start_session,
)
from .protocol import HEARTBEAT_MS, HEARTBEAT_TIMEOUT_MS, Code, Hello, ProtocolError, Rejection
from .secure import HANDSHAKE_FAILED, SecureSocket
from .sessions import SessionBook
from .stats import REPLIES, UNKNOWN_CATEGORY, Counters, Reporter
from .store import Burst, EventKey, Ingest, Store, error_text, now_ms

log = logging.getLogger(__name__)

MAX_BURST_MESSAGES = 2048
# A burst also ends after this long, so that a flood (of any request) holds an ack back by one short burst,
# not by thousands of messages; under load a commit every 10 ms still groups hundreds of events.
MAX_BURST_S = 0.01
MAX_FORWARD = 1024  # replies built elsewhere sent per turn of the loop, for the same reason
MAX_DEFERRED_PER_PEER = 16  # a peer's `stats` and `flush` requests waiting for the reporter at once
POLL_MS = 200
EXPIRE_EVERY_S = 5.0
PURCHASE_WAIT_S = 5.0  # how long a `purchase` reply waits for the verdict before saying "pending"
VERDICTS = "inproc://engine-bridge-verdicts"  # purchase verdicts as they are recorded: [device, id, verdict]
FORGET_IDLE_CLIENT_S = 3600.0
MAX_CLIENTS = 20_000  # hellos kept; beyond this the longest silent is forgotten (it says hello_required)
# What a peer may have queued towards it: ZeroMQ counts messages, so replies are small (acks, errors) except
# `configs`, whose bytes are budgeted per peer. A peer whose queue is full does not read: its replies are
# dropped (ROUTER_MANDATORY tells us so) rather than held in memory.
SEND_HWM = 1000
RECV_HWM = 1000  # beyond this the peer's TCP connection is simply not read: back-pressure, no memory
STALLED_S = 1.0  # a peer whose queue was full is not heard for this long: its requests are dropped unread
LARGE_REPLY_BYTES = 16 * 1024
LARGE_BUDGET_BYTES = 1024 * 1024  # a peer's burst of large replies ...
LARGE_REFILL_BYTES_S = 256 * 1024  # ... and its sustained rate
# A relay client's identity as the ingress keys it: its ROUTER's routing id behind this tag, so that it can
# never be taken for a loopback client's (whose ids are libzmq's, from 0x00, or the client's own).
SECURE = b"\xff"
Peer = tuple[str, str]  # a relay client's key (Z85) and network address, from its messages' properties


@dataclass(frozen=True)
class PurchaseHooks:
    """What the ingress needs of purchase verification: present only when a provider verifies purchases."""

    stored: Callable[[], None]  # a purchase was committed: verify it now (from the ingress thread)
    verdict: Callable[[str, str], dict[str, Any] | None]  # a recorded verdict (device, id) as wire fields


@dataclass(frozen=True)
class IngressHooks:
    """Everything the ingress asks of the rest of the daemon, as plain values and callables: it imports none
    of the parts behind them. Data leaves the ingress only through the store."""

    checkers: Mapping[str, Sequence[Checker]]  # per category, the providers whose rules its events must pass
    flush: Callable[[], None]  # lanes send what they hold now
    figures: Callable[[], dict[str, Any]]  # {"store": ..., "providers": ...} for `stats`, on the reporter thread
    configs: Callable[[str], tuple[dict[str, Any], int]]  # topics under a prefix, and their size in bytes
    purchases: PurchaseHooks | None = None
    game: str | None = None  # the game this daemon serves: a hello naming another is refused
    forwarding: str | None = None  # why nothing is forwarded (no provider), told in welcome and stats
    providers: tuple[str, ...] = ()  # the configured providers: a `forget` writes a ledger entry for each


@dataclass(slots=True)
class PendingAck:
    """An `ack` that can only be written once the burst has committed."""

    rid: int
    keys: list[EventKey]
    categories: list[str]  # each key's, for the counters per category
    rejected: list[Rejection]
    invalid: list[dict[str, Any]]
    discarded: int = 0  # events of players who denied analytics: acknowledged, never stored


AfterCommit = Callable[[Connection], "dict[str, Any] | None"]  # None: the reply is held (a purchase)
Reply = dict[str, Any] | PendingAck | AfterCommit


@dataclass(slots=True)
class Outgoing:
    envelope: list[bytes]
    reply: Reply
    durable: bool  # the reply promises that this burst committed


@dataclass
class BurstState:
    now: int  # ms since the epoch, unique per burst: the received_at of its events
    burst: Burst
    clock: float = field(default_factory=time.monotonic)
    out: list[Outgoing] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0


class Ingress:
    """Owns the ROUTER socket, the connections' `hello`s and the session book."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, store: Store, hooks: IngressHooks, counters: Counters,
                 session_timeout_s: float, reporter: Reporter, secure: SecureSocket | None = None) -> None:
        self.store = store
        self.secure = secure
        self.ingest = Ingest(store)
        self.hooks = hooks
        self.checkers = hooks.checkers
        self.counters = counters
        self.reporter = reporter
        self.session_timeout_ms = int(session_timeout_s * 1000)
        # hellos by identity, least recently heard first
        self.clients: OrderedDict[bytes, Hello] = OrderedDict()
        # purchase replies held until the verdict: (device_id, purchase_id) -> [(envelope, rid, deadline)]
        self.waiting: dict[tuple[str, str], list[tuple[list[bytes], int, float]]] = {}
        self.last_seen: dict[bytes, float] = {}
        self.large_budget: dict[bytes, tuple[float, float]] = {}  # identity -> (bytes left, at)
        self.stalled: dict[bytes, float] = {}  # identity -> until when its requests are dropped unread
        self.owners: dict[str, str] = {}  # at a relay: device id -> the client key that owns it (a cache)
        self.deferred: dict[bytes, int] = {}  # identity -> its requests the reporter has not answered yet
        self.last_burst = time.monotonic()  # when requests last arrived: the checkpointer waits for a lull
        self.committed = 0  # events committed since start; only this thread writes it (the checkpointer reads)
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.setsockopt(zmq.MAXMSGSIZE, protocol.HARD_MAX_MESSAGE_BYTES)
        # No ZMTP PINGs of our own on this socket (clients' PINGs are still answered): libzmq 4.3.5 aborts the
        # daemon ("!_io_error", stream_engine_base.cpp) when its PING timer fires on a connection whose input
        # it stopped because the peer outran RECV_HWM, which a flooding peer does at will. TCP keepalive finds
        # peers that vanished instead.
        self.sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        self.sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, HEARTBEAT_TIMEOUT_MS // 1000)
        self.sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, HEARTBEAT_MS // 1000)
        self.sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.rcvhwm = RECV_HWM
        self.sock.sndhwm = SEND_HWM
        # Watched before it binds: a connection accepted before the monitor would be counted out, not in.
        self.monitor = self.sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.sock.bind(endpoint)
        self.replies = ctx.socket(zmq.PULL)  # replies built on other threads, to be sent on the ROUTER
        self.replies.linger = 0
        self.replies.bind(REPLIES)
        self.verdicts = ctx.socket(zmq.PULL)
        self.verdicts.linger = 0
        self.verdicts.bind(VERDICTS)
        self._packer = msgpack.Packer(use_bin_type=True)
        self.book = SessionBook(self.ingest, now_ms())
        self.consents = Consents(self.ingest)
        self._last_stamp = 0
        self._handlers: dict[str, Callable[[BurstState, list[bytes], Hello, dict[str, Any], int], None]] = {
            "event": self._on_events, "events": self._on_events, "session_start": self._on_session_start,
            "session_end": self._on_session_end, "flush": self._on_flush, "ping": self._on_ping,
            "stats": self._on_stats, "configs": self._on_configs, "purchase": self._on_purchase,
            "consent": self._on_player_request, "forget": self._on_player_request,
        }

    # --- the loop -----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        conn = self.store.writer_connection()
        poller = zmq.Poller()  # kept: Socket.poll builds a new one at every call
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.replies, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        poller.register(self.verdicts, zmq.POLLIN)
        if self.secure is not None:
            poller.register(self.secure.sock, zmq.POLLIN)
            poller.register(self.secure.monitor, zmq.POLLIN)
        last_expiry = time.monotonic()
        idle = False
        try:
            while not stop.is_set():
                if idle:  # under load there is always a message waiting, and this wait is skipped
                    poller.poll(self._poll_ms())
                self._forward_replies()
                if self.monitor.get(zmq.EVENTS) & zmq.POLLIN:
                    self._on_monitor()
                if self.secure is not None and self.secure.monitor.poll(0, zmq.POLLIN):
                    self._on_monitor(self.secure.monitor)
                state = self._new_burst()
                if self.waiting or self.verdicts.get(zmq.EVENTS) & zmq.POLLIN:
                    self._answer_purchases(state.clock)
                idle = not self._take_burst(state)
                if not idle:
                    self.last_burst = state.clock
                if state.clock - last_expiry >= EXPIRE_EVERY_S:
                    last_expiry = state.clock
                    self._expire(state)
                if state.burst or state.out:
                    self._commit_and_reply(conn, state)
        finally:
            conn.close()
            self.sock.disable_monitor()
            self.monitor.close(0)
            self.replies.close(0)
            self.verdicts.close(0)
            self.sock.close(0)
            if self.secure is not None:
                self.secure.close()

    def _poll_ms(self) -> int:
        """How long an idle loop waits: until the next message, or the first held purchase reply's deadline."""
        if not self.waiting:
            return POLL_MS
        first = min(deadline for held in self.waiting.values() for _, _, deadline in held)
        return max(0, min(POLL_MS, int((first - time.monotonic()) * 1000) + 1))

    def _forward_replies(self) -> None:
        """Replies the reporter built: the envelope frames, then the payload."""
        for _ in range(MAX_FORWARD):
            try:
                frames = self.replies.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity = frames[0]
            left = self.deferred.get(identity, 1) - 1
            if left > 0:
                self.deferred[identity] = left
            else:
                self.deferred.pop(identity, None)
            self._send(frames[:-1], frames[-1])

    def _defer(self, envelope: list[bytes], rid: int, key: Any, build: Callable[[], dict[str, Any]]) -> None:
        """Hand a reply to the reporter; a peer with many waiting already is told to read its replies first,
        so that one peer's flood of `stats` costs the reporter (and the GIL) little."""
        identity = envelope[0]
        waiting = self.deferred.get(identity, 0)
        if waiting >= MAX_DEFERRED_PER_PEER:
            raise ProtocolError(Code.UNAVAILABLE, f"{waiting} stats/flush requests of this connection are still "
                                "being answered; read those replies, then ask again")
        self.reporter.ask(envelope, rid, key, build)
        self.deferred[identity] = waiting + 1

    def _new_burst(self) -> BurstState:
        stamp = max(now_ms(), self._last_stamp + 1)
        self._last_stamp = stamp
        return BurstState(stamp, Burst(stamp))

    def _on_monitor(self, monitor: zmq.Socket[bytes] | None = None) -> None:
        """Count open connections (a ROUTER cannot tell which identity left, only that one did), and the relay
        socket's refused handshakes.

        Read at every turn of the loop: libzmq's monitor waits when its queue is full, and with it the I/O
        thread that accepts connections, so a storm of connects left unread would stall every client."""
        monitor = monitor or self.monitor
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] & HANDSHAKE_FAILED:
                assert self.secure is not None  # only its monitor reports handshakes
                self.secure.figures.handshakes_refused += 1
            else:
                self.counters.clients += 1 if event["event"] == zmq.EVENT_ACCEPTED else -1

    def _expire(self, state: BurstState) -> None:
        """End idle sessions; forget the hellos of identities silent for an hour (they will say it again)."""
        builds = {h.device_id: h.game_build for h in self.clients.values()}
        try:
            self.book.expire(state.burst, state.now, self.session_timeout_ms, builds)
        except SQLAlchemyError as exc:  # a fleet's store away: the sessions end at a later turn
            log.error("could not read sessions to expire them: %s", error_text(exc))
        horizon = time.monotonic() - FORGET_IDLE_CLIENT_S
        for identity in [i for i, seen in self.last_seen.items() if seen < horizon]:
            del self.last_seen[identity]
            self.clients.pop(identity, None)
            self.large_budget.pop(identity, None)
            self.stalled.pop(identity, None)

    def _take_burst(self, state: BurstState) -> int:
        """Every message waiting (up to a count and a time); returns how many."""
        ends = state.clock + MAX_BURST_S
        taken = 0
        while taken < MAX_BURST_MESSAGES:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            taken += 1
            self._on_frames(state, frames)
            if time.monotonic() > ends:
                return taken
        if self.secure is not None:
            taken += self._take_secure(state, ends, MAX_BURST_MESSAGES - taken)
        return taken

    def _take_secure(self, state: BurstState, ends: float, most: int) -> int:
        """The relay socket's waiting messages, each with its client's key and address."""
        assert self.secure is not None
        for taken in range(most):
            try:
                frames = self.secure.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return taken
            last = frames[-1]
            peer = (str(last.get("User-Id")), str(last.get("Peer-Address")))
            self._on_frames(state, [SECURE + frames[0].bytes, *(f.bytes for f in frames[1:])], peer)
            if time.monotonic() > ends:
                return taken + 1
        return most

    def _on_frames(self, state: BurstState, frames: list[bytes], peer: Peer | None = None) -> None:
        identity = frames[0]
        if peer is None and identity[:1] == SECURE:
            self.counters.requests_dropped += 1  # a loopback client posing as a relay client
            return
        if self.stalled and identity in self.stalled:
            if state.clock < self.stalled[identity]:
                # It does not read its replies: a reply to this one would be dropped too, so it costs nothing
                # more than this; nothing is lost, as nothing it sends now is acknowledged.
                self.counters.requests_dropped += 1
                return
            del self.stalled[identity]
        self.last_seen[identity] = state.clock
        if len(frames) == 2:
            envelope, payload = frames[:1], frames[1]
        elif len(frames) == 3 and not frames[1]:
            envelope, payload = frames[:2], frames[2]  # a REQ client: keep its delimiter
        else:
            # A REQ client's delimiter goes back with the error, or REQ would drop it; the rid is the first
            # frame's, when that can be read, so that a client with requests in flight can match the error.
            envelope = frames[:2] if len(frames) > 2 and not frames[1] else frames[:1]
            parts = frames[len(envelope):]
            self._error(state, envelope, protocol.readable_rid(parts[0]) if parts else None, ProtocolError(
                Code.MALFORMED, f"a message must be one frame; got {len(parts)}"))
            return
        rid: int | None = None
        try:
            try:
                msg = protocol.decode(payload)
            except ProtocolError:
                rid = protocol.readable_rid(payload)  # too large or not msgpack: its rid, if it can be read
                raise
            rid = protocol.read_rid(msg)
            kind, rid = protocol.check_request(msg)
            if kind == "hello":
                self._on_hello(state, envelope, identity, msg, rid, peer)
                return
            hello = self.clients.get(identity)
            if hello is None:
                raise ProtocolError(Code.HELLO_REQUIRED, f"{kind}: say hello first on this connection")
            self.clients.move_to_end(identity)
            if hello.role == protocol.ROLE_TOOL and kind not in protocol.TOOL_REQUESTS:
                raise ProtocolError(Code.INVALID_VALUE, f"{kind}: a tool connection (hello role \"tool\") only "
                                    "reads; say hello as a game to send events, sessions or purchases", "role")
            self._handlers[kind](state, envelope, hello, msg, rid)
        except ProtocolError as exc:
            self._error(state, envelope, rid, exc)
        except SQLAlchemyError as exc:  # a read before the burst (a fleet's sessions): nothing of it was taken
            self._error(state, envelope, rid, ProtocolError(Code.UNAVAILABLE, f"the store could not be read "
                                                            f"({error_text(exc)}); nothing was stored, send later"))
        except Exception:  # a bug must cost one reply, never the daemon
            log.exception("internal error handling a request")
            self._error(state, envelope, rid, ProtocolError(Code.INTERNAL, "internal error; nothing was stored"))

    def _commit_and_reply(self, conn: Connection, state: BurstState) -> None:
        inserted: set[EventKey] | None = None
        committed = True
        if state.burst:
            try:
                inserted = self.ingest.commit_burst(conn, state.burst)
            except Exception as exc:  # a store error, or a bug: the burst is refused, the ingress goes on
                committed = False
                store_error = isinstance(exc, SQLAlchemyError)
                reason = f"store commit failed: {error_text(exc) if store_error else 'a daemon bug'}"
                log.error("%s", reason, exc_info=None if store_error else exc)
                self.counters.note_error(Code.UNAVAILABLE, reason)
                self._reload_sessions(state.now)
        claimed: set[EventKey] = set()
        for item in state.out:
            reply: dict[str, Any] | None
            if item.durable and not committed:
                rid = _reply_rid(item.reply)
                reply = ProtocolError(Code.UNAVAILABLE, "the store could not commit; nothing was stored, "
                                      "send again later").reply(rid)
                self.counters.errors += 1
            elif isinstance(item.reply, PendingAck):
                reply = self._ack(state, item.reply, inserted, claimed)
            elif callable(item.reply):
                try:
                    reply = item.reply(conn)
                except SQLAlchemyError as exc:
                    reply = ProtocolError(Code.UNAVAILABLE, f"the store could not be read ({error_text(exc)}); "
                                          "ask again later").reply(_reply_rid(item.reply))
                if reply is None:
                    continue
            else:
                reply = item.reply
            self._send(item.envelope, self._packer.pack(reply))
        self.counters.note_stored(state.stored, state.duplicates, state.clock)
        self.committed += state.stored
        if conn.in_transaction():
            conn.rollback()  # end the read transaction of stats/flush so the next burst can begin

    def _reload_sessions(self, now: int) -> None:
        """After a failed commit: forget sessions, consents and relay clients' counts that never reached the
        store (as it is now)."""
        try:
            self.book = SessionBook(self.ingest, now)
            self.consents = Consents(self.ingest)
            if self.secure is not None:
                self.secure.allowance.forget_counts()
        except SQLAlchemyError as exc:  # still unreadable: keep the book; the next failure tries again
            log.error("could not reread sessions: %s", error_text(exc))
        self._last_stamp = now

    def _send(self, envelope: list[bytes], payload: bytes) -> None:
        """One reply: the envelope frames, then the payload (plain sends: send_multipart's checks cost more).

        Never blocks: a peer whose queue is full (it does not read) or that left loses this reply, counted."""
        sock = self.sock
        if envelope[0][:1] == SECURE and self.secure is not None:
            sock, envelope = self.secure.sock, [envelope[0][1:], *envelope[1:]]
        try:
            for frame in envelope:
                sock.send(frame, zmq.SNDMORE | zmq.NOBLOCK)
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            self.counters.replies_dropped += 1
            self.stalled[envelope[0]] = time.monotonic() + STALLED_S
        except zmq.ZMQError as exc:
            if exc.errno != errno.EHOSTUNREACH:
                raise
            self.counters.replies_dropped += 1

    def _spend_large(self, identity: bytes, size: int) -> bool:
        """Whether a peer may be sent `size` more bytes of large replies now (a token bucket per peer)."""
        now = time.monotonic()
        left, at = self.large_budget.get(identity, (LARGE_BUDGET_BYTES, now))
        left = min(LARGE_BUDGET_BYTES, left + (now - at) * LARGE_REFILL_BYTES_S)
        if left < size:
            self.large_budget[identity] = (left, now)
            return False
        self.large_budget[identity] = (left - size, now)
        return True

    def _ack(self, state: BurstState, pending: PendingAck, inserted: set[EventKey] | None,
             claimed: set[EventKey]) -> dict[str, Any]:
        """stored/duplicates of one request; `inserted` None means the whole burst was new."""
        by_category = self.counters.categories
        if inserted is None:
            stored = len(pending.keys)
            for category in pending.categories:
                by_category[category].stored += 1
        else:
            stored = 0
            for key, category in zip(pending.keys, pending.categories, strict=True):
                if key in inserted and key not in claimed:
                    claimed.add(key)
                    stored += 1
                    by_category[category].stored += 1
                else:
                    by_category[category].duplicates += 1
        duplicates = len(pending.keys) - stored
        state.stored += stored
        state.duplicates += duplicates
        ack = {"type": "ack", "rid": pending.rid, "stored": stored, "duplicates": duplicates,
               "rejected": [r.to_wire() for r in pending.rejected] if pending.rejected else [],
               "invalid": pending.invalid}
        if pending.discarded:
            ack["discarded"] = pending.discarded
        return ack

    def _error(self, state: BurstState, envelope: list[bytes], rid: int | None, exc: ProtocolError) -> None:
        self.counters.note_error(exc.code, exc.message)
        log.debug("error reply %s: %s", exc.code, exc.message)
        state.out.append(Outgoing(envelope, exc.reply(rid), False))

    # --- handlers -----------------------------------------------------------------------------------

    def _on_hello(self, state: BurstState, envelope: list[bytes], identity: bytes, msg: dict[str, Any],
                  rid: int, peer: Peer | None) -> None:
        hello = protocol.read_hello(msg)
        if self.hooks.game is not None and hello.game not in (None, self.hooks.game):
            raise ProtocolError(Code.WRONG_GAME, f"game: this daemon serves game {self.hooks.game!r}, not "
                                f"{hello.game!r}: connect to your game's own daemon", "game",
                                {"game": self.hooks.game})
        if peer is not None:
            self._own(hello.device_id, peer[0])
            hello = dataclasses.replace(hello, client_key=peer[0], address=peer[1])
        self.clients[identity] = hello
        self.clients.move_to_end(identity)
        if len(self.clients) > MAX_CLIENTS:
            gone, _ = self.clients.popitem(last=False)
            self.last_seen.pop(gone, None)
            self.large_budget.pop(gone, None)
        if hello.role == protocol.ROLE_GAME:
            add_device(state.burst, hello, state.now)
        session = self.book.current(hello.user_id)
        state.out.append(Outgoing(envelope, {
            "type": "welcome", "rid": rid, "protocol": hello.protocol, "server_time": state.now,
            "daemon_version": __version__, "session": session.to_wire() if session else None,
            "limits": protocol.LIMITS,
            "topics": [protocol.CONFIG_PREFIX, protocol.PURCHASE_PREFIX + hello.device_id],
            "game": self.hooks.game, "forwarding": self.hooks.forwarding}, True))

    def _own(self, device_id: str, key: str) -> None:
        """A relay client's hello: the device is its key's, unless another key said hello as it first (the
        device's events, sessions and topics stay with the client that owns it)."""
        assert self.secure is not None
        owner = self.owners.get(device_id) or self.ingest.device_owner(device_id)
        if owner is not None and owner != key:
            raise ProtocolError(Code.FORBIDDEN, f"device {device_id!r} belongs to another client key", "device_id")
        self.owners[device_id] = key
        if len(self.owners) > MAX_CLIENTS:
            self.owners.pop(next(iter(self.owners)))
        self.secure.figures.saw(key.encode())

    def _on_events(self, state: BurstState, envelope: list[bytes], hello: Hello, msg: dict[str, Any],
                   rid: int) -> None:
        good, rejected = protocol.read_events(msg, msg["type"])
        if hello.client_key is not None:
            assert self.secure is not None
            day = self.secure.allowance.take(hello.client_key.encode(), len(good) + len(rejected))
            state.burst.count_client(hello.client_key, day, len(good) + len(rejected))
        counters = self.counters
        counters.received += len(good) + len(rejected)
        by_category = counters.categories
        for _, ev in good:
            by_category[ev.category].received += 1
        if rejected:
            counters.rejected += len(rejected)
            self._count_rejected(msg, rejected)
        categories: list[str] = []
        keys, invalid = add_events(state.burst, self.book, hello, good, state.now, self.checkers, self.consents,
                                   categories)
        if invalid:
            events_at = dict(good)
            for index in {entry["index"] for entry in invalid}:
                by_category[events_at[index].category].invalid += 1
        state.out.append(Outgoing(envelope, PendingAck(rid, keys, categories, rejected, invalid,
                                                       len(good) - len(keys)), bool(keys)))

    def _count_rejected(self, msg: dict[str, Any], rejected: list[Rejection]) -> None:
        """Refused events per the category they name, `unknown` when they name none of the categories."""
        raw = [msg["event"]] if msg["type"] == "event" else msg["events"]
        by_category = self.counters.categories
        for rejection in rejected:
            event = raw[rejection.index]
            named = event.get("category") if isinstance(event, dict) else None
            counts = by_category.get(named) if isinstance(named, str) else None
            if counts is None:
                counts = by_category[UNKNOWN_CATEGORY]
            counts.received += 1
            counts.rejected += 1

    def _on_session_start(self, state: BurstState, envelope: list[bytes], hello: Hello, msg: dict[str, Any],
                          rid: int) -> None:
        session = start_session(state.burst, self.book, hello, protocol.read_session(msg, start=True), state.now)
        state.out.append(Outgoing(envelope, {"type": "session", "rid": rid, **session}, True))

    def _on_session_end(self, state: BurstState, envelope: list[bytes], hello: Hello, msg: dict[str, Any],
                        rid: int) -> None:
        request = protocol.read_session(msg, start=False)
        ended = end_session(state.burst, self.book, hello, request, state.now)
        if ended is None:
            raise ProtocolError(Code.NO_SESSION, f"user {request.user_id or hello.user_id!r} has no open session")
        state.out.append(Outgoing(envelope, {"type": "session", "rid": rid, **ended}, True))

    def _on_player_request(self, state: BurstState, envelope: list[bytes], hello: Hello, msg: dict[str, Any],
                           rid: int) -> None:
        """`consent` and `forget`: the reply, after the commit, says the player's new state."""
        request = protocol.read_player_request(msg, hello.role == protocol.ROLE_TOOL)
        if hello.client_key is not None and request.device_id not in (None, hello.device_id):
            raise ProtocolError(Code.FORBIDDEN, "a relay client's requests are about its own device", "device_id")
        if msg["type"] == "consent":
            reply = {"type": "consent", "rid": rid,
                     **set_consent(state.burst, self.book, self.consents, hello, request, state.now)}
        else:
            reply = {"type": "forgotten", "rid": rid, **forget_player(state.burst, self.book, self.consents, hello,
                                                                      request, state.now, self.hooks.providers)}
        state.out.append(Outgoing(envelope, reply, True))

    def _on_flush(self, state: BurstState, envelope: list[bytes], hello: Hello, msg: dict[str, Any],
                  rid: int) -> None:
        device_id = hello.device_id
        self.hooks.flush()
        self._defer(envelope, rid, ("flushed", device_id), lambda: {
            "type": "flushed", "queued": self.ingest.queued_for_device(device_id)})

    def _on_ping(self, state: BurstState, envelope: list[bytes], hello: Hello, msg: dict[str, Any],
                 rid: int) -> None:
        state.out.append(Outgoing(envelope, {"type": "pong", "rid": rid, "server_time": now_ms()}, False))

    def _on_stats(self, state: BurstState, envelope: list[bytes], hello: Hello, msg: dict[str, Any],
                  rid: int) -> None:
        if hello.client_key is not None:
            raise ProtocolError(Code.FORBIDDEN, "stats: only on the relay's own ingress (it names other clients' "
                                "players); ask there")
        self._on_monitor()
        self._defer(envelope, rid, "stats", self.stats_reply)

    def stats_reply(self) -> dict[str, Any]:
        """Built on the reporter thread: the counters are plain ints the ingress writes (safe to read)."""
        c = self.counters
        figures = self.hooks.figures()
        return {"type": "stats", "daemon_version": __version__, "uptime_s": round(c.uptime(), 3),
                "clients": c.clients, "received": c.received, "stored": c.stored,
                "duplicates": c.duplicates, "rejected": c.rejected, "errors": c.errors,
                "replies_dropped": c.replies_dropped, "requests_dropped": c.requests_dropped,
                "rate_10s": round(c.rate(), 1), "categories": c.categories_wire(),
                "store": {"url": self.store.redacted_url, **figures["store"]}, "providers": figures["providers"],
                "last_errors": c.last_errors(), "game": self.hooks.game, "forwarding": self.hooks.forwarding,
                **({"relay": self.secure.figures.to_wire()} if self.secure is not None else {})}

    def _on_configs(self, state: BurstState, envelope: list[bytes], hello: Hello, msg: dict[str, Any],
                    rid: int) -> None:
        prefix = protocol.text(msg, "prefix", "", required=False, min_len=0, max_len=200) or ""
        topics, size = self.hooks.configs(prefix)
        if hello.client_key is not None:  # a relay client reads its own device's topics only
            topics = {topic: value for topic, value in topics.items() if protocol.device_topic(topic, hello.device_id)}
        if size > LARGE_REPLY_BYTES and not self._spend_large(envelope[0], size):
            raise ProtocolError(Code.UNAVAILABLE, f"configs replies to this connection are over "
                                f"{LARGE_REFILL_BYTES_S // 1024} KiB/s; read your replies, or subscribe to the "
                                "configs socket instead of asking")
        state.out.append(Outgoing(envelope, {"type": "configs", "rid": rid, "topics": topics}, False))

    def _on_purchase(self, state: BurstState, envelope: list[bytes], hello: Hello, msg: dict[str, Any],
                     rid: int) -> None:
        if self.hooks.purchases is None:
            raise ProtocolError(Code.NOT_CONFIGURED, "purchase verification needs a provider that verifies "
                                "purchases (staq), and none is configured in this daemon")
        key = add_purchase(state.burst, self.book, hello, protocol.read_purchase(msg), state.now)
        state.out.append(Outgoing(envelope, lambda conn: self._hold_purchase_reply(envelope, rid, key), True))

    def _hold_purchase_reply(self, envelope: list[bytes], rid: int, key: tuple[str, str]) -> dict[str, Any] | None:
        """After the commit: a purchase verified before (a resend) is answered now, else the reply waits."""
        assert self.hooks.purchases is not None  # _on_purchase refused the request otherwise
        verdict = self.hooks.purchases.verdict(*key)
        if verdict is not None:
            return _purchase_reply(rid, key[1], verdict)
        self.waiting.setdefault(key, []).append((envelope, rid, time.monotonic() + PURCHASE_WAIT_S))
        self.hooks.purchases.stored()
        return None

    def _answer_purchases(self, clock: float) -> None:
        """Send the replies whose verdict came, and "pending" to those that waited long enough."""
        while True:
            try:
                device_id, purchase_id, verdict = msgpack.unpackb(self.verdicts.recv(zmq.NOBLOCK))
            except zmq.Again:
                break
            for envelope, rid, _ in self.waiting.pop((device_id, purchase_id), []):
                self._send(envelope, self._packer.pack(_purchase_reply(rid, purchase_id, verdict)))
        for key in [k for k, held in self.waiting.items() if all(deadline <= clock for _, _, deadline in held)]:
            for envelope, rid, _ in self.waiting.pop(key):
                self._send(envelope, self._packer.pack(_purchase_reply(rid, key[1], None)))


def _purchase_reply(rid: int, purchase_id: str, verdict: dict[str, Any] | None) -> dict[str, Any]:
    fields = verdict if verdict is not None else {"is_valid": None, "is_duplicate": None, "reason": None}
    return {"type": "purchase", "rid": rid, "id": purchase_id, "state": "pending" if verdict is None else "verified",
            **fields}


def _reply_rid(reply: Reply) -> int | None:
    if isinstance(reply, PendingAck):
        return reply.rid
    if isinstance(reply, dict):
        return reply.get("rid")
    return None
