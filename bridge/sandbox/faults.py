"""Fault injection for the local provider sandboxes: a chosen error status, a late answer, a dropped connection.

A test (or a developer, through a sandbox's admin route) queues faults on a `FaultPlan`; every request on
a faultable route takes the first pending fault that names its route (or `*`), so "the next 3 event posts
answer 503" is one call. The plan knows routes only by name, so every provider's sandbox shares it; the
HTTP layer (`bridge.sandbox.server`) carries the faults out. All methods are thread-safe: the HTTP server
answers each connection on its own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

FaultKind = Literal["status", "delay", "drop"]
ANY_ROUTE = "*"
MAX_DELAY_S = 300.0
DEFAULT_BODY = '{"error": "injected fault"}'


@dataclass(frozen=True)
class Fault:
    """One fault: `status` answers `status` with `body` and handles nothing; `delay` waits `delay_s`, then
    the request is handled normally (so a client that gave up meanwhile still had its request served, as
    with a real slow server); `drop` closes the connection without an answer.

    `count` is how many requests the fault hits; None keeps it until the plan is cleared.
    """

    kind: FaultKind
    route: str = ANY_ROUTE
    count: int | None = 1
    status: int = 503
    body: str = DEFAULT_BODY
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"fault kind must be one of {', '.join(get_args(FaultKind))}, not {self.kind!r}")
        if not isinstance(self.route, str) or not self.route:
            raise ValueError("fault route must be a non-empty string (a route name or '*')")
        if self.count is not None and (type(self.count) is not int or self.count < 1):
            raise ValueError(f"fault count must be an integer >= 1 or None (until cleared), not {self.count!r}")
        if type(self.status) is not int or not 400 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP error status (400 to 599), not {self.status!r}")
        if not isinstance(self.body, str):
            raise ValueError("fault body must be a string")
        if type(self.delay_s) not in (int, float) or not 0 <= self.delay_s <= MAX_DELAY_S:
            raise ValueError(f"fault delay_s must be a number from 0 to {MAX_DELAY_S:g}, not {self.delay_s!r}")
        if self.kind == "delay" and self.delay_s <= 0:
            raise ValueError("a delay fault needs delay_s > 0")

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """A fault from an admin route's JSON body; unknown keys are refused so typos do not pass silently."""
        if not isinstance(data, Mapping):
            raise ValueError("a fault must be a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if "kind" not in data:
            raise ValueError("a fault needs a kind: status, delay or drop")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Pending:
    __slots__ = ("fault", "remaining")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.count  # None: until cleared


class FaultPlan:
    """The pending faults of one sandbox, consumed in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._fired: dict[str, int] = {}

    def add(self, fault: Fault) -> Fault:
        """Queue `fault` behind the faults already pending."""
        if not isinstance(fault, Fault):
            raise TypeError(f"expected a Fault, got {type(fault).__name__}")
        with self._lock:
            self._pending.append(_Pending(fault))
        return fault

    def fail(self, route: str = ANY_ROUTE, status: int = 503, count: int | None = 1,
             body: str = DEFAULT_BODY) -> Fault:
        """The next `count` requests on `route` answer `status`."""
        return self.add(Fault("status", route, count, status=status, body=body))

    def slow(self, route: str = ANY_ROUTE, delay_s: float = 1.0, count: int | None = 1) -> Fault:
        """The next `count` requests on `route` are answered `delay_s` seconds late."""
        return self.add(Fault("delay", route, count, delay_s=delay_s))

    def drop(self, route: str = ANY_ROUTE, count: int | None = 1) -> Fault:
        """The next `count` requests on `route` get their connection closed without an answer."""
        return self.add(Fault("drop", route, count))

    def take(self, route: str) -> Fault | None:
        """The fault the next request on `route` suffers, if any; counts it as used."""
        with self._lock:
            for entry in self._pending:
                if entry.fault.route in (route, ANY_ROUTE):
                    if entry.remaining == 1:
                        self._pending.remove(entry)
                    elif entry.remaining is not None:
                        entry.remaining -= 1
                    self._fired[route] = self._fired.get(route, 0) + 1
                    return entry.fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        """The faults still to come, each with `remaining` (None: until cleared)."""
        with self._lock:
            return [{**entry.fault.to_json(), "remaining": entry.remaining} for entry in self._pending]

    def fired(self) -> dict[str, int]:
        """How many requests each route had faulted since the last clear."""
        with self._lock:
            return dict(self._fired)

    def clear(self) -> None:
        """Forget every pending fault and the fired counts."""
        with self._lock:
            self._pending.clear()
            self._fired.clear()
