"""Local emulators of the analytics providers, so games and tests see at once what a provider would do.

`serve_all()` runs all three for `engine-bridge sandbox`; tests build `SandboxServer(GameAnalyticsSandbox()).start()`,
and likewise with `GameRampSandbox` and `StaqSandbox`.
Names load on first use (PEP 562), so importing this package costs nothing to the daemon and
`python -m bridge.sandbox.gameanalytics` runs without a second copy of that module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.sandbox.faults import Fault, FaultPlan
    from bridge.sandbox.gameanalytics import (
        SANDBOX_GAME_KEY,
        SANDBOX_SECRET_KEY,
        GameAnalyticsSandbox,
        RemoteConfig,
        RemoteConfigSet,
        serve,
    )
    from bridge.sandbox.gameramp import GameRampSandbox
    from bridge.sandbox.run import serve_all
    from bridge.sandbox.server import SandboxServer
    from bridge.sandbox.staq import StaqSandbox

_EXPORTS = {
    "Fault": "bridge.sandbox.faults",
    "FaultPlan": "bridge.sandbox.faults",
    "GameAnalyticsSandbox": "bridge.sandbox.gameanalytics",
    "RemoteConfig": "bridge.sandbox.gameanalytics",
    "RemoteConfigSet": "bridge.sandbox.gameanalytics",
    "SANDBOX_GAME_KEY": "bridge.sandbox.gameanalytics",
    "SANDBOX_SECRET_KEY": "bridge.sandbox.gameanalytics",
    "serve": "bridge.sandbox.gameanalytics",
    "SandboxServer": "bridge.sandbox.server",
    "GameRampSandbox": "bridge.sandbox.gameramp",
    "StaqSandbox": "bridge.sandbox.staq",
    "serve_all": "bridge.sandbox.run",
}
__all__ = ["SANDBOX_GAME_KEY", "SANDBOX_SECRET_KEY", "Fault", "FaultPlan", "GameAnalyticsSandbox", "GameRampSandbox",
           "RemoteConfig", "RemoteConfigSet", "SandboxServer", "StaqSandbox", "serve", "serve_all"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bridge.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
