"""What the store hands out: one small dataclass per kind of row, built and read by field name (a named tuple
where its callers unpack it), never a bare positional tuple."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass(slots=True)
class StoredEvent:
    """An event as a provider sees it: the event, its session and the device that sent it."""

    pk: int
    device_id: str
    uid: str
    user_id: str
    session_id: str | None
    category: str
    client_ts: int
    received_at: int
    game_build: str
    fields: dict[str, Any]
    session_num: int | None
    user_ip: str | None
    platform: str | None
    os_version: str | None
    device: str | None
    manufacturer: str | None
    engine_version: str | None
    engine: str | None  # the hello's engine name (unity, unreal, godot, custom, ...)
    own: bool | None  # the player is its device's hello player (None: the device is unknown)
    ip_ads: bool = True  # the player's consent lets their IP address and advertising ids go to providers
    purges: int = 0  # the store's count of purges when the event was read (see `Delivery.recheck`)


class Requeued(NamedTuple):
    """A dead letter an operator re-queued, with its event (a named tuple: the dispatcher unpacks the pair)."""

    letter_pk: int
    event: StoredEvent


@dataclass(slots=True)
class DeadLetter:
    """An event a provider refused for good; `category` and `uid` are None once the event was purged."""

    pk: int
    provider: str
    event_pk: int
    code: str
    reason: str
    created_at: int
    requeued_at: int | None
    category: str | None
    uid: str | None


@dataclass(slots=True)
class Purchase:
    """A purchase to verify, with the device context a provider needs to authorize it. `sent_at` is set once
    a verification request went out: a retry may then find the receipt spent by that very request."""

    pk: int
    device_id: str
    purchase_id: str
    user_id: str
    session_id: str | None
    store: str
    receipt: str
    signature: str | None
    price_usd: float
    status: str
    comment: str
    metadata: dict[str, Any]
    device: dict[str, Any]
    sent_at: int | None
    failures: int


@dataclass(slots=True)
class PurchaseResult:
    """A provider's verdict on a purchase: what a game grants on (valid and not a duplicate)."""

    is_valid: bool
    is_duplicate: bool
    reason: str

    def to_wire(self) -> dict[str, Any]:
        return {"is_valid": self.is_valid, "is_duplicate": self.is_duplicate, "reason": self.reason}


class Player(NamedTuple):
    """A player whose provider session is kept fresh; `own`: the user of the device's hello, not one a
    dedicated server named (a named tuple: providers unpack it)."""

    device_id: str
    user_id: str
    own: bool


@dataclass(slots=True)
class OpenSession:
    """A session not yet ended: the ingress resumes it after a restart."""

    session_id: str
    device_id: str
    user_id: str
    session_num: int
    started_at: int
    user_ip: str | None


@dataclass(slots=True)
class SavedConfig:
    """A config topic's latest publication, kept so that versions go on from there after a restart."""

    topic: str
    version: int
    source: str
    payload: bytes  # the msgpack publication map
    updated_at: int


@dataclass(slots=True)
class Erasure:
    """One entry of the erasure ledger: a forgotten player, for one provider, and what became of it."""

    pk: int
    requested_at: int
    status: str  # pending, requested (a deletion API took it), manual (for the studio to send), sent, failed
    done_at: int | None
    provider: str
    device_id: str
    user_id: str
    own: bool  # the device's own (hello) player
    ids: dict[str, Any]  # what the provider knows the player as
    detail: str  # the deletion API's answer, or what to ask for by hand
