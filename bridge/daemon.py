"""The daemon: wires store, publisher, config sources and ingress; owns start-up, signals and shutdown.

Threads: the ingress (ROUTER loop), the publisher (XPUB loop), the dispatcher (an asyncio loop with a
lane per provider); the main thread waits for a signal, watches the configuration file and checkpoints the
SQLite WAL when the ingress pauses. SIGINT/SIGTERM stop it cleanly: the ingress finishes the burst it holds
(commit, then replies), so everything acknowledged is in the store.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from enum import IntEnum
from types import FrameType
from typing import TYPE_CHECKING, Any

import zmq
from sqlalchemy.exc import SQLAlchemyError

from .config import Settings
from .dispatcher import Dispatcher
from .game import EndpointInUse, prepare_ipc, release_ipc
from .ingress import VERDICTS, Ingress, IngressHooks, PurchaseHooks
from .keys import RELAY, BadKey, key_pair
from .lifetime import watch_pid, watch_pipe
from .local_configs import LocalConfigs
from .providers.registry import UnknownProvider
from .providers.settings import SettingsError
from .publisher import Publisher, RelayConfigs
from .secure import SecureSocket
from .stats import Counters, Reporter
from .store import Ingest, Purchases, Store, StoreCorrupt, StoreError, error_text

if TYPE_CHECKING:
    from .ops import Ops

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.25
CONFIG_POLL_S = 1.0
# A WAL checkpoint fsyncs, and a commit behind it waits: checkpoint in a lull of the ingress, and under
# unbroken load every few thousand events, so that each one is short (with the time-led event key a
# checkpoint touches few pages; measured at 10k events/s: 5k beat 10k and 20k on throughput and p99).
# Dispatcher writes are caught by the periodic one.
CHECKPOINT_LULL_S = 0.25
CHECKPOINT_FORCE_EVENTS = 5_000
CHECKPOINT_EVERY_S = 60.0
JOIN_TIMEOUT_S = 1.5
NO_PROVIDER = ("no provider is configured: events are stored and acknowledged, and forwarded nowhere (add "
               "[providers] to the configuration; `engine-bridge run --sandbox` for GameAnalytics' sandbox game)")


class Exit(IntEnum):
    """The daemon's exit codes, one per kind of trouble, so a launcher can tell them apart (README)."""

    OK = 0
    CONFIG = 2  # the configuration is invalid: the message names the setting
    ENDPOINT = 3  # an endpoint is taken (another engine-bridge?) or cannot be bound
    STORE = 4  # the store cannot be used: data directory, permissions, database unreachable, newer schema
    CORRUPT = 5  # the SQLite file is damaged: --on-corrupt-store=move-aside starts afresh
    FAILED = 70  # a part of the daemon stopped or would not stop: restart it


