"""The GameAnalytics provider's settings (bridge.example.toml documents each)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..settings import LaneSettings, SettingsError

# A game's own lists, checked as the SDKs check them when a game configures them
# (GAValidator::validateCustomDimensions, validateResourceCurrencies, validateResourceItemTypes in
# gameanalytics-sdk-cpp): up to 20 values each; a dimension value up to 32 characters, a currency letters only
# (up to 64), an item type an event-id part up to 32.
MAX_LIST_VALUES = 20
LIST_VALUES = {
    "custom_dimensions_01": (re.compile(r".{1,32}", re.S), "1 to 32 characters"),
    "custom_dimensions_02": (re.compile(r".{1,32}", re.S), "1 to 32 characters"),
    "custom_dimensions_03": (re.compile(r".{1,32}", re.S), "1 to 32 characters"),
    "resource_currencies": (re.compile(r"[A-Za-z]{1,64}"), "1 to 64 letters A-Z a-z"),
    "resource_item_types": (re.compile(r"[A-Za-z0-9\s\-_.()!?]{1,32}"), "1 to 32 of A-Z a-z 0-9 space - _ . ( ) ! ?"),
}


@dataclass(frozen=True, kw_only=True)
class GameAnalyticsSettings(LaneSettings):
    endpoint: str = "https://api.gameanalytics.com"
    game_key: str
    secret_key: str = field(repr=False)
    remote_configs: bool = True  # ask for remote configs (published on config/gameanalytics)
    remote_configs_refresh: float = 300.0  # s between asks (also at every new session)
    remote_configs_interval_seconds: int = 0
    # The values an event may carry in custom_01..03, and the currencies and item types of resource events
    # (the SDKs' configureAvailableCustomDimensions01..03, configureAvailableResourceCurrencies and
    # configureAvailableResourceItemTypes). An empty list checks nothing.
    custom_dimensions_01: tuple[str, ...] = ()
    custom_dimensions_02: tuple[str, ...] = ()
    custom_dimensions_03: tuple[str, ...] = ()
    resource_currencies: tuple[str, ...] = ()
    resource_item_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, (pattern, rule) in LIST_VALUES.items():
            values: tuple[str, ...] = getattr(self, name)
            if len(values) > MAX_LIST_VALUES:
                raise SettingsError(f"{name}: at most {MAX_LIST_VALUES} values, as the SDKs take")
            for value in values:
                if not pattern.fullmatch(value):
                    raise SettingsError(f"{name}: {value!r} must be {rule}")
