"""The GameAnalytics provider's settings (bridge.example.toml documents each)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..settings import LaneSettings


@dataclass(frozen=True, kw_only=True)
class GameAnalyticsSettings(LaneSettings):
    endpoint: str = "https://api.gameanalytics.com"
    game_key: str
    secret_key: str = field(repr=False)
    remote_configs: bool = True  # ask for remote configs (published on config/gameanalytics)
    remote_configs_refresh: float = 300.0  # s between asks (also at every new session)
    remote_configs_interval_seconds: int = 0
