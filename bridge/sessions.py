"""Play sessions: one open session per user, numbered, stamped on events, ended on request or timeout.

The book lives in the ingress thread's memory and writes every change into the current `Burst`, so that a
session's start or end commits in the same transaction as the events around it. Session boundaries are also
stored as events (`session_start`, `session_end`), so that providers receive them in order with the rest.

In a fleet (several daemons on one PostgreSQL store) a player may move from one daemon to another, so the
store is the book's truth and memory a cache at most `FLEET_CHECK_MS` old: a player's open session and last
number are read again when the player was not looked up for that long (one query per request, for all its
players), a daemon writes each session's last activity as often, and a session idle here is ended only if it
is idle in the store too (its player may be playing through another daemon).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import msgpack

from .protocol import PLAYER_DEVICE_MAX_CHARS, SESSION_END, SESSION_START, Code, ProtocolError
from .store import Burst, Ingest, OpenSession

MAX_LENGTH_S = 2**31 - 1  # sessions.length is a 32-bit column; client clocks can make any span
KEEP_ENDED = 10_000  # sessions ended by this process remembered by id (older ones are read from the store)
FLEET_CHECK_MS = 5_000  # in a fleet: how stale the book's view of a player may be, and how often activity is written


@dataclass(slots=True)
class Session(OpenSession):
    """An open session as the ingress keeps it: the stored row, when its user was last heard of, and (in a
    fleet) the last activity this daemon wrote."""

    last_seen: int
    stored_seen: int = 0

    def to_wire(self, ended_at: int | None = None, length: int | None = None) -> dict[str, Any]:
        return {"session_id": self.session_id, "session_num": self.session_num, "user_id": self.user_id,
                "started_at": self.started_at, "ended_at": ended_at, "length": length}


class SessionBook:
    """Open sessions by user id, and the last session number of every user."""

    def __init__(self, ingest: Ingest, now: int, check_ms: int = FLEET_CHECK_MS) -> None:
        self._ingest = ingest
        self._check_ms = check_ms
        self.open: dict[str, Session] = {}
        self.by_id: dict[str, Session] = {}
        self.ended: OrderedDict[str, tuple[str, str, dict[str, Any]]] = OrderedDict()  # id -> device, user, wire
        self.last_num = ingest.last_session_nums()
        self.fleet = ingest.leased
        self._checked: dict[str, int] = {}  # in a fleet: user -> when (_clock_ms) the store was last read for it
        for row in ingest.open_sessions():
            self._open(Session(**asdict(row), last_seen=now))

    def _open(self, session: Session) -> None:
        self.open[session.user_id] = self.by_id[session.session_id] = session

    def _close(self, session: Session) -> None:
        del self.open[session.user_id], self.by_id[session.session_id]

    def refresh(self, users: Iterable[str], force: bool = False) -> None:
        """In a fleet, what the store says of these players' sessions, for those not read in the last
        `check_ms` (all of them with `force`): a session another daemon opened is taken up, one it
        ended is dropped, numbers go on from the highest, activity elsewhere counts. Nothing on SQLite."""
        if not self.fleet:
            return
        now = _clock_ms()
        stale = {user for user in users if force or now - self._checked.get(user, -self._check_ms) >= self._check_ms}
        if not stale:
            return
        opened, nums = self._ingest.fleet_sessions(stale)
        for user, num in nums.items():
            self.last_num[user] = max(num, self.last_num.get(user, 0))
        found = {row.user_id: (row, seen) for row, seen in opened}
        for user in stale:
            self._checked[user] = now
            mine, (row, seen) = self.open.get(user), found.get(user, (None, None))
            if mine is not None and (row is None or row.session_id != mine.session_id):
                self._close(mine)  # ended, or replaced, through another daemon
                mine = None
            if row is not None and mine is None:
                self._open(mine := Session(**asdict(row), last_seen=seen or row.started_at))
            if mine is not None and seen is not None:
                mine.last_seen = max(mine.last_seen, seen)

    def current(self, user_id: str) -> Session | None:
        self.refresh((user_id,))
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
        if self.current(user_id) is not None:
            self.end(burst, user_id, game_build, at)
        num = self.last_num.get(user_id, 0) + 1
        self.last_num[user_id] = num
        session = Session(session_id or str(uuid.uuid4()), device_id, user_id, num, at, user_ip, at, at)
        self._open(session)
        burst.new_sessions.append({"session_id": session.session_id, "device_id": device_id, "user_id": user_id,
                                   "session_num": num, "user_ip": user_ip, "started_at": at, "last_seen": at,
                                   **{name: (device or {}).get(name) for name in PLAYER_DEVICE_MAX_CHARS}})
        burst.events.append(_marker(session, SESSION_START, game_build, at, {"session_num": num}))
        return session

    def ensure(self, burst: Burst, device_id: str, user_id: str, game_build: str, at: int,
               user_ip: str | None = None) -> Session:
        """The user's open session, opened implicitly for an event sent outside one."""
        session = self.current(user_id)
        if session is None:
            session = self.start(burst, device_id, user_id, game_build, at, user_ip)
        session.last_seen = at
        if self.fleet and at - session.stored_seen >= self._check_ms:
            burst.seen_sessions[session.session_id] = session.stored_seen = at
        return session

    def end(self, burst: Burst, user_id: str, game_build: str, at: int) -> dict[str, Any] | None:
        """Close the user's session; None if none is open."""
        session = self.current(user_id)
        if session is None:
            return None
        self._close(session)
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
        if self.fleet:
            clock = _clock_ms()
            self._checked = {user: at for user, at in self._checked.items() if clock - at < self._check_ms}
            if idle:  # idle here; perhaps not where the player went
                self.refresh([s.user_id for s in idle], force=True)
                idle = [s for s in self.open.values() if now - s.last_seen > timeout_ms]
        for session in idle:
            self.end(burst, session.user_id, build_of.get(session.device_id, ""), session.last_seen)
        return len(idle)


def _clock_ms() -> int:
    """The book's own clock for how fresh its view is (requests carry the players' clocks)."""
    return int(time.monotonic() * 1000)


def _marker(session: Session, category: str, game_build: str, at: int, fields: dict[str, Any]) -> tuple[Any, ...]:
    """A session boundary as an event row (EVENT_COLUMNS order); its uid makes it idempotent."""
    uid = f"{category}:{session.session_id}"
    return (session.device_id, uid, session.user_id, session.session_id, category, at, at, game_build,
            msgpack.packb(fields))
