"""Play sessions: one open session per user, numbered, stamped on events, ended on request or timeout.

The book lives in the ingress thread's memory and writes every change into the current `Burst`, so that a
session's start or end commits in the same transaction as the events around it. Session boundaries are also
stored as events (`session_start`, `session_end`), so that providers receive them in order with the rest.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import msgpack

from .protocol import PLAYER_DEVICE_MAX_CHARS, SESSION_END, SESSION_START, Code, ProtocolError
from .store import Burst, Ingest, OpenSession

MAX_LENGTH_S = 2**31 - 1  # sessions.length is a 32-bit column; client clocks can make any span
KEEP_ENDED = 10_000  # sessions ended by this process remembered by id (older ones are read from the store)


@dataclass(slots=True)
class Session(OpenSession):
    """An open session as the ingress keeps it: the stored row, and when its user was last heard of."""

    last_seen: int

    def to_wire(self, ended_at: int | None = None, length: int | None = None) -> dict[str, Any]:
        return {"session_id": self.session_id, "session_num": self.session_num, "user_id": self.user_id,
                "started_at": self.started_at, "ended_at": ended_at, "length": length}


class SessionBook:
    """Open sessions by user id, and the last session number of every user."""

    def __init__(self, ingest: Ingest, now: int) -> None:
        self._ingest = ingest
        self.open: dict[str, Session] = {}
        self.by_id: dict[str, Session] = {}
        self.ended: OrderedDict[str, tuple[str, str, dict[str, Any]]] = OrderedDict()  # id -> device, user, wire
        self.last_num = ingest.last_session_nums()
        for row in ingest.open_sessions():
            self.open[row.user_id] = self.by_id[row.session_id] = Session(**asdict(row), last_seen=now)

    def current(self, user_id: str) -> Session | None:
        return self.open.get(user_id)

    def known(self, session_id: str, device_id: str, user_id: str) -> dict[str, Any] | None:
        """A session a client names by its id (a resent `session_start` or `session_end`): its reply fields,
        open or ended, or None if no session has that id. An id that is another player's is refused."""
        session = self.by_id.get(session_id)
        if session is not None:
            owner, wire = (session.device_id, session.user_id), session.to_wire()
        elif session_id in self.ended:
            device, user, wire = self.ended[session_id]
            owner = (device, user)
        else:
            row = self._ingest.session(session_id)
            if row is None:
                return None
            owner = (row.pop("device_id"), row["user_id"])
            wire = row
        if owner != (device_id, user_id):
            raise ProtocolError(Code.INVALID_VALUE, "session_id names another player's session", "session_id")
        return wire

    def start(self, burst: Burst, device_id: str, user_id: str, game_build: str, at: int,
              user_ip: str | None = None, device: dict[str, str] | None = None,
              session_id: str | None = None) -> Session:
        """End the user's open session if any, then open a new one (on the player's own `device`, if given),
        with the client's `session_id` when it chose one (see `known` first)."""
        if user_id in self.open:
            self.end(burst, user_id, game_build, at)
        num = self.last_num.get(user_id, 0) + 1
        self.last_num[user_id] = num
        session = Session(session_id or str(uuid.uuid4()), device_id, user_id, num, at, user_ip, at)
        self.open[user_id] = self.by_id[session.session_id] = session
        burst.new_sessions.append({"session_id": session.session_id, "device_id": device_id, "user_id": user_id,
                                   "session_num": num, "user_ip": user_ip, "started_at": at,
                                   **{name: (device or {}).get(name) for name in PLAYER_DEVICE_MAX_CHARS}})
        burst.events.append(_marker(session, SESSION_START, game_build, at, {"session_num": num}))
        return session

    def ensure(self, burst: Burst, device_id: str, user_id: str, game_build: str, at: int,
               user_ip: str | None = None) -> Session:
        """The user's open session, opened implicitly for an event sent outside one."""
        session = self.open.get(user_id)
        if session is None:
            session = self.start(burst, device_id, user_id, game_build, at, user_ip)
        session.last_seen = at
        return session

    def end(self, burst: Burst, user_id: str, game_build: str, at: int) -> dict[str, Any] | None:
        """Close the user's session; None if none is open."""
        session = self.open.pop(user_id, None)
        if session is None:
            return None
        del self.by_id[session.session_id]
        length = min(max(0, (at - session.started_at) // 1000), MAX_LENGTH_S)
        burst.ended_sessions.append({"session_id": session.session_id, "ended_at": at, "length": length})
        burst.events.append(_marker(session, SESSION_END, game_build, at, {"length": length}))
        wire = session.to_wire(at, length)
        self.ended[session.session_id] = (session.device_id, user_id, wire)
        if len(self.ended) > KEEP_ENDED:
            self.ended.popitem(last=False)
        return wire

    def expire(self, burst: Burst, now: int, timeout_ms: int, build_of: dict[str, str]) -> int:
        """End sessions idle longer than the timeout, at their last activity; returns how many."""
        idle = [s for s in self.open.values() if now - s.last_seen > timeout_ms]
        for session in idle:
            self.end(burst, session.user_id, build_of.get(session.device_id, ""), session.last_seen)
        return len(idle)


def _marker(session: Session, category: str, game_build: str, at: int, fields: dict[str, Any]) -> tuple[Any, ...]:
    """A session boundary as an event row (EVENT_COLUMNS order); its uid makes it idempotent."""
    uid = f"{category}:{session.session_id}"
    return (session.device_id, uid, session.user_id, session.session_id, category, at, at, game_build,
            msgpack.packb(fields))
