"""Provider state in a fleet: two in-process bridges on one PostgreSQL database are two daemons, each with its
own providers (their memory), against one sandbox. A player seen by both logs in once, tokens one daemon
refreshed are the other's too, a player's counts and A/B ids go on from daemon to daemon as their events move,
and a timer's per-player work (a config fetch, a remote-configs ask) is done by one daemon per period."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.sandbox.gameanalytics import GameAnalyticsSandbox
from bridge.sandbox.gameramp import GameRampSandbox
from bridge.sandbox.server import SandboxServer
from tests.harness import make_event
from tests.postgres import PostgresServer
from tests.providers.inprocess import Game, InProcessBridge, ManualClock, provider_spec
from tests.providers.test_staq import client_events
from tests.sandboxes import start_sandbox, wait_until

GA, GR, STAQ = "gameanalytics", "gameramp", "staq"
HELLO = {"platform": "windows", "os_version": "windows 10", "device": "pc", "manufacturer": "acme"}
STAQ_HELLO = {"platform": "android", "os_version": "android 14", "device": "pixel", "manufacturer": "google"}
Fleet = Callable[..., tuple[InProcessBridge, InProcessBridge]]
# Short: a paused bridge's claim still running in its thread when the pause cancelled the lane may lease an
# event stored just after; like a stalled daemon's, that lease runs out well within the tests' waits.
LEASE_S = 2.0


@pytest.fixture
def fleet(pg_server: PostgresServer, tmp_path: Path) -> Iterator[Fleet]:
    """Two bridges of these providers on an empty database of their own, with one clock (each its own daemon
    id, providers and memory), started; closed at the end."""
    made: list[InProcessBridge] = []

    def make(providers: dict[str, dict[str, Any]]) -> tuple[InProcessBridge, InProcessBridge]:
        url = pg_server.new_database()
        clock = ManualClock()
        for daemon in ("a", "b"):
            (tmp_path / daemon).mkdir()
            made.append(InProcessBridge(tmp_path / daemon, providers, clock, store_url=url, lease_s=LEASE_S).start())
        return made[0], made[1]

    yield make
    for bridge in made:
        bridge.close()


# --- GameRamp: one login per player across the fleet ----------------------------------------------------

@pytest.fixture
def gameramp() -> Iterator[tuple[GameRampSandbox, SandboxServer]]:
    sb, sandbox_server = start_sandbox(GR)
    yield sb, sandbox_server
    sandbox_server.stop()


def ticks_at_once(*bridges: InProcessBridge, advance_s: float = 0.0) -> None:
    """The shared clock moved, then one turn of every bridge's timers, side by side (each on its own loop)."""
    clock = bridges[0].clock
    assert isinstance(clock, ManualClock)
    clock.advance(advance_s)
    turns = [threading.Thread(target=bridge.tick) for bridge in bridges]
    for turn in turns:
        turn.start()
    for turn in turns:
        turn.join(60)


def test_a_player_both_daemons_need_at_once_logs_in_once(fleet: Fleet, gameramp) -> None:
    """One daemon's lane sends the player's events while the other's timer fetches the player's config: both
    need the player's tokens at once (the first login takes long), one logs in, the other uses its tokens."""
    sb, sandbox_server = gameramp
    sb.faults.slow("login", delay_s=1.0)
    a, b = fleet({GR: provider_spec(GR, sandbox_server.url, events_route="/v1/events")})
    game = a.hello(device_id="dev-1")
    b.pause()  # b's lanes leave the event to a's
    fetch = threading.Thread(target=b.tick)
    game.event(make_event("design"))
    fetch.start()
    wait_until(lambda: sb.events(device_id="dev-1") and a.settled(GR), what="the event")
    fetch.join(60)
    assert b.published("config/gameramp/dev-1") is not None
    logins = a.figures(GR)["logins"] + b.figures(GR)["logins"]
    assert len(sb.calls("login", device_id="dev-1")) == 1 and logins == 1 and not sb.calls("refresh")


