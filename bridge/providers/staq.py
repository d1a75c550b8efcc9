"""The staq provider: authorization per player, custom events, and purchase verification (Apple, Google Play).

Each player (a user: on a dedicated server, every player it names) is its own staq user, authorized with its
user id as staq's `deviceId`. Each play session gets its own staq session, by an authorization the first
time the session is seen (staq has no other way to start one), and its events and purchases go under that
session's `sid`, however late they are sent. The token is the user's (staq's document ties the token to the
user and the sid to the session): a 401 renews the token, and the session keeps its sid. The play session to
staq session map is kept in the store, so a restart or an outage changes neither.

Custom events go in one request per play session with `\\/Date(ms+hhmm)\\/` timestamps, and the event ids
staq returns are kept against ours; only that documented id list counts as delivered. A refused request is
bisected down to the event to blame, a body over staq's limit is split. A Google Play purchase can be checked
locally first against the app's public key, so a forged receipt is refused without a network call.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from ..store import Erasure, Purchase, PurchaseResult, StoredEvent
from ..protocol import SESSION_START
from .base import Built, Call, Erased, Outcome, Paused, Provider, ProviderContext, TryLater
from .http import json_object, json_or_none, json_text, request_id
from .settings import LaneSettings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

DEFAULT_ENDPOINT = "https://api.staq.io/v1"
DEFAULT_SECRET_HEADER = "AppSecret"
DEFAULT_MAX_BODY_BYTES = 1_000_000  # staq's document names no limit: ours, a setting (bodies over it are split)
KEPT_SESSIONS = 16  # play sessions per player whose staq sid is remembered (late events, purchases)
OUTSIDE_SESSIONS = ""  # the session key of a purchase made outside any play session
# The duplicate flag as the document's field list spells it, and as its examples do.
DUPLICATE_FLAGS = ("isDuplicate", "isDuplicated")
# An error answer about our session, user or token (not about what we sent): authorize again and retry.
ABOUT_US = re.compile(r"\b(sids?|sessions?|uids?|users?|tokens?|auth-token|unauthori[sz]ed)\b", re.IGNORECASE)
# Of the other refusals, only one that names the receipt is a verdict on it (and verdicts never change).
ABOUT_RECEIPT = re.compile(r"\b(receipts?|signatures?)\b", re.IGNORECASE)


def ms_date(ms: int, offset_minutes: int = 0) -> str:
    """staq's (Microsoft JSON) date: `/Date(<ms since epoch UTC>±hhmm)/`; the offset names the writer's zone."""
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"/Date({ms}{sign}{hours:02d}{minutes:02d})/"


def staq_json(value: Any) -> bytes:
    """JSON with every '/' written '\\/', as staq's documents show dates (equal JSON, faithful bytes)."""
    return json_text(value).replace("/", "\\/").encode()


def load_public_key(b64_der: str) -> RSAPublicKey:
    """The app's Google Play licensing key: base64 of a DER SubjectPublicKeyInfo, as the Play console shows it.
    (`cryptography` is imported here, by a daemon that checks Google Play receipts: the others never load it.)"""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = serialization.load_der_public_key(base64.b64decode(b64_der))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("google_play_public_key is not an RSA public key")
    return key


def google_play_signature_ok(key: RSAPublicKey, receipt_b64: str, signature_b64: str) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-1 over the purchase data (the receipt, base64-decoded)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        key.verify(base64.b64decode(signature_b64, validate=True), base64.b64decode(receipt_b64, validate=True),
                   padding.PKCS1v15(), hashes.SHA1())
        return True
    except (InvalidSignature, binascii.Error, ValueError):
        return False


def error_text(answer: httpx.Response) -> str:
    """What an error answer says: its JSON `error`, else the start of its body."""
    error = json_object(answer).get("error")
    return error if isinstance(error, str) else answer.text[:300]


def about_us(answer: httpx.Response) -> bool:
    """A refusal of our token (401), of our user or route (404, 403), or an error that names our session,
    user or token: nothing was judged of what we sent."""
    status = answer.status_code
    return status in (401, 403, 404) or (status in (400, 422) and ABOUT_US.search(error_text(answer)) is not None)


@dataclass(frozen=True)
class Seat:
    """Where a call goes: the player, its play session (the key of its staq sid) and the device behind it."""

    user_id: str
    session_key: str
    device: dict[str, Any]


@dataclass(frozen=True)
class Auth:
    """What a staq call needs: the player's staq user and token, and the staq session of its play session."""

    uid: str
    token: str
    sid: str


