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
        game = h.hello(device_id="server", engine="godot", engine_version="3.5.2", **SERVER)
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
    assert shown["ana"]["engine_version"] == "unity 2022.3.10"  # its own, naming its engine
    assert shown["ios"]["engine_version"] == shown["plain"]["engine_version"] == "godot 3.5.2"  # the hello's


def test_players_in_different_variants_each_get_their_own_ids_and_configs(tmp_path: Path,
                                                                          ga_sandbox: GaSandbox) -> None:
    """Two players of one server in variants a and b: each player's events carry that player's A/B ids, and
    each player's configs reach that player's topic; the server itself is asked for nothing."""
    sb, server = ga_sandbox
    experiment = sb.set_remote_configs(ab_id="exp9", variants={"a": [{"key": "gravity", "value": "1"}],
                                                               "b": [{"key": "gravity", "value": "2"}]})
    users = (f"player-{i}" for i in range(1000))
    in_a, in_b = next(u for u in users if experiment.for_user(u)[1] == "a"), \
        next(u for u in users if experiment.for_user(u)[1] == "b")
    with server_bridge(tmp_path, server.url, remote_configs=True) as h:
        sub = h.subscribe("config/gameanalytics")
        game = h.hello(device_id="server", **SERVER)
        for user in (in_a, in_b):
            game.session_start(user_id=user)
        game.events([player_event(user, f"{user}:0") for user in (in_a, in_b)])
        h.flush()
        wait_until(lambda: len(sb.accepted_events(category="design")) == 2, what="both players' events")
        topics = sub.collect([f"config/gameanalytics/server/{in_a}", f"config/gameanalytics/server/{in_b}"])
        assert h.published("config/gameanalytics/server") is None and h.published("config/gameanalytics") is None
    shown = {e["user_id"]: e for e in sb.accepted_events()}
    assert (shown[in_a]["ab_id"], shown[in_a]["ab_variant_id"]) == ("exp9", "a")
    assert (shown[in_b]["ab_id"], shown[in_b]["ab_variant_id"]) == ("exp9", "b")
    for user, variant, gravity in ((in_a, "a", "1"), (in_b, "b", "2")):
        published = topics[f"config/gameanalytics/server/{user}"]
        assert published["values"] == {"gravity": gravity}
        assert (published["meta"]["ab_id"], published["meta"]["ab_variant_id"]) == ("exp9", variant)
    assert sorted(sb.configs_asked()) == sorted([in_a, in_b])  # once each, at its session start


def test_a_players_config_goes_live_at_its_start_ts_and_leaves_after_its_end_ts(tmp_path: Path,
                                                                                ga_sandbox: GaSandbox) -> None:
    """A config with a time window reaches the player's topic when the collector's clock enters it and
    leaves it once end_ts passed, each on the providers' timer (the clock is moved by hand), with no new ask:
    the collector sent it ahead, as asked for the next `remote_configs_interval_seconds`."""
    sb, server = ga_sandbox
    with server_bridge(tmp_path, server.url, remote_configs=True, remote_configs_interval_seconds=300,
                       remote_configs_refresh=3600) as h:
        start = int(h.clock.time()) + 60
        sb.set_remote_configs([{"key": "gravity", "value": "1"},
                               {"key": "event", "value": "on", "start_ts": start, "end_ts": start + 60}])
        game = h.hello(device_id="server", **SERVER)
        game.session_start(user_id="p1")
        topic = "config/gameanalytics/server/p1"
        first = wait_until(lambda: h.published(topic), what="the player's configs")
        assert first["values"] == {"gravity": "1"}
        h.tick(30)
        assert h.published(topic) == first  # the window has not begun
        h.tick(32)  # (the collector's clock may run a second ahead of the providers')
        live = h.published(topic)
        assert live is not None and live["values"] == {"gravity": "1", "event": "on"}
        assert live["version"] == first["version"] + 1
        h.tick(26)
        assert h.published(topic) == live
        h.tick(34)
        ended = h.published(topic)
        assert ended is not None and ended["values"] == {"gravity": "1"} and ended["version"] == live["version"] + 1
    assert sb.configs_asked() == ["p1"]