def test_tokens_one_daemon_refreshed_are_used_by_the_other(fleet: Fleet, gameramp) -> None:
    """Ahead of expiry (the other daemon's memory holds the old tokens, their refresh token spent), and after a
    401 (the access token revoked): the other daemon reads the store and needs neither a refresh nor a login."""
    sb, sandbox_server = gameramp
    spec = provider_spec(GR, sandbox_server.url)
    a, b = fleet({GR: spec})
    a.hello(device_id="dev-1")
    expires_in, turn_s = sb.settings()["expires_in"], spec["refresh"]  # a refresh period each: the next turn
    a.tick()
    b.tick(turn_s)  # the tokens a logged in with, from the store
    assert len(sb.calls("login")) == 1 and not sb.calls("refresh")
    a.tick(expires_in * 0.9)  # a's refresh is due: a refreshes (the old refresh token is spent)
    assert len(sb.calls("refresh")) == 1
    b.tick(turn_s)  # b's memory says due too, with the spent refresh token: the store has a's fresh tokens
    assert len(sb.calls("refresh")) == 1 and len(sb.calls("login")) == 1
    sb.revoke_tokens("dev-1")
    a.tick(turn_s)  # 401: a refreshes
    b.tick(turn_s)  # b's memory holds the revoked token, the store a's new one: used, no 401, no refresh
    assert len(sb.calls("refresh")) == 2 and len(sb.calls("login")) == 1
    assert sb.counts()["routes"]["player_status"] == {"200": 6, "401": 1}  # a's call on the revoked token


def test_each_players_config_is_fetched_by_one_daemon_per_refresh(fleet: Fleet, gameramp) -> None:
    sb, sandbox_server = gameramp
    spec = provider_spec(GR, sandbox_server.url)
    a, b = fleet({GR: spec})
    devices = ["dev-1", "dev-2", "dev-3"]
    for device in devices:
        a.hello(device_id=device)
    for turn in range(3):
        sb.set_player_config({"playerStatus": {"level": {"value": turn, "defaultValue": 0, "expiredAt": None}}})
        ticks_at_once(a, b, advance_s=spec["refresh"])  # both timers due, side by side
        statuses = Counter(call["device_id"] for call in sb.calls("player_status"))
        assert statuses == {device: turn + 1 for device in devices}  # each asked once more, by one daemon
    ticks_at_once(a, b, advance_s=spec["refresh"])  # the daemon that did not fetch has the last fetch's config
    for bridge in (a, b):
        assert {device: bridge.published(f"config/gameramp/{device}")["values"] for device in devices} == \
            {device: {"level": 2} for device in devices}
    assert len(sb.calls("login")) == len(devices)  # one per player


# --- GameAnalytics: a player's counts go on from daemon to daemon --------------------------------------

@pytest.fixture
def gameanalytics() -> Iterator[tuple[GameAnalyticsSandbox, SandboxServer]]:
    sb, sandbox_server = start_sandbox(GA)
    yield sb, sandbox_server
    sandbox_server.stop()


def user_event(category: str, user_id: str, **fields: Any) -> dict[str, Any]:
    ev = make_event(category, **fields)
    ev["user_id"] = user_id
    return ev


def progression(event_id: str, user_id: str) -> dict[str, Any]:
    ev = user_event("progression", user_id, event_id=event_id)
    del ev["fields"]["attempt_num"], ev["fields"]["score"]
    return ev


def delivered_by(bridge: InProcessBridge, provider: str, store: Callable[[], None],
                 delivered: Callable[[], bool]) -> None:
    """`store` (by whichever daemon's ingress), then delivered by `bridge` alone, the other daemon paused: the
    players' events move to `bridge` for this batch. `delivered` says when the sandbox has them."""
    bridge.resume()
    store()
    wait_until(lambda: delivered() and bridge.settled(provider), what=f"the events delivered by "
               f"{bridge.store.daemon_id}")
    bridge.pause()


def ga_delivered_by(bridge: InProcessBridge, game: Game, events: list[dict[str, Any]],
                    sb: GameAnalyticsSandbox) -> None:
    """`events` stored by `game`'s daemon and delivered by `bridge`: in the sandbox, each of their categories."""
    wanted = Counter(ev["category"] for ev in events)
    wanted.update(e["category"] for e in sb.accepted_events() if e["category"] in wanted)

    def store() -> None:
        assert game.events(events)["stored"] == len(events)
    delivered_by(bridge, GA, store, lambda: Counter(e["category"] for e in sb.accepted_events()) >= wanted)


def test_transaction_and_attempt_numbers_go_on_as_a_player_moves_between_daemons(fleet: Fleet, gameanalytics) -> None:
    sb, sandbox_server = gameanalytics
    a, b = fleet({GA: provider_spec(GA, sandbox_server.url)})
    game = a.hello(device_id="server", **HELLO)
    a.pause()
    b.pause()
    for bridge in (a, b, a):  # a's memory holds its own counts from the first batch: stale at the third
        ga_delivered_by(bridge, game, [user_event("business", "p1"), user_event("business", "p2"),
                                       progression("Fail:w1:l1", "p1")], sb)
    ga_delivered_by(b, game, [progression("Complete:w1:l1", "p1")], sb)
    purchases = [(e["user_id"], e["transaction_num"]) for e in sb.accepted_events(category="business")]
    attempts = [(e["event_id"], e.get("attempt_num")) for e in sb.accepted_events(category="progression")]
    assert sorted(purchases) == [("p1", 1), ("p1", 2), ("p1", 3), ("p2", 1), ("p2", 2), ("p2", 3)]
    assert attempts == [("Fail:w1:l1", None)] * 3 + [("Complete:w1:l1", 4)]  # three Fails, then this try


