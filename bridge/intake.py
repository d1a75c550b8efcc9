"""What a game's requests add to a burst: its device row, its sessions, its events (with the providers' early
word) and its purchases. The ingress feeds these with its sockets' requests; nothing here knows a socket, so
an in-process test builds exactly the rows the daemon would."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgpack

from .protocol import Code, Event, Hello, PlayerRequest, ProtocolError, SessionRequest
from .sessions import SessionBook
from .store import Burst, EventKey, Ingest

MAX_KNOWN_CONSENTS = 100_000  # players' consent kept in memory beside the denied ones (the rest: read again)

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


class Consents:
    """Players' consent as the ingress knows it: every player who denied analytics (their events are discarded
    on arrival), and the state of those it met lately (the reply to a `consent` says the new state)."""

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest
        self.denied = ingest.denied_players()
        self._known: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()

    def state(self, device_id: str, user_id: str) -> tuple[str, str]:
        key = (device_id, user_id)
        known = self._known.get(key)
        if known is None:
            known = self._remember(key, self._ingest.consent(device_id, user_id))
        return known

    def _remember(self, key: tuple[str, str], state: tuple[str, str]) -> tuple[str, str]:
        self._known[key] = state
        self._known.move_to_end(key)
        if len(self._known) > MAX_KNOWN_CONSENTS:
            self._known.popitem(last=False)
        if state[0] == "denied":
            self.denied.add(key)
        else:
            self.denied.discard(key)
        return state

    def set(self, key: tuple[str, str], analytics: str | None, ip_ads: str | None) -> tuple[str, str]:
        before = self.state(*key)
        return self._remember(key, (analytics or before[0], ip_ads or before[1]))

    def forget(self, key: tuple[str, str]) -> None:
        self._known.pop(key, None)
        self.denied.discard(key)


    def own_user(self, device_id: str) -> str:
        """The device's own player, for a tool's request naming a device and no user."""
        user = self._ingest.device_user(device_id)
        if user is None:
            raise ProtocolError(Code.INVALID_VALUE, f"device {device_id!r} is not known here: name its user_id",
                                "device_id")
        return user


def _player_of(hello: Hello, request: PlayerRequest, consents: Consents) -> tuple[str, str]:
    if request.device_id is not None and request.device_id != hello.device_id:
        return request.device_id, request.user_id or consents.own_user(request.device_id)
    return hello.device_id, request.user_id or hello.user_id


def set_consent(burst: Burst, book: SessionBook, consents: Consents, hello: Hello, request: PlayerRequest,
                now: int) -> dict[str, Any]:
    """A `consent`: the player's new state, as reply fields. Denying analytics ends their session here (the
    store then drops every event of theirs, the session's end too: nothing of theirs is left to send)."""
    device_id, user_id = key = _player_of(hello, request, consents)
    book.refresh((user_id,))  # read (in a fleet) before anything changes: a store away changes nothing
    analytics, ip_ads = consents.set(key, request.analytics, request.ip_ads)
    if analytics == "denied":
        _end_player(burst, book, hello, device_id, user_id, now)
    burst.consents.append({"device_id": device_id, "user_id": user_id, "analytics": request.analytics,
                           "ip_ads": request.ip_ads})
    return {"device_id": device_id, "user_id": user_id, "analytics": analytics, "ip_ads": ip_ads}


def forget_player(burst: Burst, book: SessionBook, consents: Consents, hello: Hello, request: PlayerRequest,
                  now: int, providers: Sequence[str]) -> dict[str, Any]:
    """A `forget`: the player's session ended and every trace of them erased in the commit, with an erasure
    ledger entry per provider; as reply fields."""
    device_id, user_id = key = _player_of(hello, request, consents)
    _end_player(burst, book, hello, device_id, user_id, now)
    book.last_num.pop(user_id, None)
    consents.forget(key)
    burst.forgets.append({"device_id": device_id, "user_id": user_id, "providers": tuple(providers)})
    return {"device_id": device_id, "user_id": user_id, "providers": list(providers)}


def _end_player(burst: Burst, book: SessionBook, hello: Hello, device_id: str, user_id: str, now: int) -> None:
    session = book.current(user_id)
    if session is not None and session.device_id == device_id:
        book.end(burst, user_id, hello.game_build, now)


def add_events(burst: Burst, book: SessionBook, hello: Hello, good: Sequence[tuple[int, Event]], now: int,
               checkers: Mapping[str, Sequence[Checker]], consents: Consents | None = None,
               categories: list[str] | None = None) -> tuple[list[EventKey], list[dict[str, Any]]]:
    """The rows of a request's valid events, each in its user's session (opened if none); returns their keys
    and what the providers' rules say of them (the ack's `invalid`). An event of a player who denied analytics
    is discarded: no row, no key. `categories`, when given, gets each key's category, so that the ingress
    counts its acks' figures per category without a second look at the events."""
    denied = consents.denied if consents is not None and consents.denied else None
    keys: list[EventKey] = []
    invalid: list[dict[str, Any]] = []
    append_row = burst.events.append
    device_id, build = hello.device_id, hello.game_build
    sessions: dict[str, str] = {}  # user -> session id, looked up once per request
    if book.fleet:  # the request's players read from the fleet's store at once, not one by one
        book.refresh({ev.user_id or hello.user_id for _, ev in good})
    for index, ev in good:
        category = ev.category
        user_id = ev.user_id or hello.user_id
        if denied is not None and (device_id, user_id) in denied:
            continue
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
        if categories is not None:
            categories.append(category)
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
