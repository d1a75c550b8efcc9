"""The GameRamp provider: signed login per player, tokens kept fresh, player configs published to each player.

Each player (a user: on a dedicated server, every player it names) logs in on its own, with its user id as
GameRamp's `deviceId`. Login signs `apiKey|deviceId|timestamp` (HMAC-SHA256 with the API secret, base64).
Tokens are kept in the store (a restarted daemon does not log in again), refreshed before `expiresIn` runs
out, refreshed on a 401 and replaced by a new login when the refresh fails; a login answer without the
tenant and game ids its calls need is refused as malformed and tried again later. A 400 for the time window
teaches the provider the server's clock from the answer's `Date` header, and the login is retried once with
a corrected timestamp.

Player configs (from login and the status route) go to the player's topic: `config/gameramp/<device_id>`
for a device's own player, `config/gameramp/<device_id>/<user_id>` for another player a device names (a
dedicated server's), with each status entry past its `expiredAt` replaced by its `defaultValue`. Events are
forwarded only to a route the operator configures. GameRamp's document shows neither the status answer nor
any events route: where the status answer holds the config, the events route and the events body's layout
are settings, their defaults the shape the fact sheet assumes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections import defaultdict
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ..store import StoredEvent
from ..protocol import CONFIG_PREFIX, SESSION_START
from .base import Outcome, Provider, ProviderContext
from .http import TRANSIENT, json_object, json_text, request_id

DEFAULT_ENDPOINT = "https://api.gameramp.com"
TIME_WINDOW_ERROR = "Request timestamp is outside the acceptable time window"
REFRESH_AHEAD = 0.2  # refresh when a fifth of the token's life is left
DEFAULT_STATUS_REFRESH_S = 300.0
ACTIVE_PLAYER_S = 24 * 3600.0
TOPIC_PREFIX = CONFIG_PREFIX + "gameramp/"
# Not in GameRamp's document: settings, with these defaults (the fact sheet's assumptions).
DEFAULT_STATUS_ROUTE = "/v1/player/status"  # the document's one authenticated example
DEFAULT_STATUS_CONFIG_FIELD = "playerConfig"  # where the status answer holds the config ("": it is the config)
DEFAULT_EVENTS_ENVELOPE = ""  # the events body: a bare JSON array ("events": {"events": [...]})
DEFAULT_MAX_BODY_BYTES = 1_000_000  # an events body over it is split before it goes (and on a 413)
DEFAULT_EVENT_FIELDS = {"type": "eventType", "timestamp": "timestamp", "payload": "payload", "metadata": "metadata"}


def login_timestamp(epoch_s: float) -> str:
    """`YYYY-MM-DDThh:mm:ssZ`: UTC, whole seconds, a literal Z."""
    return datetime.fromtimestamp(int(epoch_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_timestamp(ms: int) -> str:
    """An event's time for GameRamp: ISO 8601 in UTC to the millisecond, `YYYY-MM-DDThh:mm:ss.mmmZ`."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def player_topic(device_id: str, user_id: str, own: bool) -> str:
    """A device's own player on the device's topic (what a game reads); another player a device names below it."""
    return TOPIC_PREFIX + device_id if own else f"{TOPIC_PREFIX}{device_id}/{user_id}"


def login_signature(api_key: str, device_id: str, timestamp: str, api_secret: str) -> str:
    """base64(HMAC-SHA256(apiSecret, "apiKey|deviceId|timestamp"))."""
    message = f"{api_key}|{device_id}|{timestamp}".encode()
    return base64.b64encode(hmac.new(api_secret.encode(), message, hashlib.sha256).digest()).decode()


