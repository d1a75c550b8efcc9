"""Provider classes by name: the built-in ones, then any installed package's `engine_bridge.providers` entry point.

A third-party provider is a package that declares, in its pyproject.toml,
`[project.entry-points."engine_bridge.providers"] mycompany = "mypkg.provider:MyProvider"`, then
`[providers.x] type = "mycompany"` in the daemon's configuration uses it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from .base import Provider
from .gameanalytics.provider import GameAnalytics
from .gameramp import GameRamp
from .relay.provider import Relay
from .staq import Staq

ENTRY_POINT_GROUP = "engine_bridge.providers"
# Imported, not named: a freezer (PyInstaller, `engine-bridge bundle`) sees only what is imported.
BUILTIN: dict[str, type[Provider]] = {"gameanalytics": GameAnalytics, "gameramp": GameRamp, "relay": Relay,
                                     "staq": Staq}


class UnknownProvider(LookupError):
    pass


def provider_class(kind: str) -> type[Provider]:
    if kind in BUILTIN:
        return BUILTIN[kind]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == kind:
            return _provider(ep.load(), f"entry point {ep.value}")
    known = sorted(set(BUILTIN) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})
    raise UnknownProvider(f"no provider type {kind!r}; known: {', '.join(known)}")


def _provider(found: object, where: str) -> type[Provider]:
    if not (isinstance(found, type) and issubclass(found, Provider)):
        raise UnknownProvider(f"{where} is not a bridge.providers.base.Provider")
    return found