@dataclass(frozen=True, kw_only=True)
class StaqSettings(LaneSettings):
    endpoint: str = DEFAULT_ENDPOINT
    app_id: str
    app_secret: str = field(repr=False)
    app_secret_header: str = DEFAULT_SECRET_HEADER  # the docs do not name the header
    google_play_public_key: str | None = None  # refuse forged Google Play receipts without a network call
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class Staq(Provider):
    kind = "staq"
    Settings = StaqSettings
    categories = frozenset({"custom"})
    batch_size = 200
    verifies_purchases = True

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        settings: StaqSettings = ctx.settings
        self.base = settings.endpoint.rstrip("/") + f"/apps/{settings.app_id}"
        self.app_secret = settings.app_secret
        self.secret_header = settings.app_secret_header
        key = settings.google_play_public_key
        self.play_key = load_public_key(key) if key else None
        self.max_body_bytes = settings.max_body_bytes
        self.players: dict[str, dict[str, Any]] = {}  # user_id -> {uid, token, sessions: {session key: sid}}
        self.refused: set[tuple[str, str]] = set()  # (user, session key) whose staq session staq refused
        self.paused: str | None = None
        self.authorizations = 0
        self.forged = 0

    def accepts(self, event: StoredEvent) -> bool:
        """Its routed categories, and session starts (a new play session is a new staq session)."""
        return event.category == SESSION_START or super().accepts(event)

    def check(self, category: str, fields: dict[str, Any]) -> str | None:
        """staq's rule for an event's value (the document's "Event value", a string in its example): a
        string, number, boolean or null; the other fields travel in `metadata`, which takes any JSON."""
        if isinstance(fields.get("value"), (dict, list)):
            return "staq takes an event value that is a string, number, boolean or null, not a map or an array"
        return None

    # --- authorization --------------------------------------------------------------------------

    async def auth_for(self, seat: Seat) -> Auth:
        """The staq user, token and sid of a play session. Its first sight authorizes a new staq session, and
        so does a session staq refused; TryLater (or Paused) when authorization failed. One at a time per player
        (the event and purchase lanes; on a fleet, every daemon: the store's critical section, so a play session
        seen by two daemons at once is authorized once and has one sid)."""
        async with self.ctx.store.exclusive(f"player:{seat.user_id}"):
            player = await self._player(seat.user_id)
            refused = (seat.user_id, seat.session_key) in self.refused
            if player is not None and seat.session_key in player["sessions"] and not refused:
                return Auth(player["uid"], player["token"], player["sessions"][seat.session_key])
            answer = await self.ctx.send(self._authorization(seat))
            auth = await self._authorized(seat, player, answer, keep_sid=False)
            self.refused.discard((seat.user_id, seat.session_key))
            return auth

    async def _player(self, user_id: str) -> dict[str, Any] | None:
        """The player's staq user, token and sids: from memory, else from the store; on a shared store always
        from the store, where another daemon may have authorized a session or renewed the token."""
        kept = None if self.ctx.store.shared else self.players.get(user_id)
        player = kept or await self.ctx.store.get(f"player:{user_id}")
        if player:
            self.players[user_id] = player
        return player

    def _authorization(self, seat: Seat) -> httpx.Request:
        """POST auth/device with the player's user id as staq's deviceId."""
        device = seat.device
        info = {k: device.get(k) for k in ("platform", "os_version", "device", "manufacturer", "engine",
                                           "engine_version", "game_build") if device.get(k) is not None}
        return httpx.Request("POST", f"{self.base}/auth/device", content=staq_json(
            {"deviceId": seat.user_id, "deviceInfo": info}), headers={
            self.secret_header: self.app_secret, "Content-Type": "application/json"})

    async def _authorized(self, seat: Seat, player: dict[str, Any] | None, answer: httpx.Response,
                          keep_sid: bool) -> Auth:
        """Keep an authorization's user, token and sid (the play session keeps its sid if `keep_sid`)."""
        if answer.status_code in (401, 403):
            self.paused = f"authorization refused ({answer.status_code}): check app_id and app_secret"
            self.ctx.log.error("%s: %s", self.name, self.paused)
            raise Paused(self.paused)
        data = json_object(answer)
        if answer.status_code != 200 or not all(isinstance(data.get(k), str) for k in ("uid", "sid", "token")):
            self.ctx.log.error("%s: authorization answered %d without uid/sid/token (request %s)",
                               self.name, answer.status_code, request_id(answer))
            raise TryLater(f"staq authorization answered {answer.status_code} without uid/sid/token")
        self.paused = None
        self.authorizations += 1
        sessions = dict(player["sessions"]) if player else {}
        if not (keep_sid and seat.session_key in sessions):
            sessions.pop(seat.session_key, None)
            sessions[seat.session_key] = data["sid"]
        while len(sessions) > KEPT_SESSIONS:
            sessions.pop(next(iter(sessions)))
        player = {"uid": data["uid"], "token": data["token"], "sessions": sessions}
        self.players[seat.user_id] = player
        await self.ctx.store.set(f"player:{seat.user_id}", player)
        return Auth(data["uid"], data["token"], sessions[seat.session_key])

    def _request(self, auth: Auth, route: str, body: dict[str, Any]) -> httpx.Request:
        return httpx.Request("POST", f"{self.base}/users/{auth.uid}/{route}",
                             content=staq_json({"sid": auth.sid, **body}), headers={"Content-Type": "application/json"})

    # --- events ---------------------------------------------------------------------------------

    async def build(self, batch: list[StoredEvent]) -> Built:
        """One request per play session, in the order of its first event; a body over the limit split."""
        built = Built()
        by_session: dict[tuple[str, str], list[StoredEvent]] = {}
        for ev in batch:
            rule = None if ev.category == SESSION_START else self.check(ev.category, ev.fields)
            if rule:
                built.settled.dead.append((ev.pk, "invalid", rule))
            else:
                by_session.setdefault((ev.user_id, ev.session_id or OUTSIDE_SESSIONS), []).append(ev)
        for (user_id, session_key), evs in by_session.items():
            seat = Seat(user_id, session_key, _device_of(evs[0]))
            auth = await self.auth_for(seat)
            built.settled.delivered.update(ev.pk for ev in evs if ev.category == SESSION_START)
            custom = [ev for ev in evs if ev.category != SESSION_START]
            if custom:
                built.calls.extend(self._calls(seat, auth, custom))
        return built

    def _calls(self, seat: Seat, auth: Auth, evs: list[StoredEvent]) -> list[Call]:
        request = self._request(auth, "events", {"events": [_staq_event(ev) for ev in evs]})
        if len(request.content) > self.max_body_bytes and len(evs) > 1:
            return self._halves(seat, auth, evs)
        return [Call(request, key=seat.user_id, auth=_Token(self, seat, auth), context=(seat, auth, evs))]

    def _halves(self, seat: Seat, auth: Auth, evs: list[StoredEvent]) -> list[Call]:
        half = len(evs) // 2
        return self._calls(seat, auth, evs[:half]) + self._calls(seat, auth, evs[half:])

    def classify(self, call: Call, answer: httpx.Response) -> Outcome:
        """A refusal is bisected down to the event to blame; a refusal of our session authorizes it anew."""
        seat, auth, evs = call.context
        outcome = Outcome()
        status = answer.status_code
        if status == 200:
            self._delivered(evs, answer, outcome)
        elif about_us(answer):
            self.refused.add((seat.user_id, seat.session_key))
            outcome.error = f"staq refused our session ({status}): {error_text(answer)[:200]}; authorizing again"
        elif status in (400, 413, 422) and len(evs) > 1:
            outcome.then = self._halves(seat, auth, evs)
        elif status == 413:
            outcome.dead.append((evs[0].pk, "too_large", "the event alone is over staq's body limit (413)"))
        elif status in (400, 422):
            outcome.dead.append((evs[0].pk, "rejected", f"staq refused the event ({status}): {error_text(answer)}"))
        else:
            outcome.error = f"HTTP {status} from the events route"
        return outcome

    def _delivered(self, evs: list[StoredEvent], answer: httpx.Response, outcome: Outcome) -> None:
        """Only the documented answer, an id per event, is a delivery; anything else is retried."""
        ids = json_or_none(answer)
        if not (isinstance(ids, list) and len(ids) == len(evs) and all(isinstance(i, str) for i in ids)):
            outcome.error = f"staq answered 200 without the list of {len(evs)} event ids; will retry"
            self.ctx.log.error("%s: %s (request %s): %.200s", self.name, outcome.error, request_id(answer),
                               answer.text)
            return
        outcome.delivered.update(ev.pk for ev in evs)
        outcome.refs.extend((ev.pk, i) for ev, i in zip(evs, ids, strict=True))

    # --- purchases ------------------------------------------------------------------------------

    async def verify_purchase(self, purchase: Purchase) -> PurchaseResult | None:
        """The buyer's staq user verifies, in the staq session of the play session the purchase was made in."""
        if purchase.store == "googleplay" and self.play_key is not None and not google_play_signature_ok(
                self.play_key, purchase.receipt, purchase.signature or ""):
            self.forged += 1
            return PurchaseResult(False, False, "forged: the Google Play signature does not match the app's "
                                                "public key (checked locally)")
        seat = Seat(purchase.user_id, purchase.session_id or OUTSIDE_SESSIONS, purchase.device)
        body: dict[str, Any] = {"receipt": purchase.receipt, "priceUsd": purchase.price_usd, "status": purchase.status,
                                "comment": purchase.comment, "metadata": purchase.metadata}
        if purchase.store == "googleplay":
            body["signature"] = purchase.signature
        for renewed in (False, True):
            auth = await self.auth_for(seat)
            await self.ctx.store.purchase_sent(purchase.pk)  # before it goes: staq may spend it, then we may crash
            answer = await self.ctx.send(self._request(auth, f"iap/{purchase.store}", body), _Token(self, seat, auth))
            if not about_us(answer):
                return await self._verdict(purchase, answer)
            self.ctx.log.warning("%s: purchase %s: staq refused our session (%d: %s)%s", self.name,
                                 purchase.purchase_id, answer.status_code, error_text(answer)[:200],
                                 "; will retry" if renewed else "; authorizing again")
            self.refused.add((seat.user_id, seat.session_key))
        return None

    async def _verdict(self, purchase: Purchase, answer: httpx.Response) -> PurchaseResult | None:
        """staq's answer as a verdict, or None (retried) when the answer is not one."""
        status = answer.status_code
        if status in (400, 422) and ABOUT_RECEIPT.search(error_text(answer)):
            return PurchaseResult(False, False, f"refused by staq ({status}): {error_text(answer)[:200]}")
        data = json_object(answer)
        valid = data.get("isValid")
        if status != 200 or not isinstance(valid, bool):
            self.ctx.log.error("%s: purchase %s: answer %d without isValid (request %s); will retry", self.name,
                               purchase.purchase_id, status, request_id(answer))
            return None
        duplicate = any(data.get(flag) is True for flag in DUPLICATE_FLAGS)
        if valid and duplicate and purchase.sent_at is not None and not await self.ctx.store.receipt_granted(purchase):
            return PurchaseResult(True, False, "verified by staq (on our earlier request for this purchase, "
                                               "whose answer never reached us)")
        return PurchaseResult(valid, duplicate, "verified by staq")

    def player_keys(self, user_id: str) -> list[str]:
        return [f"player:{user_id}"]

    async def erase(self, erasure: Erasure) -> Erased:
        """staq's REST document has no deletion resource: a manual request naming the player as staq knows them
        (its `uid`, and the deviceId we authorized them with), after their token is dropped here."""
        user_id = erasure.user_id
        player = await self._player(user_id) or {}
        self.players.pop(user_id, None)
        self.refused = {seat for seat in self.refused if seat[0] != user_id}
        ids = {"deviceId": user_id, **({"uid": player["uid"]} if player.get("uid") else {})}
        return Erased("manual", ids, f"staq documents no deletion API: ask staq to erase uid {player.get('uid')!r} "
                      f"(deviceId {user_id!r})")

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"players": len(self.players), "authorizations": self.authorizations,
                                   "forged_receipts": self.forged}
        if self.paused:
            figures["paused"] = self.paused
        return figures


