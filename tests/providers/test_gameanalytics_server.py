"""GameAnalytics for a dedicated server: one daemon, many players, everything per player.

In-process (tests/providers/inprocess.py): the real store, lanes and publisher, the sandbox over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any


from tests.harness import make_event
from tests.providers.inprocess import InProcessBridge, provider_spec
from tests.sandboxes import GaSandbox, wait_until

SERVER = {"platform": "linux", "os_version": "linux 6.1", "device": "server", "manufacturer": "acme"}
PLAYERS = {
    "ana": {"platform": "android", "os_version": "android 14", "device": "Pixel 8", "manufacturer": "google",
            "engine_version": "unity 2022.3.10"},
    "ios": {"platform": "ios", "os_version": "ios 17.1", "device": "iPhone15,2", "manufacturer": "apple"},
}


def server_bridge(tmp_path: Path, url: str, **overrides: Any) -> InProcessBridge:
    spec = provider_spec("gameanalytics", url, **{"remote_configs": False, **overrides})
    return InProcessBridge(tmp_path, {"gameanalytics": spec})


def player_event(user_id: str, event_id: str) -> dict[str, Any]:
    ev = make_event("design", event_id=event_id)
    ev["user_id"] = user_id
    return ev


def test_each_players_events_carry_that_players_device(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    """Players named in session_start with their own devices: their events show their platform, OS, device
    and manufacturer, not the server's; a player whose session_start named none shows the server's."""
    sb, server = ga_sandbox
    with server_bridge(tmp_path, server.url) as h:
        game = h.hello(device_id="server", engine_version="godot 3.5", **SERVER)
        for user, device in PLAYERS.items():
            game.session_start(user_id=user, **device)
        game.session_start(user_id="plain")
        game.events([player_event(user, f"{user}:0") for user in (*PLAYERS, "plain")])
        h.flush()
        wait_until(lambda: len(sb.accepted_events(category="design")) == 3, what="the players' events")
    shown = {e["user_id"]: e for e in sb.accepted_events(category="design")}
    for user, device in PLAYERS.items():
        for name in ("platform", "os_version", "device", "manufacturer"):
            assert shown[user][name] == device[name], (user, name)
    assert {name: shown["plain"][name] for name in ("platform", "os_version", "device", "manufacturer")} == SERVER