def effective_config(player_config: dict[str, Any], now_s: float) -> dict[str, Any]:
    """What the game reads: each playerStatus entry's value (its defaultValue once expiredAt passed), beside the
    other sections as they are."""
    values: dict[str, Any] = {k: v for k, v in player_config.items() if k != "playerStatus"}
    for key, entry in (player_config.get("playerStatus") or {}).items():
        if not isinstance(entry, dict):
            values[key] = entry
            continue
        expired_at = _epoch(entry.get("expiredAt"))
        values[key] = entry.get("defaultValue") if expired_at is not None and expired_at <= now_s \
            else entry.get("value")
    return values


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) / (1000 if value > 1e11 else 1)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class GameRamp(Provider):
    kind = "gameramp"
    categories = frozenset({"design", "business", "progression", "resource", "error", "ads", "custom"})

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        s = ctx.settings
        self.endpoint = str(s.get("endpoint", DEFAULT_ENDPOINT)).rstrip("/")
        self.api_key = str(s["api_key"])
        self.api_secret = str(s["api_secret"])
        self.status_refresh_s = float(s.get("refresh", DEFAULT_STATUS_REFRESH_S))
        self.status_route = str(s.get("status_route", DEFAULT_STATUS_ROUTE))
        self.status_config_field = str(s.get("status_config_field", DEFAULT_STATUS_CONFIG_FIELD))
        self.events_route = s.get("events_route")  # e.g. "/v1/events"; None: events are not forwarded
        self.events_envelope = str(s.get("events_envelope", DEFAULT_EVENTS_ENVELOPE))
        self.event_fields = {**DEFAULT_EVENT_FIELDS, **dict(s.get("event_fields") or {})}
        self.max_body_bytes = int(s.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES))
        self.clock_offset_s = float(ctx.store.state.get(self.name, "clock_offset") or 0)
        self.sessions: dict[str, dict[str, Any]] = {}  # user_id -> tokens and ids
        self.configs: dict[str, dict[str, Any]] = {}  # user_id -> raw playerConfig
        self.topics: dict[str, set[str]] = {}  # user_id -> the topics its config goes to
        self.fetched_at: dict[str, float] = {}
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.logins = self.refreshes = self.failures = 0
        self.last_error: str | None = None

    def accepts(self, event: StoredEvent) -> bool:
        """Session starts (they refresh the player's config); other events only to a configured route."""
        return event.category == SESSION_START or (self.events_route is not None and super().accepts(event))

    # --- tokens ---------------------------------------------------------------------------------

    def _now(self) -> float:
        return time.time() + self.clock_offset_s

    async def login(self, user_id: str, corrected: bool = False) -> dict[str, Any] | None:
        timestamp = login_timestamp(self._now())
        body = {"apiKey": self.api_key, "deviceId": user_id, "timestamp": timestamp,
                "signature": login_signature(self.api_key, user_id, timestamp, self.api_secret)}
        try:
            answer = await self.ctx.http.post(f"{self.endpoint}/auth/login", json=body)
        except TRANSIENT as exc:
            self.last_error = f"login: {type(exc).__name__}"
            return None
        data = json_object(answer)
        if answer.status_code == 400 and data.get("error") == TIME_WINDOW_ERROR and not corrected:
            self._learn_clock(answer)
            return await self.login(user_id, corrected=True)
        if answer.status_code != 200 or not isinstance(data.get("accessToken"), str):
            self._failed(f"login answered {answer.status_code}: {data.get('error', answer.text[:200])}", answer)
            return None
        self.logins += 1
        return self._keep(user_id, data, answer)

    async def refresh(self, user_id: str) -> dict[str, Any] | None:
        """New tokens from the refresh token; a new login when that is refused."""
        session = self.sessions.get(user_id)
        if session is None:
            return await self.login(user_id)
        try:
            answer = await self.ctx.http.post(f"{self.endpoint}/auth/refresh",
                                              json={"refreshToken": session["refreshToken"]})
        except TRANSIENT as exc:
            self.last_error = f"refresh: {type(exc).__name__}"
            return None
        data = json_object(answer)
        if answer.status_code != 200 or not isinstance(data.get("accessToken"), str):
            self.ctx.log.info("%s: refresh for %s answered %d: logging in again", self.name, user_id,
                              answer.status_code)
            return await self.login(user_id)
        self.refreshes += 1
        return self._keep(user_id, {**session, **data}, answer)

    def _failed(self, error: str, answer: httpx.Response) -> None:
        self.failures += 1
        self.last_error = error
        self.ctx.log.error("%s: %s (request %s)", self.name, error, request_id(answer))

    def _keep(self, user_id: str, data: dict[str, Any], answer: httpx.Response) -> dict[str, Any] | None:
        """Keep a login or refresh answer's tokens; one without the ids every call names is malformed."""
        missing = [k for k in ("refreshToken", "tenantId", "gameId") if not (isinstance(data.get(k), str) and data[k])]
        if missing:
            self._failed(f"login answer without {', '.join(missing)}: refused as malformed, logging in again "
                         "later", answer)
            return None
        expires_in = float(data.get("expiresIn") or 3600)
        session = {k: data.get(k) for k in ("accessToken", "refreshToken", "userId", "gameId", "tenantId")}
        session["expiresAt"] = time.time() + expires_in
        session["refreshAt"] = time.time() + expires_in * (1 - REFRESH_AHEAD)
        self.sessions[user_id] = session
        self.ctx.store.state.set(self.name, f"player:{user_id}", session)
        if isinstance(data.get("playerConfig"), dict):
            self._publish(user_id, data["playerConfig"])
        return session

    def _learn_clock(self, answer: httpx.Response) -> None:
        try:
            server = parsedate_to_datetime(answer.headers["Date"]).timestamp()
        except (KeyError, TypeError, ValueError):
            return
        self.clock_offset_s = server - time.time()
        self.ctx.store.state.set(self.name, "clock_offset", self.clock_offset_s)
        self.ctx.log.warning("%s: our clock is %+.0f s off GameRamp's; correcting", self.name, -self.clock_offset_s)

    async def session_for(self, user_id: str) -> dict[str, Any] | None:
        """Valid tokens for a player: kept, refreshed ahead of expiry, or a new login (one at a time per
        player: the timer and the events lane may both need them)."""
        async with self.locks[user_id]:
            session = self.sessions.get(user_id)
            if session is None:
                stored = self.ctx.store.state.get(self.name, f"player:{user_id}")
                if stored:
                    self.sessions[user_id] = session = stored
            if session is None:
                return await self.login(user_id)
            if time.time() >= session["refreshAt"]:
                return await self.refresh(user_id)
            return session

    @staticmethod
    def _headers(session: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {session['accessToken']}", "X-Tenant-ID": session["tenantId"],
                "X-Game-Id": session["gameId"]}

    # --- player configs -------------------------------------------------------------------------

    async def fetch_status(self, user_id: str) -> None:
        """GET the status route; a 401 refreshes the tokens (or logs in) and asks once more."""
        self.fetched_at[user_id] = time.monotonic()
        for attempt in range(2):
            session = await self.session_for(user_id)
            if session is None:
                return
            try:
                answer = await self.ctx.http.get(f"{self.endpoint}{self.status_route}", headers=self._headers(session))
            except TRANSIENT as exc:
                self.last_error = f"player status: {type(exc).__name__}"
                return
            if answer.status_code == 401 and attempt == 0:
                await self.refresh(user_id)
                continue
            break
        data = json_object(answer)
        config = data.get(self.status_config_field) if self.status_config_field else data
        if answer.status_code != 200 or not isinstance(config, dict):
            self.last_error = (f"player status answered {answer.status_code} without a player config "
                               f"({self.status_config_field or 'the answer itself'})")
            self.ctx.log.warning("%s: %s (request %s)", self.name, self.last_error, request_id(answer))
            return
        self._publish(user_id, config)

    def _publish(self, user_id: str, config: dict[str, Any]) -> None:
        self.configs[user_id] = config
        session = self.sessions.get(user_id) or {}
        values = effective_config(config, self._now())
        for topic in self.topics.get(user_id, ()):
            self.ctx.publish(topic, values, "gameramp", {"playerConfig": config, "userId": session.get("userId")})

    async def tick(self) -> None:
        """Keep every recent player's tokens fresh and its config current; expire entries as time passes."""
        topics: dict[str, set[str]] = {}
        for device_id, user_id, own in self.ctx.store.state.active_players(time.time() - ACTIVE_PLAYER_S):
            topics.setdefault(user_id, set()).add(player_topic(device_id, user_id, own))
        self.topics = topics
        for user_id in topics:
            if time.monotonic() - self.fetched_at.get(user_id, -1e9) >= self.status_refresh_s:
                await self.fetch_status(user_id)
            elif user_id in self.configs:
                self._publish(user_id, self.configs[user_id])  # unchanged values publish nothing

    # --- events ---------------------------------------------------------------------------------

    async def send(self, batch: list[StoredEvent]) -> Outcome:
        outcome = Outcome()
        by_player: dict[str, list[tuple[StoredEvent, dict[str, Any]]]] = {}
        for ev in batch:
            if ev.category == SESSION_START:
                self.fetched_at.pop(ev.user_id, None)  # a new session: the next tick asks for the player's config
                outcome.delivered.add(ev.pk)
                continue
            try:
                by_player.setdefault(ev.user_id, []).append((ev, self._event(ev)))
            except (ValueError, OverflowError):
                outcome.dead.append((ev.pk, "invalid", f"ts {ev.client_ts} is beyond what ISO 8601 writes"))
        for user_id, items in by_player.items():
            session = await self.session_for(user_id)
            if session is None:
                outcome.error = self.last_error or "GameRamp login failed"
                break
            await self._forward(user_id, session, items, outcome)
        return outcome

    def _event(self, ev: StoredEvent) -> dict[str, Any]:
        """One event in the configured layout (default: the fact sheet's `{eventType, timestamp, payload,
        metadata}`)."""
        names = self.event_fields
        return {names["type"]: ev.category, names["timestamp"]: event_timestamp(ev.client_ts),
                names["payload"]: ev.fields,
                names["metadata"]: {"eventId": ev.uid, "sessionId": ev.session_id, "build": ev.game_build}}

    async def _forward(self, user_id: str, session: dict[str, Any], items: list[tuple[StoredEvent, dict[str, Any]]],
                       outcome: Outcome) -> None:
        """POST one player's events; a body over GameRamp's limit is split, an event too large alone dead."""
        evs = [ev for ev, _ in items]
        events = [item for _, item in items]
        body = json_text({self.events_envelope: events} if self.events_envelope else events).encode()
        if len(body) > self.max_body_bytes and len(items) > 1:
            await self._halves(user_id, session, items, outcome)
            return
        try:
            answer = await self.ctx.http.post(f"{self.endpoint}{self.events_route}", content=body,
                                              headers={**self._headers(session), "Content-Type": "application/json"})
        except TRANSIENT as exc:
            outcome.error = f"{type(exc).__name__} talking to GameRamp"
            return
        status = answer.status_code
        if status in (200, 201, 202, 204):
            outcome.delivered.update(ev.pk for ev in evs)
        elif status == 413 and len(items) > 1:
            await self._halves(user_id, session, items, outcome)
        elif status == 413:
            outcome.dead.append((evs[0].pk, "too_large", "the event alone is over GameRamp's body limit (413)"))
        elif status == 401:
            await self.refresh(user_id)
            outcome.error = "401 from the events route: tokens refreshed, retrying"
        elif status in (400, 422):
            reason = f"GameRamp refused the events ({status}): {answer.text[:300]}"
            outcome.dead.extend((ev.pk, "rejected", reason) for ev in evs)
        else:
            outcome.error = f"HTTP {status} from the events route"

    async def _halves(self, user_id: str, session: dict[str, Any], items: list[tuple[StoredEvent, dict[str, Any]]],
                      outcome: Outcome) -> None:
        half = len(items) // 2
        await self._forward(user_id, session, items[:half], outcome)
        await self._forward(user_id, session, items[half:], outcome)

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"players": len(self.sessions), "logins": self.logins, "refreshes": self.refreshes,
                                   "login_failures": self.failures, "clock_offset_s": round(self.clock_offset_s)}
        if self.last_error:
            figures["provider_error"] = self.last_error
        return figures
