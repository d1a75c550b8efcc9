"""Typed provider settings: each provider declares a dataclass, and a table is checked against it at start-up.

A misspelt key would otherwise be silently ignored (a `secret_kye` leaves the real secret unset), so an
unknown key, a value of the wrong type and a missing required key stop the daemon with a message naming the
provider, the key and the keys it takes. Every provider's settings extend `LaneSettings`, what the
dispatcher's lane reads for any provider.
"""

from __future__ import annotations

import difflib
import types
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T", bound="LaneSettings")


class SettingsError(ValueError):
    """A provider table that does not fit its provider's settings; the message says what to change."""


@dataclass(frozen=True, kw_only=True)
class LaneSettings:
    """What every provider table takes (README, bridge.example.toml)."""

    type: str = ""  # the provider's kind; default: the table's name
    categories: tuple[str, ...] | None = None  # default: every category the provider understands
    event_id_prefixes: tuple[str, ...] = ()
    interval: float = 2.0  # s a player's part-filled batch waits for more of that player's events
    retry_base: float = 1.0  # s, the first backoff; doubled per failure up to retry_cap
    retry_cap: float = 300.0
    paused_retry: float = 60.0  # s between tries while the provider is paused (disabled, keys refused)
    timeout: float = 10.0  # s for one HTTP request
    max_in_flight: int = 4  # requests a lane has out at once
    max_waiting: int = 50_000  # events read from the store and waiting in players' batches, at most

    def __post_init__(self) -> None:
        for name in ("interval", "retry_base", "retry_cap", "paused_retry", "timeout"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name}: must be a number of seconds above 0")
        for name in ("max_in_flight", "max_waiting"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name}: must be 1 or more")


def parse_settings(provider: str, cls: type[T], table: dict[str, Any]) -> T:
    """`table` as a `cls`, or SettingsError naming `providers.<provider>.<key>`."""
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(f"providers.{provider}.{key}: not a setting of this provider{hint}; it takes: "
                                f"{', '.join(sorted(known))}")
        values[key] = _coerce(f"providers.{provider}.{key}", hints[key], value)
    missing = [name for name, f in known.items()
               if name not in values and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise SettingsError(f"providers.{provider}: missing {', '.join(missing)} (a key ending in _env may name an "
                            "environment variable holding it)")
    try:
        return cls(**values)
    except SettingsError as exc:
        raise SettingsError(f"providers.{provider}.{exc}") from None


def _coerce(where: str, hint: Any, value: Any) -> Any:
    """`value` checked against a settings type: str, bool, int, float (an int is a float), tuple[str, ...],
    dict[str, str] and `X | None`."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(where, inner, value)
    if origin is tuple:
        if not (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)):
            raise SettingsError(f"{where}: must be a list of strings")
        return tuple(value)
    if origin is dict:
        if not (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in value.items())):
            raise SettingsError(f"{where}: must be a table of strings")
        return dict(value)
    if hint is float and type(value) in (int, float):
        return float(value)
    if type(value) is not hint:  # bool is not taken for an int, nor an int for a bool; no value: it may be a secret
        raise SettingsError(f"{where}: must be {_name(hint)}, not {type(value).__name__}")
    return value


def _name(hint: Any) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", float: "a number"}.get(hint, str(hint))