def test_events_carry_the_ab_ids_last_stored_whichever_daemon_asked(fleet: Fleet, gameanalytics) -> None:
    sb, sandbox_server = gameanalytics
    sb.set_remote_configs([{"key": "k", "value": "v"}], ab_id="exp1", variants={"x": [{"key": "k", "value": "w"}]})
    a, b = fleet({GA: provider_spec(GA, sandbox_server.url)})
    game = a.hello(device_id="server", **HELLO)
    a.pause()
    b.pause()
    ga_delivered_by(a, game, [user_event("design", "p1")], sb)  # a asks p1 as their session starts
    sb.set_remote_configs([{"key": "k", "value": "v"}], ab_id="exp2", variants={"y": [{"key": "k", "value": "z"}]})
    b.tick(60.0)  # b's refresh asks p1 again: the store has exp2
    wait_until(lambda: sb.configs_asked().count("p1") >= 2, what="b's ask")
    ga_delivered_by(a, game, [user_event("design", "p1")], sb)
    assert [e["ab_id"] for e in sb.accepted_events(category="design")] == ["exp1", "exp2"]


def test_each_players_remote_configs_are_asked_by_one_daemon_per_refresh(fleet: Fleet, gameanalytics) -> None:
    sb, sandbox_server = gameanalytics
    sb.set_remote_configs([{"key": "k", "value": "v"}])
    spec = provider_spec(GA, sandbox_server.url)
    a, b = fleet({GA: spec})
    game = a.hello(device_id="server", **HELLO)
    a.pause()
    b.pause()
    players = ["p1", "p2", "p3"]
    ga_delivered_by(a, game, [user_event("design", user) for user in players], sb)  # a asks each as they start
    assert sorted(sb.configs_asked()) == players
    for turn in range(2):
        ticks_at_once(a, b, advance_s=spec["remote_configs_refresh"])  # both refreshes due, side by side
        wait_until(lambda: len(sb.configs_asked()) >= len(players) * (turn + 2), what="the refresh's asks")
        assert sorted(sb.configs_asked()) == sorted(players * (turn + 2))  # each asked once more, by one daemon
    for bridge in (a, b):  # whichever daemon asked, each publishes the player's configs
        assert {user: bridge.published(f"config/gameanalytics/server/{user}")["values"] for user in players} == \
            {user: {"k": "v"} for user in players}


# --- staq: one authorization per play session across the fleet ------------------------------------------

def test_a_play_session_keeps_its_staq_session_and_token_as_its_player_moves_between_daemons(fleet: Fleet,
                                                                                            staq_sandbox) -> None:
    """A daemon that knew the player before (their earlier session, their token) reads the store: the play
    session another daemon authorized, the token another daemon renewed after a 401."""
    sb, sandbox_server = staq_sandbox
    a, b = fleet({STAQ: provider_spec(STAQ, sandbox_server.url)})
    game = a.hello(device_id="dev-s", **STAQ_HELLO)
    a.pause()
    b.pause()

    def batch(bridge: InProcessBridge, name: str, start: bool = False) -> None:
        count = len(client_events(sb)) + 1

        def store() -> None:
            if start:
                game.session_start()
            game.event(make_event("custom", name=name))
        delivered_by(bridge, STAQ, store, lambda: len(client_events(sb)) == count)

    batch(b, "s0", start=True)  # b authorizes the player's first session
    batch(a, "s1-a", start=True)  # a their second
    batch(b, "s1-b")  # b's memory has no sid for it: the store has a's
    assert len(sb.calls("auth")) == 2
    sb.revoke_tokens()
    batch(a, "s1-c")  # a 401: a renews the token, the session keeps its sid
    batch(b, "s1-d")  # b's memory holds the revoked token: the store a's new one
    sids = {e["event"]: e["sid"] for e in client_events(sb)}
    assert len(sb.calls("auth")) == 3 and [call["status"] for call in sb.calls("events")] == [200, 200, 200, 401, 200,
                                                                                              200]
    assert sids["s1-a"] == sids["s1-b"] == sids["s1-c"] == sids["s1-d"] != sids["s0"]
