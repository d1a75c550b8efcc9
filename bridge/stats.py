"""The daemon's counters: what `stats` replies and `engine-bridge status` prints.

Written by the ingress thread only; other threads read plain ints, which is safe under the GIL.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

RATE_WINDOW_S = 10.0
MAX_LAST_ERRORS = 10


@dataclass
class Counters:
    started: float = field(default_factory=time.monotonic)
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: int = 0
    last_errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_LAST_ERRORS))
    _stored_marks: deque[tuple[float, int]] = field(default_factory=deque)

    def note_stored(self, stored: int, duplicates: int) -> None:
        """Once per burst: what its acks reported."""
        if not stored and not duplicates:
            return
        self.stored += stored
        self.duplicates += duplicates
        now = time.monotonic()
        self._stored_marks.append((now, stored))
        self._trim(now)

    def note_error(self, code: str, message: str) -> None:
        self.errors += 1
        self.last_errors.append({"at": int(time.time() * 1000), "code": code, "message": message})

    def _trim(self, now: float) -> None:
        while self._stored_marks and now - self._stored_marks[0][0] > RATE_WINDOW_S:
            self._stored_marks.popleft()

    def rate(self) -> float:
        """Events stored per second over the last ten seconds."""
        self._trim(time.monotonic())
        return sum(n for _, n in self._stored_marks) / RATE_WINDOW_S

    def uptime(self) -> float:
        return time.monotonic() - self.started
