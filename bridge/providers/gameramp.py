"""The GameRamp provider: signed login per device, tokens kept fresh, player configs published to the device.

Login signs `apiKey|deviceId|timestamp` (HMAC-SHA256 with the API secret, base64). Tokens are kept in the
store (a restarted daemon does not log in again), refreshed before `expiresIn` runs out, refreshed on a 401
and replaced by a new login when the refresh fails. A 400 for the time window teaches the provider the
server's clock from the answer's `Date` header, and the login is retried once with a corrected timestamp.
Player configs (from login and `/v1/player/status`) go to `config/gameramp/<device_id>`, with each status
entry past its `expiredAt` replaced by its `defaultValue`. Events are forwarded only to a route the operator
configures, since GameRamp's documents name none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ..outbox import StoredEvent
from ..protocol import CONFIG_PREFIX, SESSION_START
from .base import Outcome, Provider, ProviderContext
from .http import TRANSIENT, json_object, json_text, request_id

DEFAULT_ENDPOINT = "https://api.gameramp.com"
TIME_WINDOW_ERROR = "Request timestamp is outside the acceptable time window"
REFRESH_AHEAD = 0.2  # refresh when a fifth of the token's life is left
DEFAULT_STATUS_REFRESH_S = 300.0
ACTIVE_DEVICE_S = 24 * 3600.0
TOPIC_PREFIX = CONFIG_PREFIX + "gameramp/"


def login_timestamp(epoch_s: float) -> str:
    """`YYYY-MM-DDThh:mm:ssZ`: UTC, whole seconds, a literal Z."""
    return datetime.fromtimestamp(int(epoch_s), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        self.events_route = s.get("events_route")  # e.g. "/v1/events"; None: events are not forwarded
        self.clock_offset_s = float(ctx.outbox.state(self.name, "clock_offset") or 0)
        self.sessions: dict[str, dict[str, Any]] = {}  # device_id -> tokens and ids
        self.configs: dict[str, dict[str, Any]] = {}  # device_id -> raw playerConfig
        self.fetched_at: dict[str, float] = {}
        self.logins = self.refreshes = self.failures = 0
        self.last_error: str | None = None

    def accepts(self, event: StoredEvent) -> bool:
        """Session starts (they refresh the player's config); other events only to a configured route."""
        return event.category == SESSION_START or (self.events_route is not None and super().accepts(event))

    # --- tokens ---------------------------------------------------------------------------------

    def _now(self) -> float:
        return time.time() + self.clock_offset_s

    async def login(self, device_id: str, corrected: bool = False) -> dict[str, Any] | None:
        timestamp = login_timestamp(self._now())
        body = {"apiKey": self.api_key, "deviceId": device_id, "timestamp": timestamp,
                "signature": login_signature(self.api_key, device_id, timestamp, self.api_secret)}
        try:
            answer = await self.ctx.http.post(f"{self.endpoint}/auth/login", json=body)
        except TRANSIENT as exc:
            self.last_error = f"login: {type(exc).__name__}"
            return None
        data = json_object(answer)
        if answer.status_code == 400 and data.get("error") == TIME_WINDOW_ERROR and not corrected:
            self._learn_clock(answer)
            return await self.login(device_id, corrected=True)
        if answer.status_code != 200 or not isinstance(data.get("accessToken"), str):
            self.failures += 1
            self.last_error = f"login answered {answer.status_code}: {data.get('error', answer.text[:200])}"
            self.ctx.log.error("%s: %s (request %s)", self.name, self.last_error, request_id(answer))
            return None
        self.logins += 1
        return self._keep(device_id, data)

    async def refresh(self, device_id: str) -> dict[str, Any] | None:
        """New tokens from the refresh token; a new login when that is refused."""
        session = self.sessions.get(device_id)
        if session is None:
            return await self.login(device_id)
        try:
            answer = await self.ctx.http.post(f"{self.endpoint}/auth/refresh",
                                              json={"refreshToken": session["refreshToken"]})
        except TRANSIENT as exc:
            self.last_error = f"refresh: {type(exc).__name__}"
            return None
        data = json_object(answer)
        if answer.status_code != 200 or not isinstance(data.get("accessToken"), str):
            self.ctx.log.info("%s: refresh for %s answered %d: logging in again", self.name, device_id,
                              answer.status_code)
            return await self.login(device_id)
        self.refreshes += 1
        return self._keep(device_id, {**session, **data})

    def _keep(self, device_id: str, data: dict[str, Any]) -> dict[str, Any]:
        expires_in = float(data.get("expiresIn") or 3600)
        session = {k: data.get(k) for k in ("accessToken", "refreshToken", "userId", "gameId", "tenantId")}
        session["expiresAt"] = time.time() + expires_in
        session["refreshAt"] = time.time() + expires_in * (1 - REFRESH_AHEAD)
        self.sessions[device_id] = session
        self.ctx.outbox.set_state(self.name, f"device:{device_id}", session)
        if isinstance(data.get("playerConfig"), dict):
            self._publish(device_id, data["playerConfig"])
        return session

    def _learn_clock(self, answer: httpx.Response) -> None:
        try:
            server = parsedate_to_datetime(answer.headers["Date"]).timestamp()
        except (KeyError, TypeError, ValueError):
            return
        self.clock_offset_s = server - time.time()
        self.ctx.outbox.set_state(self.name, "clock_offset", self.clock_offset_s)
        self.ctx.log.warning("%s: our clock is %+.0f s off GameRamp's; correcting", self.name, -self.clock_offset_s)

    async def session_for(self, device_id: str) -> dict[str, Any] | None:
        """Valid tokens for a device: kept, refreshed ahead of expiry, or a new login."""
        session = self.sessions.get(device_id)
        if session is None:
            stored = self.ctx.outbox.state(self.name, f"device:{device_id}")
            if stored:
                self.sessions[device_id] = session = stored
        if session is None:
            return await self.login(device_id)
        if time.time() >= session["refreshAt"]:
            return await self.refresh(device_id)
        return session

    # --- player configs -------------------------------------------------------------------------

    async def fetch_status(self, device_id: str) -> None:
        """GET /v1/player/status; a 401 refreshes the tokens (or logs in) and asks once more."""
        self.fetched_at[device_id] = time.monotonic()
        for attempt in range(2):
            session = await self.session_for(device_id)
            if session is None:
                return
            try:
                answer = await self.ctx.http.get(f"{self.endpoint}/v1/player/status", headers={
                    "Authorization": f"Bearer {session['accessToken']}", "X-Tenant-ID": str(session["tenantId"]),
                    "X-Game-Id": str(session["gameId"])})
            except TRANSIENT as exc:
                self.last_error = f"player status: {type(exc).__name__}"
                return
            if answer.status_code == 401 and attempt == 0:
                await self.refresh(device_id)
                continue
            break
        data = json_object(answer)
        config = data.get("playerConfig")
        if answer.status_code != 200 or not isinstance(config, dict):
            self.last_error = f"player status answered {answer.status_code} without a playerConfig"
            self.ctx.log.warning("%s: %s (request %s)", self.name, self.last_error, request_id(answer))
            return
        self._publish(device_id, config)

    def _publish(self, device_id: str, config: dict[str, Any]) -> None:
        self.configs[device_id] = config
        session = self.sessions.get(device_id) or {}
        self.ctx.publish(TOPIC_PREFIX + device_id, effective_config(config, self._now()), "gameramp",
                         {"playerConfig": config, "userId": session.get("userId")})

    async def tick(self) -> None:
        """Keep every recent device's tokens fresh and its config current; expire entries as time passes."""
        for device_id in self.ctx.outbox.active_devices(time.time() - ACTIVE_DEVICE_S):
            due = time.monotonic() - self.fetched_at.get(device_id, -1e9) >= self.status_refresh_s
            if due:
                await self.fetch_status(device_id)
            elif device_id in self.configs:
                self._publish(device_id, self.configs[device_id])  # unchanged values publish nothing

    # --- events ---------------------------------------------------------------------------------

    async def send(self, batch: list[StoredEvent]) -> Outcome:
        outcome = Outcome()
        for ev in batch:
            if ev.category == SESSION_START:
                await self.fetch_status(ev.device_id)  # a new session: the player's config may have changed
                outcome.delivered.add(ev.pk)
        events = [ev for ev in batch if ev.category != SESSION_START]
        by_device: dict[str, list[StoredEvent]] = {}
        for ev in events:
            by_device.setdefault(ev.device_id, []).append(ev)
        for device_id, evs in by_device.items():
            await self._forward(device_id, evs, outcome)
        return outcome

    async def _forward(self, device_id: str, evs: list[StoredEvent], outcome: Outcome) -> None:
        session = await self.session_for(device_id)
        if session is None:
            outcome.error = self.last_error or "GameRamp login failed"
            return
        body = [{"eventType": ev.category, "timestamp": login_timestamp(ev.client_ts / 1000),
                 "payload": ev.fields, "metadata": {"eventId": ev.uid, "sessionId": ev.session_id,
                                                    "build": ev.game_build}} for ev in evs]
        try:
            answer = await self.ctx.http.post(f"{self.endpoint}{self.events_route}", content=json_text(body).encode(),
                                              headers={"Authorization": f"Bearer {session['accessToken']}",
                                                       "X-Tenant-ID": str(session["tenantId"]),
                                                       "X-Game-Id": str(session["gameId"]),
                                                       "Content-Type": "application/json"})
        except TRANSIENT as exc:
            outcome.error = f"{type(exc).__name__} talking to GameRamp"
            return
        if answer.status_code in (200, 201, 202, 204):
            outcome.delivered.update(ev.pk for ev in evs)
        elif answer.status_code == 401:
            await self.refresh(device_id)
            outcome.error = "401 from the events route: tokens refreshed, retrying"
        elif answer.status_code in (400, 422):
            reason = f"GameRamp refused the events ({answer.status_code}): {answer.text[:300]}"
            outcome.dead.extend((ev.pk, "rejected", reason) for ev in evs)
        else:
            outcome.error = f"HTTP {answer.status_code} from the events route"

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"devices": len(self.sessions), "logins": self.logins, "refreshes": self.refreshes,
                                   "login_failures": self.failures, "clock_offset_s": round(self.clock_offset_s)}
        if self.last_error:
            figures["provider_error"] = self.last_error
        return figures
