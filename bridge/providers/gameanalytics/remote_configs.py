"""GameAnalytics remote configs: asked at start, per new session and on a timer; published on change.

A 201 replaces the configs (and the A/B ids), a 200 keeps them. The configs hash is kept in the store so a
restarted daemon does not download unchanged configs again; the values themselves live in the publisher's
persisted topic `config/gameanalytics`.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from ..http import TRANSIENT, json_object, request_id
from .events import SDK_VERSION
from .signing import encode_body

if TYPE_CHECKING:
    from .provider import GameAnalytics

TOPIC = "config/gameanalytics"
CONFIG_VSN_SUPPORTED = 3
DEFAULT_REFRESH_S = 300.0


class RemoteConfigs:
    def __init__(self, provider: GameAnalytics) -> None:
        self.provider = provider
        self.ctx = provider.ctx
        self.refresh_s = float(self.ctx.settings.get("remote_configs_refresh", DEFAULT_REFRESH_S))
        self.interval_seconds = int(self.ctx.settings.get("remote_configs_interval_seconds", 0))
        saved = self.ctx.store.state.get(provider.name, "remote_configs") or {}
        self.configs_hash: str | None = saved.get("configs_hash")
        self.ab_id: str | None = saved.get("ab_id")
        self.ab_variant_id: str | None = saved.get("ab_variant_id")
        self.configs: list[dict[str, Any]] = saved.get("configs") or []
        self.last_refresh = 0.0
        self.last_status: int | None = None

    async def tick(self) -> None:
        if time.monotonic() - self.last_refresh >= self.refresh_s:
            await self.refresh()
        elif self.configs_hash is not None:
            self._publish()  # a config whose start_ts or end_ts just passed changes the live values

    async def refresh(self) -> None:
        """Ask for the configs of the user who played last; publish them when the answer is new."""
        self.last_refresh = time.monotonic()
        device = self.ctx.store.state.latest_device()
        if device is None:
            return  # nobody has played yet: configs are per user
        defaults = self.provider.defaults
        body = encode_body({"user_id": device["user_id"], "platform": device["platform"] or defaults["platform"],
                            "os_version": device["os_version"] or defaults["os_version"],
                            "sdk_version": SDK_VERSION, "build": device["game_build"],
                            "random_salt": secrets.randbelow(2**31)})
        params: dict[str, Any] = {"game_key": self.provider.game_key, "interval_seconds": self.interval_seconds,
                                  "config_vsn_supported": CONFIG_VSN_SUPPORTED}
        if self.configs_hash:
            params["configs_hash"] = self.configs_hash
        try:
            answer = await self.provider.post("/remote_configs/v1/init", body, params=params)
        except TRANSIENT as exc:
            self.ctx.log.warning("%s: remote configs: %s", self.provider.name, type(exc).__name__)
            return
        self.last_status = answer.status_code
        if answer.status_code == 201:
            data = json_object(answer)
            if "configs" not in data:
                self.ctx.log.error("%s: remote configs 201 without configs (request %s)", self.provider.name,
                                   request_id(answer))
                return
            self._apply(data)
        elif answer.status_code != 200:
            self.ctx.log.warning("%s: remote configs answered %d", self.provider.name, answer.status_code)

    def _apply(self, data: dict[str, Any]) -> None:
        self.configs = [c for c in data.get("configs") or [] if isinstance(c, dict) and "key" in c]
        self.configs_hash = data.get("configs_hash")
        self.ab_id = data.get("ab_id")
        self.ab_variant_id = data.get("ab_variant_id")
        self.ctx.store.state.set(self.provider.name, "remote_configs", {
            "configs_hash": self.configs_hash, "ab_id": self.ab_id, "ab_variant_id": self.ab_variant_id,
            "configs": self.configs})
        self._publish()

    def _publish(self) -> None:
        """The configs live now (by the server's clock) on the provider's topic, with the A/B ids."""
        now = int(time.time()) + self.provider.offset_s
        values = {str(c["key"]): c.get("value") for c in self.configs
                  if (c.get("start_ts") is None or c["start_ts"] <= now)
                  and (c.get("end_ts") is None or now <= c["end_ts"])}
        meta = {k: v for k, v in (("ab_id", self.ab_id), ("ab_variant_id", self.ab_variant_id),
                                  ("configs_hash", self.configs_hash)) if v is not None}
        self.ctx.publish(TOPIC, values, "gameanalytics", meta)

    def status(self) -> dict[str, Any]:
        return {"configs_hash": self.configs_hash, "ab_id": self.ab_id, "ab_variant_id": self.ab_variant_id,
                "remote_configs_answer": self.last_status}