class StartupError(Exception):
    """The daemon cannot start; the message says what to do, `code` is the exit code."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.code = code


def open_store(settings: Settings) -> Store:
    """The store, checked and upgraded; a damaged SQLite file is moved aside when the settings say so."""
    store = Store(settings.resolved_store_url, settings.durability, settings.consent_required, settings.lease_s)
    try:
        store.open()
    except StoreCorrupt as exc:
        if settings.on_corrupt_store != "move_aside":
            raise StartupError(str(exc), Exit.CORRUPT) from None
        aside = store.move_aside()
        log.warning("the store was damaged (%s); moved to %s, starting with an empty store", exc, aside)
        store = Store(settings.resolved_store_url, settings.durability, settings.consent_required, settings.lease_s)
        store.open()
    return store


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self._reload = threading.Event()
        self._failed = False
        self._checkpointed = 0  # the ingress's committed count at the last checkpoint: each thread writes its own
        self.counters = Counters()
        try:
            self.store = open_store(settings)
        except StoreError as exc:
            raise StartupError(str(exc), Exit.STORE) from None
        self.ctx = zmq.Context()
        try:
            for endpoint in (settings.ingress, settings.publish):
                prepare_ipc(endpoint)
            secure = self._relay_sockets()
            relay = None if secure is None or secure.xpub is None else \
                RelayConfigs(secure.xpub, Ingest(self.store).device_owner, secure.figures)
            self.publisher = Publisher(self.ctx, settings.publish, self.store, relay)
            self.dispatcher = Dispatcher(settings.providers, self.store, self.publisher, settings.store_cap_mb,
                                         settings.keep_delivered_s, data_dir=settings.data_dir,
                                         hold_s=settings.hold_s)
            self.reporter = Reporter(self.ctx)
            self.ingress = Ingress(self.ctx, settings.ingress, self.store, self._ingress_hooks(), self.counters,
                                   settings.session_timeout_s, self.reporter, secure)
        except (UnknownProvider, SettingsError) as exc:
            self.ctx.destroy(0)
            raise StartupError(f"configuration: {exc}", Exit.CONFIG) from None
        except BadKey as exc:
            self.ctx.destroy(0)
            raise StartupError(f"relay key: {exc}", Exit.STORE) from None
        except (zmq.ZMQError, EndpointInUse, OSError) as exc:
            self.ctx.destroy(0)
            reason = exc.strerror if isinstance(exc, zmq.ZMQError | OSError) and exc.strerror else str(exc)
            raise StartupError(f"cannot bind {settings.ingress} / {settings.publish}: {reason}. Is another "
                               "engine-bridge running? Choose other endpoints with --ingress/--publish.",
                               Exit.ENDPOINT) from None
        self.ops = self._ops() if settings.http else None
        self.local = LocalConfigs(self.publisher, settings.config_path, settings.local_configs)
        self._threads = [threading.Thread(target=self.ingress.run, args=(self.stop_event,), name="ingress"),
                         threading.Thread(target=self.publisher.run, args=(self.stop_event,), name="publisher"),
                         threading.Thread(target=self.dispatcher.run, args=(self.stop_event, self.ctx, VERDICTS),
                                          name="dispatcher"),
                         threading.Thread(target=self.reporter.run, args=(self.stop_event,), name="reporter")]
        if self.ops is not None:
            self._threads.append(threading.Thread(target=self.ops.run, args=(self.stop_event,), name="ops"))

    def _ops(self) -> Ops:
        """The operator's HTTP endpoints (`[daemon] http`), told of every lane's outcomes. Imported here: off by
        default, and `prometheus_client` is a tenth of a shipped game's daemon's memory."""
        from .ops import Ops, OpsHooks

        assert self.settings.http is not None
        hooks = OpsHooks(stats=self.ingress.stats_reply, status=self.dispatcher.status, flush=self.dispatcher.flush,
                         configs=self.publisher.snapshot_sized,
                         providers=[lane.provider for lane in self.dispatcher.lanes.values()])
        try:
            ops = Ops(self.settings.http, self.store, self.counters, hooks, self.settings.data_dir)
        except OSError as exc:
            self.ctx.destroy(0)
            raise StartupError(f"cannot serve HTTP on {self.settings.http}: {exc.strerror}. Is another engine-bridge "
                               "running? Choose another [daemon] http.", Exit.ENDPOINT) from None
        self.dispatcher.report_outcomes(ops.feed.outcome)
        return ops

    def _relay_sockets(self) -> SecureSocket | None:
        """A relay's CURVE sockets, with the server key pair kept in the data directory."""
        relay = self.settings.relay
        if relay is None:
            return None
        secure = SecureSocket(self.ctx, relay, key_pair(self.settings.data_dir, RELAY),
                              Ingest(self.store).client_events)
        allowed = f"{len(relay.allow)} client keys" if relay.allow else "any client key"
        log.info("relay: CURVE ingress on %s, configs on %s, for %s", relay.bind, relay.publish or "no socket",
                 allowed)
        return secure

    def _ingress_hooks(self) -> IngressHooks:
        """The ingress's view of the other parts: callables, so that it imports none of them."""
        dispatcher, stored_purchases = self.dispatcher, Purchases(self.store)

        def verdict(device_id: str, purchase_id: str) -> dict[str, Any] | None:
            result = stored_purchases.purchase_result(device_id, purchase_id)
            return None if result is None else result.to_wire()

        def figures() -> dict[str, Any]:  # on the reporter thread: these count rows
            return {"store": {**self.store.counts(), "trimmed": dispatcher.trimmed()},
                    "providers": dispatcher.status()}

        purchases = PurchaseHooks(dispatcher.nudge_purchases, verdict) if dispatcher.purchase_lane else None
        return IngressHooks(checkers=dispatcher.checkers(), flush=dispatcher.flush, figures=figures,
                            configs=self.publisher.snapshot_sized, purchases=purchases, game=self.settings.game,
                            forwarding=None if self.settings.providers else NO_PROVIDER,
                            providers=tuple(dispatcher.lanes))

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM; returns the process exit code."""
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        for thread in self._threads:
            thread.start()
        if self.settings.parent_pipe:
            watch_pipe(0, self._stop_for)
        if self.settings.parent_pid is not None:
            watch_pid(self.settings.parent_pid, self._stop_for, self.stop_event)
        log.info("engine-bridge ready%s: ingress %s, configs %s, store %s",
                 f" for game {self.settings.game}" if self.settings.game else "", self.settings.ingress,
                 self.settings.publish, self.store.redacted_url)
        if not self.settings.providers:
            log.warning(NO_PROVIDER)
        last_config_poll = last_checkpoint = time.monotonic()
        while not self.stop_event.wait(WATCH_INTERVAL_S):
            now = time.monotonic()
            if self._reload.is_set():
                self._reload.clear()
                self.local.reload()
            elif now - last_config_poll >= CONFIG_POLL_S:
                last_config_poll = now
                self.local.poll()
            if self._checkpoint_due(now, last_checkpoint):
                last_checkpoint = now
                self._checkpoint()
            self._watch_threads()
        return self.shutdown()

    def _checkpoint(self) -> None:
        """A WAL checkpoint; one that fails (disk full) is tried again at the next lull, the daemon goes on."""
        committed = self.ingress.committed
        try:
            self.store.checkpoint()
        except SQLAlchemyError as exc:
            log.warning("WAL checkpoint failed, will retry: %s", error_text(exc))
            return
        self._checkpointed = committed

    def _watch_threads(self) -> None:
        """A thread that ended while the daemon runs is a bug: stop cleanly rather than half-serve."""
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead:
            log.error("thread %s stopped unexpectedly; shutting down so that the launcher can restart the daemon",
                      ", ".join(dead))
            self._failed = True
            self.stop_event.set()

    def _checkpoint_due(self, now: float, last: float) -> bool:
        pending = self.ingress.committed - self._checkpointed
        if pending >= CHECKPOINT_FORCE_EVENTS:
            return True
        lull = now - self.ingress.last_burst >= CHECKPOINT_LULL_S
        return lull and (pending > 0 or now - last >= CHECKPOINT_EVERY_S)

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_for(signal.Signals(signum).name)

    def _stop_for(self, reason: str) -> None:
        log.info("%s: stopping", reason)
        self.stop_event.set()

    def shutdown(self) -> int:
        self.stop_event.set()
        stuck = []
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                stuck.append(thread.name)
        if not stuck:
            try:
                self.store.checkpoint(final=True)
            except SQLAlchemyError as exc:  # the WAL stays: SQLite replays it at the next start
                log.warning("final WAL checkpoint failed: %s", error_text(exc))
        self.store.dispose()
        self.ctx.destroy(0)
        for endpoint in (self.settings.ingress, self.settings.publish):
            release_ipc(endpoint)
        if stuck:
            log.error("threads did not stop in time: %s", ", ".join(stuck))
            return Exit.FAILED
        log.info("stopped: %d events stored this run", self.counters.stored)
        return Exit.FAILED if self._failed else Exit.OK
