"""The configs socket: an XPUB with a last-value cache.

Sources (the local file, provider remote configs) call `publish()` from any thread. A topic whose values
changed gets the next version, is saved in the store (versions survive restarts) and goes out at once.
A subscription arriving on the XPUB is answered with the current value of every matching topic, so a late
subscriber never waits for the next change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq
from sqlalchemy.exc import SQLAlchemyError

from .protocol import CONFIG_PREFIX, HEARTBEAT_MS, HEARTBEAT_TIMEOUT_MS, PURCHASE_PREFIX, topic_device
from .secure import RelayFigures
from .store import SavedConfig, SavedConfigs, Store, error_text, now_ms

log = logging.getLogger(__name__)

INBOX = "inproc://engine-bridge-publisher"
KEY_CHARS = 40  # a Z85 client key, the first part of every topic on a relay's CURVE configs socket
V1_GAMEANALYTICS = "config/gameanalytics"  # protocol v1's topic: the configs of the player asked last
OWNERLESS_S = 2.0  # a device found owned by no key is looked up again after this long


@dataclass
class RelayConfigs:
    """A relay's CURVE configs socket: each device's topics go out behind the key that owns the device, and a
    subscriber is granted only prefixes behind its own key, so it reads its own devices' topics only."""

    xpub: zmq.Socket[bytes]  # XPUB_MANUAL, CURVE server (bridge/secure.py)
    owner: Callable[[str], str | None]  # device id -> its client key (a store read)
    figures: RelayFigures


class Publisher:
    """Owns the XPUB socket (in its own thread) and the cache of every topic's latest publication."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, store: Store, relay: RelayConfigs | None = None) -> None:
        self.ctx = ctx
        self.relay = relay
        self._owners: dict[str, tuple[str | None, float]] = {}  # device -> (key, when looked up)
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

    def drop_player(self, device_id: str, user_id: str, own: bool) -> list[str]:
        """A forgotten player's topics, gone from the cache and the store (subscribers get no value for them any
        more): `config/<source>/<device>/<user>`, and for the device's own player its device-wide topics
        (`config/<source>/<device>`, `purchase/<device>`, v1's `config/gameanalytics`). Returns them."""
        player_suffix, device_suffix = f"/{device_id}/{user_id}", f"/{device_id}"

        def theirs(topic: str) -> bool:
            if not topic.startswith(CONFIG_PREFIX):
                return own and topic == PURCHASE_PREFIX + device_id
            source_and_rest = topic[len(CONFIG_PREFIX):]
            return topic.endswith(player_suffix) or own and (
                topic == V1_GAMEANALYTICS or source_and_rest.count("/") == 1 and topic.endswith(device_suffix))

        with self._lock:
            topics = [t for t in self._cache if theirs(t)]
            for topic in topics:
                del self._cache[topic]
        self.configs.delete(topics)
        return topics

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
        if self.relay is not None:
            poller.register(self.relay.xpub, zmq.POLLIN)
        try:
            while not stop.is_set():
                ready = dict(poller.poll(250))
                if self.xpub in ready:
                    self._on_subscription(self.xpub.recv())
                if self.relay is not None and self.relay.xpub in ready:
                    self._on_relay_subscription(self.relay.xpub.recv(copy=False))
                if self._inbox_in in ready:
                    self._send(self._inbox_in.recv_string())
        finally:
            self.xpub.close(0)
            if self.relay is not None:
                self.relay.xpub.close(0)
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

    def _on_relay_subscription(self, frame: zmq.Frame) -> None:
        """A relay client's (un)subscription: granted behind its own key only; a new one gets the current
        values of its devices' topics."""
        assert self.relay is not None
        try:
            key = str(frame.get("User-Id")).encode()
        except zmq.ZMQError:
            # No connection behind it: libzmq's own unsubscriptions of a subscriber that went away, whose
            # subscriptions it has already dropped.
            return
        data = frame.bytes
        if not data or data[0] not in (0, 1):
            return
        prefix = data[1:]
        if not prefix.startswith(key) or len(key) != KEY_CHARS:
            self.relay.figures.subscriptions_refused += 1
            log.debug("relay subscription refused: %r is not behind the subscriber's key", prefix[:80])
            return
        self.relay.xpub.setsockopt(zmq.SUBSCRIBE if data[0] == 1 else zmq.UNSUBSCRIBE, prefix)
        if data[0] == 1:
            with self._lock:
                topics = [t for t in self._cache if (key + t.encode()).startswith(prefix)]
            for topic in topics:
                self._send(topic, local=False)

    def _owner(self, device_id: str) -> str | None:
        """The device's owning key (kept once found; an ownerless device is asked about again later)."""
        assert self.relay is not None
        known = self._owners.get(device_id)
        if known is None or (known[0] is None and time.monotonic() - known[1] > OWNERLESS_S):
            try:
                known = (self.relay.owner(device_id), time.monotonic())
            except SQLAlchemyError as exc:
                log.warning("relay: the owner of %s could not be read: %s", device_id, error_text(exc))
                return None
            self._owners[device_id] = known
        return known[0]

    def _send(self, topic: str, local: bool = True) -> None:
        with self._lock:
            packed = self._cache[topic][1]
        if local:
            self.xpub.send_multipart([topic.encode(), packed])
        device = topic_device(topic) if self.relay is not None else None
        owner = self._owner(device) if device is not None else None
        if owner is not None:
            assert self.relay is not None
            self.relay.xpub.send_multipart([owner.encode() + topic.encode(), packed])
