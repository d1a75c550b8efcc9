"""The GameRamp provider: signed login per player, tokens kept fresh, player configs published to each player.

Each player (a user: on a dedicated server, every player it names) logs in on its own, with its user id as
GameRamp's `deviceId`. Login signs `apiKey|deviceId|timestamp` (HMAC-SHA256 with the API secret, base64).
Tokens are kept in the store (a restarted daemon does not log in again; on a fleet's shared store, read from
it under a fleet-wide lock per player, so one daemon logs a player in and the others use its tokens),
refreshed before `expiresIn` runs out, refreshed on a 401 and replaced by a new login when the refresh
fails; a login answer without the tenant and game ids its calls need is refused as malformed and tried again
later. A 400 for the time window teaches the provider the server's clock from the answer's `Date` header, and
the login is retried once with a corrected timestamp.

Player configs (from login and the status route) go to the player's topic: `config/gameramp/<device_id>`
for a device's own player, `config/gameramp/<device_id>/<user_id>` for another player a device names (a
dedicated server's), with each status entry past its `expiredAt` replaced by its `defaultValue`. Events are
forwarded only to a route the operator configures. GameRamp's document shows neither the status answer nor
any events route: where the status answer holds the config, the events route and the events body's layout
are settings, their defaults the shape the fact sheet assumes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ..store import Erasure, StoredEvent
from ..protocol import CONFIG_PREFIX, SESSION_START
from .base import Built, Call, Erased, Outcome, Provider, ProviderContext, TryLater
from .http import json_object, json_text, request_id
from .settings import LaneSettings, SettingsError

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


@dataclass(frozen=True, kw_only=True)
class GameRampSettings(LaneSettings):
    endpoint: str = DEFAULT_ENDPOINT
    api_key: str
    api_secret: str = field(repr=False)
    refresh: float = DEFAULT_STATUS_REFRESH_S  # s between player status fetches
    status_route: str = DEFAULT_STATUS_ROUTE
    status_config_field: str = DEFAULT_STATUS_CONFIG_FIELD
    events_route: str | None = None  # e.g. "/v1/events"; None: events are not forwarded
    events_envelope: str = DEFAULT_EVENTS_ENVELOPE
    event_fields: dict[str, str] = field(default_factory=dict)  # renames of DEFAULT_EVENT_FIELDS' names
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.event_fields) - set(DEFAULT_EVENT_FIELDS))
        if unknown:
            raise SettingsError(f"event_fields: no field {', '.join(unknown)}; the fields are "
                                f"{', '.join(DEFAULT_EVENT_FIELDS)}")


class GameRamp(Provider):
    kind = "gameramp"
    Settings = GameRampSettings
    categories = frozenset({"design", "business", "progression", "resource", "error", "ads", "custom"})

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        settings: GameRampSettings = ctx.settings
        self.endpoint = settings.endpoint.rstrip("/")
        self.api_key = settings.api_key
        self.api_secret = settings.api_secret
        self.status_refresh_s = settings.refresh
        self.status_route = settings.status_route
        self.status_config_field = settings.status_config_field
        self.events_route = settings.events_route
        self.events_envelope = settings.events_envelope
        self.event_fields = {**DEFAULT_EVENT_FIELDS, **settings.event_fields}
        self.max_body_bytes = settings.max_body_bytes
        self.clock_offset_s = 0.0  # the server's clock minus ours, kept in the store (read at start)
        self.sessions: dict[str, dict[str, Any]] = {}  # user_id -> tokens and ids
        self.configs: dict[str, dict[str, Any]] = {}  # user_id -> raw playerConfig
        self.topics: dict[str, set[str]] = {}  # user_id -> the topics its config goes to
        self.fetched_at: dict[str, float] = {}
        self.starting: set[str] = set()  # players whose new session wants their config now, fetched or not
        self.logins = self.refreshes = self.failures = 0
        self.last_error: str | None = None

    async def start(self) -> None:
        self.clock_offset_s = float(await self.ctx.store.get("clock_offset") or 0)

    def accepts(self, event: StoredEvent) -> bool:
        """Session starts (they refresh the player's config); other events only to a configured route."""
        return event.category == SESSION_START or (self.events_route is not None and super().accepts(event))

    # --- tokens (sent by the _Bearer flow) ----------------------------------------------------------

    def _now(self) -> float:
        return self.ctx.clock.time() + self.clock_offset_s

    def login_request(self, user_id: str) -> httpx.Request:
        timestamp = login_timestamp(self._now())
        return httpx.Request("POST", f"{self.endpoint}/auth/login", json={
            "apiKey": self.api_key, "deviceId": user_id, "timestamp": timestamp,
            "signature": login_signature(self.api_key, user_id, timestamp, self.api_secret)})

    def refresh_request(self, session: dict[str, Any]) -> httpx.Request:
        return httpx.Request("POST", f"{self.endpoint}/auth/refresh", json={"refreshToken": session["refreshToken"]})

    async def clock_refused(self, answer: httpx.Response) -> bool:
        """A login refused for its time window: learn the server's clock from the answer's Date header."""
        if answer.status_code != 400 or json_object(answer).get("error") != TIME_WINDOW_ERROR:
            return False
        try:
            server = parsedate_to_datetime(answer.headers["Date"]).timestamp()
        except (KeyError, TypeError, ValueError):
            return False
        self.clock_offset_s = server - self.ctx.clock.time()
        await self.ctx.store.set("clock_offset", self.clock_offset_s)
        self.ctx.log.warning("%s: our clock is %+.0f s off GameRamp's; correcting", self.name, -self.clock_offset_s)
        return True

    async def logged_in(self, user_id: str, answer: httpx.Response) -> dict[str, Any]:
        """The player's tokens from a login answer; TryLater when it has none."""
        data = json_object(answer)
        if answer.status_code != 200 or not isinstance(data.get("accessToken"), str):
            raise self._failed(f"login answered {answer.status_code}: {data.get('error', answer.text[:200])}", answer)
        self.logins += 1
        return await self._keep(user_id, data, answer)

    async def refreshed(self, user_id: str, session: dict[str, Any], answer: httpx.Response) -> dict[str, Any] | None:
        """The player's tokens from a refresh answer; None when it was refused (a new login follows)."""
        data = json_object(answer)
        if answer.status_code != 200 or not isinstance(data.get("accessToken"), str):
            self.ctx.log.info("%s: refresh for %s answered %d: logging in again", self.name, user_id,
                              answer.status_code)
            return None
        self.refreshes += 1
        return await self._keep(user_id, {**session, **data}, answer)

    def _failed(self, error: str, answer: httpx.Response) -> TryLater:
        self.failures += 1
        self.last_error = error
        self.ctx.log.error("%s: %s (request %s)", self.name, error, request_id(answer))
        return TryLater(error)

    async def _keep(self, user_id: str, data: dict[str, Any], answer: httpx.Response) -> dict[str, Any]:
        """Keep a login or refresh answer's tokens; one without the ids every call names is malformed."""
        missing = [k for k in ("refreshToken", "tenantId", "gameId") if not (isinstance(data.get(k), str) and data[k])]
        if missing:
            raise self._failed(f"login answer without {', '.join(missing)}: refused as malformed, logging in "
                               "again later", answer)
        expires_in = float(data.get("expiresIn") or 3600)
        session = {k: data.get(k) for k in ("accessToken", "refreshToken", "userId", "gameId", "tenantId")}
        session["expiresAt"] = self.ctx.clock.time() + expires_in
        session["refreshAt"] = self.ctx.clock.time() + expires_in * (1 - REFRESH_AHEAD)
        self.sessions[user_id] = session
        await self.ctx.store.set(f"player:{user_id}", session)
        if isinstance(data.get("playerConfig"), dict):
            await self._received(user_id, data["playerConfig"])
        return session

    async def session(self, user_id: str) -> dict[str, Any] | None:
        """The player's kept tokens, fresh or not: from memory, else from the store; on a shared store always
        from the store, where another daemon may have refreshed them or logged the player in."""
        session = None if self.ctx.store.shared else self.sessions.get(user_id)
        if session is None:
            stored = await self.ctx.store.get(f"player:{user_id}")
            if stored:
                self.sessions[user_id] = session = stored
        return session

    # --- player configs -------------------------------------------------------------------------

    async def fetch_status(self, user_id: str) -> None:
        """GET the status route (the bearer flow refreshes or logs in on a 401 and asks once more)."""
        self.fetched_at[user_id] = self.ctx.clock.monotonic()
        request = httpx.Request("GET", f"{self.endpoint}{self.status_route}")
        try:
            answer = await self.ctx.send(request, _Bearer(self, user_id))
        except TryLater as exc:  # asked again at the next refresh
            self.last_error = f"player status: {exc}"
            return
        data = json_object(answer)
        config = data.get(self.status_config_field) if self.status_config_field else data
        if answer.status_code != 200 or not isinstance(config, dict):
            self.last_error = (f"player status answered {answer.status_code} without a player config "
                               f"({self.status_config_field or 'the answer itself'})")
            self.ctx.log.warning("%s: %s (request %s)", self.name, self.last_error, request_id(answer))
            return
        await self._received(user_id, config)

    async def _received(self, user_id: str, config: dict[str, Any]) -> None:
        """A player config GameRamp answered: published; on a shared store kept there too, for the daemons that
        did not fetch it this time."""
        if self.ctx.store.shared:
            await self.ctx.store.set(f"config:{user_id}", config)
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
        for device_id, user_id, own in await self.ctx.store.active_players(self.ctx.clock.time() - ACTIVE_PLAYER_S):
            topics.setdefault(user_id, set()).add(player_topic(device_id, user_id, own))
        self.topics = topics
        due = {user_id for user_id in topics
               if self.ctx.clock.monotonic() - self.fetched_at.get(user_id, -1e9) >= self.status_refresh_s}
        if self.ctx.store.shared and due:
            due = await self._taken(due)
        for user_id in topics:
            if user_id in due:
                await self.fetch_status(user_id)
            elif user_id in self.configs:
                self._publish(user_id, self.configs[user_id])  # unchanged values publish nothing

    async def _taken(self, due: set[str]) -> set[str]:
        """The due players whose status this daemon fetches (its turn taken in the store: one daemon of a fleet
        per refresh, each new session's at once); the others' configs as the daemon that fetched them stored
        them (its answer, by the next refresh at the latest)."""
        now = self.ctx.clock.time()
        starting = due & self.starting
        self.starting -= starting
        taken = {key.removeprefix("status_asked:") for key in [
            *await self.ctx.store.take_due([f"status_asked:{u}" for u in starting], now, 0.0),
            *await self.ctx.store.take_due([f"status_asked:{u}" for u in due - starting], now,
                                           self.status_refresh_s)]}
        elsewhere = sorted(due - taken)
        saved = await self.ctx.store.get_many([f"config:{user_id}" for user_id in elsewhere])
        for user_id in elsewhere:
            self.fetched_at[user_id] = self.ctx.clock.monotonic()
            if isinstance(saved.get(f"config:{user_id}"), dict):
                self.configs[user_id] = saved[f"config:{user_id}"]
        return due & taken

    # --- events ---------------------------------------------------------------------------------

    async def build(self, batch: list[StoredEvent]) -> Built:
        """One request per player (a body over GameRamp's limit split); session starts only refresh configs."""
        built = Built()
        by_player: dict[str, list[tuple[StoredEvent, dict[str, Any]]]] = {}
        for ev in batch:
            if ev.category == SESSION_START:
                self.fetched_at.pop(ev.user_id, None)  # a new session: the next tick asks for the player's config
                if self.ctx.store.shared:
                    self.starting.add(ev.user_id)
                built.settled.delivered.add(ev.pk)
                continue
            try:
                by_player.setdefault(ev.user_id, []).append((ev, self._event(ev)))
            except (ValueError, OverflowError):
                built.settled.dead.append((ev.pk, "invalid", f"ts {ev.client_ts} is beyond what ISO 8601 writes"))
        for user_id, items in by_player.items():
            built.calls.extend(self._calls(user_id, items))
        return built

    def _event(self, ev: StoredEvent) -> dict[str, Any]:
        """One event in the configured layout (default: the fact sheet's `{eventType, timestamp, payload,
        metadata}`)."""
        names = self.event_fields
        return {names["type"]: ev.category, names["timestamp"]: event_timestamp(ev.client_ts),
                names["payload"]: ev.fields,
                names["metadata"]: {"eventId": ev.uid, "sessionId": ev.session_id, "build": ev.game_build}}

    def _calls(self, user_id: str, items: list[tuple[StoredEvent, dict[str, Any]]]) -> list[Call]:
        events = [item for _, item in items]
        body = json_text({self.events_envelope: events} if self.events_envelope else events).encode()
        if len(body) > self.max_body_bytes and len(items) > 1:
            return self._halves(user_id, items)
        request = httpx.Request("POST", f"{self.endpoint}{self.events_route}", content=body,
                                headers={"Content-Type": "application/json"})
        return [Call(request, key=user_id, auth=_Bearer(self, user_id), context=(user_id, items))]

    def _halves(self, user_id: str, items: list[tuple[StoredEvent, dict[str, Any]]]) -> list[Call]:
        half = len(items) // 2
        return self._calls(user_id, items[:half]) + self._calls(user_id, items[half:])

    def classify(self, call: Call, answer: httpx.Response) -> Outcome:
        user_id, items = call.context
        evs = [ev for ev, _ in items]
        outcome = Outcome()
        status = answer.status_code
        if status in (200, 201, 202, 204):
            outcome.delivered.update(ev.pk for ev in evs)
        elif status == 413 and len(items) > 1:
            outcome.then = self._halves(user_id, items)
        elif status == 413:
            outcome.dead.append((evs[0].pk, "too_large", "the event alone is over GameRamp's body limit (413)"))
        elif status in (400, 422):
            reason = f"GameRamp refused the events ({status}): {answer.text[:300]}"
            outcome.dead.extend((ev.pk, "rejected", reason) for ev in evs)
        else:
            outcome.error = f"HTTP {status} from the events route"
        return outcome

    def player_keys(self, user_id: str) -> list[str]:
        return [f"player:{user_id}", f"config:{user_id}", f"status_asked:{user_id}"]

    async def erase(self, erasure: Erasure) -> Erased:
        """GameRamp's documents describe no deletion API: a manual request naming the player as GameRamp knows
        them (its `userId`, from the login), after their tokens and config are dropped here."""
        user_id = erasure.user_id
        session = await self.session(user_id) or {}
        for kept in (self.sessions, self.configs, self.topics, self.fetched_at):
            kept.pop(user_id, None)
        self.starting.discard(user_id)
        ids = {"deviceId": user_id, "userId": session.get("userId"), "tenantId": session.get("tenantId"),
               "gameId": session.get("gameId")}
        return Erased("manual", {k: v for k, v in ids.items() if v is not None},
                      f"GameRamp documents no deletion API: ask GameRamp to erase userId {session.get('userId')!r} "
                      f"(deviceId {user_id!r})")

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"players": len(self.sessions), "logins": self.logins, "refreshes": self.refreshes,
                                   "login_failures": self.failures, "clock_offset_s": round(self.clock_offset_s)}
        if self.last_error:
            figures["provider_error"] = self.last_error
        return figures