class _Token(httpx.Auth):
    """staq's Auth-Token on a call; a 401 renews the player's token (its play session keeps its sid) and the
    call goes once more, unless the other lane (or another daemon) renewed it meanwhile."""

    def __init__(self, staq: Staq, seat: Seat, auth: Auth) -> None:
        self.staq = staq
        self.seat = seat
        self.auth = auth

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Auth-Token"] = self.auth.token
        answer = yield request
        if answer.status_code != 401:
            return
        staq, seat = self.staq, self.seat
        async with staq.ctx.store.exclusive(f"player:{seat.user_id}"):
            player = await staq._player(seat.user_id)
            if player is not None and player["token"] != self.auth.token:
                token = player["token"]
            else:
                authorization = yield staq._authorization(seat)
                await authorization.aread()  # a flow of our own reads the answers it uses
                token = (await staq._authorized(seat, player, authorization, keep_sid=True)).token
        request.headers["Auth-Token"] = token
        yield request


def _device_of(ev: StoredEvent) -> dict[str, Any]:
    return {"platform": ev.platform, "os_version": ev.os_version, "device": ev.device,
            "manufacturer": ev.manufacturer, "engine_version": ev.engine_version, "game_build": ev.game_build}


def _staq_event(ev: StoredEvent) -> dict[str, Any]:
    fields = dict(ev.fields)
    name = fields.pop("name", ev.category)
    value = fields.pop("value", None)
    return {"timestamp": ms_date(ev.client_ts), "event": name, "value": value, "metadata": fields}
