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
from types import FrameType

import zmq

from .config import Settings
from .dispatcher import Dispatcher
from .ingress import Ingress
from .local_configs import LocalConfigs
from .providers.registry import UnknownProvider
from .publisher import Publisher
from .stats import Counters
from .store import Store

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


class StartupError(Exception):
    """The daemon cannot start (endpoint in use, store unusable); the message says what to do."""


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self._reload = threading.Event()
        self.counters = Counters()
        self.ctx = zmq.Context()
        self.store = Store(settings.resolved_store_url, settings.durability)
        self.store.upgrade()
        try:
            self.publisher = Publisher(self.ctx, settings.publish, self.store)
            self.dispatcher = Dispatcher(settings.providers, self.store, self.publisher, settings.store_cap_mb,
                                         settings.keep_delivered_s)
            self.ingress = Ingress(self.ctx, settings.ingress, self.store, self.publisher, self.dispatcher,
                                   self.counters, settings.session_timeout_s)
        except UnknownProvider as exc:
            self.ctx.destroy(0)
            raise StartupError(f"configuration: {exc}") from None
        except zmq.ZMQError as exc:
            self.ctx.destroy(0)
            raise StartupError(f"cannot bind {settings.ingress} / {settings.publish}: {exc.strerror}. Is another "
                               "engine-bridge running? Choose other endpoints with --ingress/--publish.") from None
        self.local = LocalConfigs(self.publisher, settings.config_path, settings.local_configs)
        self._threads = [threading.Thread(target=self.ingress.run, args=(self.stop_event,), name="ingress"),
                         threading.Thread(target=self.publisher.run, args=(self.stop_event,), name="publisher"),
                         threading.Thread(target=self.dispatcher.run, args=(self.stop_event,), name="dispatcher")]

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM; returns the process exit code."""
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        for thread in self._threads:
            thread.start()
        log.info("engine-bridge ready: ingress %s, configs %s, store %s", self.settings.ingress,
                 self.settings.publish, self.store.redacted_url)
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
                pending = self.ingress.uncheckpointed
                self.store.checkpoint()
                self.ingress.uncheckpointed -= pending
        return self.shutdown()

    def _checkpoint_due(self, now: float, last: float) -> bool:
        pending = self.ingress.uncheckpointed
        if pending >= CHECKPOINT_FORCE_EVENTS:
            return True
        lull = now - self.ingress.last_burst >= CHECKPOINT_LULL_S
        return lull and (pending > 0 or now - last >= CHECKPOINT_EVERY_S)

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        self.stop_event.set()

    def shutdown(self) -> int:
        self.stop_event.set()
        stuck = []
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                stuck.append(thread.name)
        if not stuck:
            self.store.checkpoint(final=True)
        self.store.dispose()
        self.ctx.destroy(0)
        if stuck:
            log.error("threads did not stop in time: %s", ", ".join(stuck))
            return 1
        log.info("stopped: %d events stored this run", self.counters.stored)
        return 0