class _Bearer(httpx.Auth):
    """GameRamp's bearer tokens on a call: kept, refreshed ahead of expiry, or a new login, one at a time per
    player (the timer and the events lane may both need them; on a fleet, every daemon that sees the player: the
    store's critical section, in which the tokens are read from the store, so one daemon logs in and the others
    use its tokens). A 401 refreshes (unless the store holds newer tokens already) and the call goes once more."""

    def __init__(self, gameramp: GameRamp, user_id: str) -> None:
        self.gameramp = gameramp
        self.user_id = user_id

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        gr, user_id = self.gameramp, self.user_id
        refused: str | None = None  # the access token a 401 refused
        for _ in range(2):
            async with gr.ctx.store.exclusive(f"player:{user_id}"):
                session = await gr.session(user_id)
                if session is not None and (gr.ctx.clock.time() >= session["refreshAt"]
                                            or session["accessToken"] == refused):
                    answer = yield gr.refresh_request(session)
                    await answer.aread()  # a flow of our own reads the answers it uses
                    session = await gr.refreshed(user_id, session, answer)
                if session is None:
                    answer = yield gr.login_request(user_id)
                    await answer.aread()
                    if await gr.clock_refused(answer):  # learnt the server's clock: once more, on time
                        answer = yield gr.login_request(user_id)
                        await answer.aread()
                    session = await gr.logged_in(user_id, answer)
            request.headers.update({"Authorization": f"Bearer {session['accessToken']}",
                                    "X-Tenant-ID": session["tenantId"], "X-Game-Id": session["gameId"]})
            answer = yield request
            if answer.status_code != 401:
                return
            refused = session["accessToken"]
