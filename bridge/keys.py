"""CURVE key pairs kept in the data directory: a relay's server key, an edge's client key.

They are pyzmq's certificate files (`zmq.auth`): NAME.key holds the public key, the one to hand out (a relay's
goes into every edge's configuration, an edge's into a relay's allow-list); NAME.key_secret holds both, is
made readable by its owner only and never leaves the machine. A pair is made on first use and kept, so a
relay's public key stays the same across restarts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq.auth
from zmq.utils import z85

RELAY = "relay"  # a relay's server key pair
EDGE = "edge"  # an edge's client key pair
Z85_KEY_CHARS = 40


class BadKey(ValueError):
    """A key file or a configured key cannot be used; the message says which and why."""


@dataclass(frozen=True)
class KeyPair:
    public: bytes  # Z85, 40 characters
    secret: bytes = b""  # Z85; empty for a peer's key, of which only the public half is known

    def __repr__(self) -> str:  # never a secret in a log or a traceback
        return f"KeyPair(public={self.public.decode()!r})"


def key_pair(directory: Path, name: str) -> KeyPair:
    """The key pair NAME kept in `directory`, made there (owner-only) the first time it is asked for."""
    secret_file = directory / f"{name}.key_secret"
    if not secret_file.exists():
        directory.mkdir(parents=True, exist_ok=True)
        previous = os.umask(0o077)
        try:
            zmq.auth.create_certificates(str(directory), name)
        finally:
            os.umask(previous)
        os.chmod(secret_file, 0o600)
    try:
        public, secret = zmq.auth.load_certificate(str(secret_file))
    except (OSError, ValueError) as exc:
        raise BadKey(f"{secret_file}: not a key file ({exc})") from None
    if secret is None:
        raise BadKey(f"{secret_file}: holds no secret key")
    return KeyPair(public, secret)


def public_key(text: str, where: str) -> bytes:
    """A configured public key (Z85, 40 characters), checked; `where` names the setting in the error."""
    if len(text) != Z85_KEY_CHARS:
        raise BadKey(f"{where}: a CURVE public key is {Z85_KEY_CHARS} Z85 characters, got {len(text)}")
    try:
        z85.decode(text.encode("ascii"))
    except (UnicodeEncodeError, ValueError, KeyError):
        raise BadKey(f"{where}: {text!r} is not Z85 text") from None
    return text.encode("ascii")
