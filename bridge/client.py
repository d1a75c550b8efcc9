"""A small blocking protocol v1 client for tools: the CLI, the demo, the tests and the benchmarks.

Games use the engine bindings (non-blocking, queued); this client waits for each reply, which is what a
shell command or a test wants.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgpack
import zmq

from . import __version__
from .keys import KeyPair
from .protocol import PROTOCOL_VERSION


class NoReply(TimeoutError):
    """The daemon did not answer in time (not running, or a different endpoint)."""


class Client:
    """One DEALER connection; `request()` sends a map and returns the reply with the same rid."""

    def __init__(self, endpoint: str, timeout_ms: int = 5000, device_id: str = "cli",
                 relay_key: bytes | None = None, keys: KeyPair | None = None) -> None:
        """`relay_key` (a relay's public key, Z85) and `keys` (this client's pair) make it a CURVE client."""
        self.endpoint = endpoint
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if relay_key is not None:
            pair = keys or KeyPair(*zmq.curve_keypair())
            self.sock.setsockopt(zmq.CURVE_SERVERKEY, relay_key)
            self.sock.setsockopt(zmq.CURVE_PUBLICKEY, pair.public)
            self.sock.setsockopt(zmq.CURVE_SECRETKEY, pair.secret)
        self.sock.connect(endpoint)
        self.timeout_ms = timeout_ms
        self.device_id = device_id
        self._rids = itertools.count(1)

    def send(self, msg: dict[str, Any]) -> int:
        """Send without waiting; returns the rid (one is assigned when msg has none)."""
        rid: int = msg.setdefault("rid", next(self._rids) & 0xFFFFFFFF)
        self.sock.send(msgpack.packb(msg, use_bin_type=True))
        return rid

    def send_raw(self, frame: bytes) -> None:
        self.sock.send(frame)

    def recv(self, timeout_ms: int | None = None) -> dict[str, Any]:
        if not self.sock.poll(self.timeout_ms if timeout_ms is None else timeout_ms):
            raise NoReply(f"no reply from {self.endpoint}")
        return _map(self.sock.recv())

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        rid = self.send(msg)
        while True:
            reply = self.recv()
            if reply.get("rid") == rid:
                return reply

    def hello(self, **fields: Any) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "hello", "protocol": PROTOCOL_VERSION, "engine": "custom",
                               "binding": "engine-bridge-python", "binding_version": __version__,
                               "game_build": "dev", "device_id": self.device_id}
        msg.update(fields)
        return self.request(msg)

    def close(self) -> None:
        self.sock.close(0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def subscribe(endpoint: str, *prefixes: str) -> zmq.Socket[bytes]:
    """A SUB socket on the configs endpoint; receive with `recv_publication`."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    for prefix in prefixes or ("",):
        sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    return sock


def recv_publication(sock: zmq.Socket[bytes], timeout_ms: int) -> dict[str, Any] | None:
    """The next publication's map, or None after timeout_ms."""
    if not sock.poll(timeout_ms):
        return None
    _topic, payload = sock.recv_multipart()
    return _map(payload)


def _map(frame: bytes) -> dict[str, Any]:
    """A reply or publication: one msgpack map (protocol.md section 2)."""
    value = msgpack.unpackb(frame, raw=False)
    if not isinstance(value, dict):
        raise ValueError(f"expected a msgpack map, got {type(value).__name__}")
    return value
