"""The configs socket: an XPUB with a last-value cache.

Sources (the local file, provider remote configs) call `publish()` from any thread. A topic whose values
changed gets the next version, is saved in the store (versions survive restarts) and goes out at once.
A subscription arriving on the XPUB is answered with the current value of every matching topic, so a late
subscriber never waits for the next change.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import msgpack
import zmq
from sqlalchemy.exc import SQLAlchemyError

from .protocol import HEARTBEAT_MS, HEARTBEAT_TIMEOUT_MS
from .store import SavedConfig, SavedConfigs, Store, error_text, now_ms

log = logging.getLogger(__name__)

INBOX = "inproc://engine-bridge-publisher"


class Publisher:
    """Owns the XPUB socket (in its own thread) and the cache of every topic's latest publication."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, store: Store) -> None:
        self.ctx = ctx
        self.configs = SavedConfigs(store)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[dict[str, Any], bytes]] = {}
        for saved in self.configs.load():
            self._cache[saved.topic] = (msgpack.unpackb(saved.payload), saved.payload)
        self.xpub = ctx.socket(zmq.XPUB)
        self.xpub.linger = 0
        self.xpub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription, not only a topic's first
        self.xpub.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
        self.xpub.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        self.xpub.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TIMEOUT_MS)
        self.xpub.bind(endpoint)
        self._inbox_in = ctx.socket(zmq.PULL)
        self._inbox_in.bind(INBOX)
        self._inbox_out = ctx.socket(zmq.PUSH)
        self._inbox_out.connect(INBOX)

    def publish(self, topic: str, values: dict[str, Any], source: str, meta: dict[str, Any] | None = None) -> bool:
        """Set a topic's values; returns False (and sends nothing) when they did not change."""
        meta = meta or {}
        with self._lock:
            current = self._cache.get(topic)
            if current and current[0]["values"] == values and current[0]["meta"] == meta:
                return False
            version, updated_at = (current[0]["version"] + 1) if current else 1, now_ms()
            payload = {"topic": topic, "version": version, "updated_at": updated_at, "source": source,
                       "values": values, "meta": meta}
            packed = msgpack.packb(payload, use_bin_type=True)
            try:
                self.configs.save(SavedConfig(topic=topic, version=version, source=source, payload=packed,
                                              updated_at=updated_at))
            except SQLAlchemyError as exc:  # disk full: the game still gets it now; a restart republishes it
                log.warning("%s: version %d published but not saved: %s", topic, version,
                            error_text(exc))
            self._cache[topic] = (payload, packed)
            if not self._inbox_out.closed:  # after shutdown the value is still saved for the next start
                self._inbox_out.send_string(topic)
        log.info("published %s version %d (%d keys)", topic, payload["version"], len(values))
        return True

    def snapshot_sized(self, prefix: str = "") -> tuple[dict[str, dict[str, Any]], int]:
        """`snapshot(prefix)` and about how many bytes it takes on the wire (its packed publications)."""
        with self._lock:
            chosen = {t: cached for t, cached in self._cache.items() if t.startswith(prefix)}
        return {t: p for t, (p, _) in chosen.items()}, sum(len(packed) for _, packed in chosen.values())

    def run(self, stop: threading.Event) -> None:
        """The publisher thread: forward new publications, answer subscriptions with the cached values."""
        poller = zmq.Poller()
        poller.register(self.xpub, zmq.POLLIN)
        poller.register(self._inbox_in, zmq.POLLIN)
        try:
            while not stop.is_set():
                ready = dict(poller.poll(250))
                if self.xpub in ready:
                    self._on_subscription(self.xpub.recv())
                if self._inbox_in in ready:
                    self._send(self._inbox_in.recv_string())
        finally:
            self.xpub.close(0)
            self._inbox_in.close(0)
            with self._lock:
                self._inbox_out.close(0)

    def _on_subscription(self, frame: bytes) -> None:
        if not frame or frame[0] != 1:
            return  # an unsubscription: nothing to send
        prefix = frame[1:].decode("utf-8", errors="replace")
        with self._lock:
            topics = [t for t in self._cache if t.startswith(prefix)]
        for topic in topics:
            self._send(topic)

    def _send(self, topic: str) -> None:
        with self._lock:
            packed = self._cache[topic][1]
        self.xpub.send_multipart([topic.encode(), packed])
