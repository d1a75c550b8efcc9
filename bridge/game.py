"""A game's identity on the player's machine: its own endpoints, data directory and log, so that two games (of
two studios, with two studios' keys) never share a daemon.

On POSIX a game's endpoints are Unix sockets in the user's runtime directory (reached through the file's
permissions: other users cannot connect); elsewhere a loopback port chosen from the game id, the configs socket
on the next port. The bindings compute the same from the same id (FNV-1a of its UTF-8 bytes).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
from logging.handlers import RotatingFileHandler
from pathlib import Path

from .protocol import GAME_RE

# Per-game loopback ports: even ports of 40000-48998, below Windows' dynamic range (49152-65535), so that no
# outgoing connection holds a game's port.
PORT_BASE, PORT_PAIRS = 40000, 4500
FNV_OFFSET, FNV_PRIME = 0x811C9DC5, 0x01000193


def check_game(game: str) -> str:
    """The id itself, or ValueError saying what a game id is."""
    if not GAME_RE.fullmatch(game):
        raise ValueError(f"game id {game!r} must be 1-32 characters of a-z 0-9 _ -, starting with a letter or digit")
    return game


def fnv1a(text: str) -> int:
    """32-bit FNV-1a: simple enough that every binding computes it the same way."""
    value = FNV_OFFSET
    for byte in text.encode():
        value = ((value ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return value


def game_port(game: str) -> int:
    """The game's ingress port on loopback; its configs port is the next one."""
    return PORT_BASE + 2 * (fnv1a(game) % PORT_PAIRS)


def runtime_dir() -> Path:
    """Where a user's sockets live: $XDG_RUNTIME_DIR (Linux, the user's own, mode 0700), else the user's
    temporary directory (macOS: per user), else a folder of the user's in /tmp."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg)
    if sys.platform == "darwin":
        return Path(tempfile.gettempdir())
    return Path(tempfile.gettempdir()) / f"engine-bridge-{os.getuid()}"


def default_endpoints(game: str, unix_sockets: bool = sys.platform != "win32") -> tuple[str, str]:
    """(ingress, configs) for a game: `ipc://` under the runtime directory, or its pair of loopback ports."""
    if unix_sockets:
        folder = runtime_dir() / "engine-bridge" / game
        return f"ipc://{folder / 'ingress'}", f"ipc://{folder / 'configs'}"
    port = game_port(game)
    return f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}"


class EndpointInUse(Exception):
    """Another process answers at a Unix socket this daemon was to bind."""


def prepare_ipc(endpoint: str) -> None:
    """Make the folders of an `ipc://` endpoint, each one new readable by its user only (the socket's only
    protection); EndpointInUse if a daemon listens there already, since binding would take its socket away."""
    if not endpoint.startswith("ipc://") or not hasattr(socket, "AF_UNIX"):
        return
    path = Path(endpoint[len("ipc://"):])
    missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    if path.exists():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                return  # left behind by a daemon that died: libzmq replaces it
        raise EndpointInUse(f"another process listens at {endpoint}")


def release_ipc(endpoint: str) -> None:
    """Remove the socket file of an `ipc://` endpoint this daemon bound and has closed (libzmq leaves it)."""
    if endpoint.startswith("ipc://"):
        Path(endpoint[len("ipc://"):]).unlink(missing_ok=True)


LOG_BYTES, LOG_BACKUPS = 1_000_000, 2  # a player's disk holds at most 3 MB of a game's daemon log


def log_to_file(path: Path) -> None:
    """Log into `path` as well, rotated, with the formatter and the secret-masking filters of the console's."""
    root = logging.getLogger()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    for existing in root.handlers[:1]:
        handler.setFormatter(existing.formatter)
        for log_filter in existing.filters:
            handler.addFilter(log_filter)
    root.addHandler(handler)
