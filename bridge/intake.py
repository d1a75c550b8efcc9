"""What a game's requests add to a burst: its device row, its sessions, its events (with the providers' early
word) and its purchases. The ingress feeds these with its sockets' requests; nothing here knows a socket, so
an in-process test builds exactly the rows the daemon would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgpack

from .protocol import Event, Hello, SessionRequest
from .sessions import SessionBook
from .store import Burst, EventKey

packb = msgpack.Packer(use_bin_type=True).pack  # one packer for every event's fields, not one per call


class Checker(Protocol):
    """A provider's early word on an event's fields: None when valid, else the rule broken."""

    name: str

    def check(self, category: str, fields: dict[str, Any]) -> str | None: ...

    def check_user(self, user_id: str) -> str | None: ...


def add_device(burst: Burst, hello: Hello, now: int) -> None:
    """The device a game's hello describes, seen now."""
    burst.devices[hello.device_id] = {
        "device_id": hello.device_id, "user_id": hello.user_id, "engine": hello.engine,
        "engine_version": hello.engine_version, "binding": hello.binding, "binding_version": hello.binding_version,
        "game_build": hello.game_build, "platform": hello.platform, "os_version": hello.os_version,
        "device": hello.device, "manufacturer": hello.manufacturer, "first_seen": now, "last_seen": now,
        **({"client_key": hello.client_key} if hello.client_key is not None else {})}


def start_session(burst: Burst, book: SessionBook, hello: Hello, request: SessionRequest,
                  now: int) -> dict[str, Any]:
    """A `session_start`: the player's new session (on the player's own device where the request gave one),
    as reply fields. A request naming a session it started before (a resend) gets that session again."""
    user_id = request.user_id or hello.user_id
    if request.session_id is not None:
        known = book.known(request.session_id, hello.device_id, user_id)
        if known is not None:
            return known
    session = book.start(burst, hello.device_id, user_id, hello.game_build, now if request.ts is None else request.ts,
                         request.user_ip or hello.address, request.device, request.session_id)
    session.last_seen = now
    return session.to_wire()


def end_session(burst: Burst, book: SessionBook, hello: Hello, request: SessionRequest,
                now: int) -> dict[str, Any] | None:
    """A `session_end`: the ended session's reply fields, or None if the player had none open. A request
    naming its session ends only that one, and gets it again if it was ended already (a resend)."""
    user_id = request.user_id or hello.user_id
    at = now if request.ts is None else request.ts
    if request.session_id is not None:
        current = book.current(user_id)
        if current is None or current.session_id != request.session_id:
            return book.known(request.session_id, hello.device_id, user_id)
    return book.end(burst, user_id, hello.game_build, at)


def add_events(burst: Burst, book: SessionBook, hello: Hello, good: Sequence[tuple[int, Event]], now: int,
               checkers: Mapping[str, Sequence[Checker]]) -> tuple[list[EventKey], list[dict[str, Any]]]:
    """The rows of a request's valid events, each in its user's session (opened if none); returns their keys
    and what the providers' rules say of them (the ack's `invalid`)."""
    keys: list[EventKey] = []
    invalid: list[dict[str, Any]] = []
    append_row = burst.events.append
    device_id, build = hello.device_id, hello.game_build
    sessions: dict[str, str] = {}  # user -> session id, looked up once per request
    for index, ev in good:
        category = ev.category
        user_id = ev.user_id or hello.user_id
        if category in checkers:
            for provider in checkers[category]:
                rule = provider.check(category, ev.fields) or provider.check_user(user_id)
                if rule:
                    invalid.append({"index": index, "id": ev.id, "provider": provider.name, "message": rule})
        session_id = sessions.get(user_id)
        if session_id is None:
            session = book.ensure(burst, device_id, user_id, build, now, hello.address)
            session_id = sessions[user_id] = session.session_id
        append_row((device_id, ev.id, user_id, session_id, category, ev.ts, now, build, packb(ev.fields)))
        keys.append((device_id, ev.ts, ev.id))
    return keys, invalid


def add_purchase(burst: Burst, book: SessionBook, hello: Hello, purchase: dict[str, Any], now: int) -> tuple[str, str]:
    """The row of a checked purchase (`protocol.read_purchase`), in its buyer's open session if any; returns
    its key, (device id, purchase id)."""
    user_id = purchase.pop("user_id") or hello.user_id
    session = book.current(user_id)
    purchase.update(device_id=hello.device_id, user_id=user_id, created_at=now,
                    session_id=session.session_id if session else None, metadata=packb(purchase["metadata"]))
    burst.purchases.append(purchase)
    return hello.device_id, str(purchase["purchase_id"])
