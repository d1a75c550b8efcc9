"""GameAnalytics remote configs: asked at start, per new session and on a timer; published on change.

A 201 replaces the configs (and the A/B ids), a 200 keeps them. The configs hash is kept in the store so a
restarted daemon does not download unchanged configs again; the values themselves live in the publisher's
persisted topic `config/gameanalytics`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from ..base import ProviderContext, TryLater
from ..http import json_object, request_id
from .events import SDK_VERSION
from .settings import GameAnalyticsSettings
from .signing import encode_body


class Post(Protocol):
    """The provider's signed POST to the collector."""

    def __call__(self, path: str, body: bytes, params: dict[str, Any] | None = None) -> Awaitable[httpx.Response]: ...


TOPIC = "config/gameanalytics"
CONFIG_VSN_SUPPORTED = 3


class RemoteConfigs:
    def __init__(self, ctx: ProviderContext, post: Post, settings: GameAnalyticsSettings, defaults: dict[str, str],
                 server_now: Callable[[], int], on_server_ts: Callable[[int], None]) -> None:
        self.ctx = ctx
        self.name = ctx.name
        self.post = post
        self.game_key = settings.game_key
        self.refresh_s = settings.remote_configs_refresh
        self.interval_seconds = settings.remote_configs_interval_seconds
        self.defaults = defaults
        self.server_now = server_now
        self.on_server_ts = on_server_ts
        self.configs_hash: str | None = None
        self.ab_id: str | None = None
        self.ab_variant_id: str | None = None
        self.configs: list[dict[str, Any]] = []
        self.last_refresh = 0.0
        self.last_status: int | None = None
        self._loaded = False

    async def _load(self) -> None:
        """The configs kept in the store, once: a restarted daemon does not download unchanged configs again."""
        if self._loaded:
            return
        saved = await self.ctx.store.get("remote_configs") or {}
        self.configs_hash = saved.get("configs_hash")
        self.ab_id = saved.get("ab_id")
        self.ab_variant_id = saved.get("ab_variant_id")
        self.configs = saved.get("configs") or []
        self._loaded = True

    async def tick(self) -> None:
        if self.ctx.clock.monotonic() - self.last_refresh >= self.refresh_s:
            await self.refresh()
        elif self.configs_hash is not None:
            self._publish()  # a config whose start_ts or end_ts just passed changes the live values

    async def refresh(self) -> None:
        """Ask for the configs of the user who played last; publish them when the answer is new."""
        self.last_refresh = self.ctx.clock.monotonic()
        await self._load()
        device = await self.ctx.store.latest_device()
        if device is None:
            return  # nobody has played yet: configs are per user
        defaults = self.defaults
        body = encode_body({"user_id": device["user_id"], "platform": device["platform"] or defaults["platform"],
                            "os_version": device["os_version"] or defaults["os_version"],
                            "sdk_version": SDK_VERSION, "build": device["game_build"],
                            "random_salt": secrets.randbelow(2**31)})
        params: dict[str, Any] = {"game_key": self.game_key, "interval_seconds": self.interval_seconds,
                                  "config_vsn_supported": CONFIG_VSN_SUPPORTED}
        if self.configs_hash:
            params["configs_hash"] = self.configs_hash
        try:
            answer = await self.post("/remote_configs/v1/init", body, params=params)
        except TryLater as exc:  # the configs are asked again at the next session or refresh
            self.ctx.log.warning("%s: remote configs: %s", self.name, exc)
            return
        self.last_status = answer.status_code
        data = json_object(answer) if answer.status_code in (200, 201) else {}
        server_ts = data.get("server_ts")
        if type(server_ts) is int and server_ts > 0:
            # Current SDKs ask only this init and take their clock offset from it (GAState::startNewSession
            # in gameanalytics-sdk-cpp, State.lua in GA-SDK-ROBLOX): "always returned", 200 or 201.
            self.on_server_ts(server_ts)
        if answer.status_code == 201:
            if "configs" not in data:
                self.ctx.log.error("%s: remote configs 201 without configs (request %s)", self.name,
                                   request_id(answer))
                return
            await self._apply(data)
        elif answer.status_code != 200:
            self.ctx.log.warning("%s: remote configs answered %d", self.name, answer.status_code)

    async def _apply(self, data: dict[str, Any]) -> None:
        self.configs = [c for c in data.get("configs") or [] if isinstance(c, dict) and "key" in c]
        self.configs_hash = data.get("configs_hash")
        self.ab_id = data.get("ab_id")
        self.ab_variant_id = data.get("ab_variant_id")
        await self.ctx.store.set("remote_configs", {
            "configs_hash": self.configs_hash, "ab_id": self.ab_id, "ab_variant_id": self.ab_variant_id,
            "configs": self.configs})
        self._publish()

    def _live(self) -> list[dict[str, Any]]:
        """The configs in effect now, by the server's clock."""
        now = self.server_now()
        return [c for c in self.configs if (c.get("start_ts") is None or c["start_ts"] <= now)
                and (c.get("end_ts") is None or now <= c["end_ts"])]

    def tracking(self) -> list[dict[str, Any]]:
        """The configs in effect as the current SDKs tag every event with them (`configurations_v3`: the key,
        id and vsn of each, as the answer gave them; GAState::buildRemoteConfigsJsons in gameanalytics-sdk-cpp)."""
        return [{k: c[k] for k in ("key", "id", "vsn") if c.get(k) is not None} for c in self._live()]

    def _publish(self) -> None:
        """The configs live now (by the server's clock) on the provider's topic, with the A/B ids."""
        values = {str(c["key"]): c.get("value") for c in self._live()}
        meta = {k: v for k, v in (("ab_id", self.ab_id), ("ab_variant_id", self.ab_variant_id),
                                  ("configs_hash", self.configs_hash)) if v is not None}
        self.ctx.publish(TOPIC, values, "gameanalytics", meta)

    def status(self) -> dict[str, Any]:
        return {"configs_hash": self.configs_hash, "ab_id": self.ab_id, "ab_variant_id": self.ab_variant_id,
                "remote_configs_answer": self.last_status}
