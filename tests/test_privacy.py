"""Player privacy: consent held, granted and denied, IP forwarding by purpose, and erasure with its ledger.

In-process (tests/providers/inprocess.py): the real store, lanes, publisher and the three providers against
their sandboxes over loopback HTTP; a restart in the middle of each flow (a new dispatcher and providers, the
ingress's sessions and consents read back from the store). "Nothing reached a sandbox" is always asserted
after a condition that was waited for: a later event of another player delivered at every sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import make_event
from tests.providers.inprocess import InProcessBridge, provider_spec
from tests.sandboxes import start_sandbox, wait_until

SERVER = {"platform": "linux", "os_version": "linux 6.1", "device": "server", "manufacturer": "acme"}
IP = "203.0.113.7"


class Sandboxes:
    """GameAnalytics, GameRamp and staq emulators, and what each received of a player (a user id)."""

    def __init__(self) -> None:
        self.ga, self._ga = start_sandbox("gameanalytics")
        self.gameramp, self._gameramp = start_sandbox("gameramp")
        self.staq, self._staq = start_sandbox("staq")

    def providers(self, **ga: Any) -> dict[str, dict[str, Any]]:
        return {"gameanalytics": provider_spec("gameanalytics", self._ga.url, **ga),
                "gameramp": provider_spec("gameramp", self._gameramp.url, events_route="/v1/events"),
                "staq": provider_spec("staq", self._staq.url)}

    def ga_events(self, user: str, category: str = "design") -> list[dict[str, Any]]:
        return [e for e in self.ga.accepted_events(category=category) if e["user_id"] == user]

    def taken(self, user: str) -> dict[str, list[str]]:
        """What each sandbox took of the player's own events, in the order it took them: the design events'
        `event_id` at GameAnalytics and GameRamp, the custom events' names at staq."""
        uids = {c["uid"] for c in self.staq.calls(device_id=user) if c.get("uid")}
        return {"gameanalytics": [e["event_id"] for e in self.ga_events(user)],
                "gameramp": [e["payload"]["event_id"] for e in self.gameramp.received_events(device_id=user)
                             if e["eventType"] == "design"],
                "staq": [e["event"] for e in self.staq.events() if e["uid"] in uids and e["source"] == "client"]}

    def reached(self, user: str) -> list[str]:
        """Every sandbox that heard anything of the player: an event, a login, a remote-configs ask."""
        heard = []
        if any(r["event"].get("user_id") == user for r in self.ga.accepted() + self.ga.rejected()) or \
                user in self.ga.configs_asked():
            heard.append("gameanalytics")
        if self.gameramp.calls(device_id=user) or self.gameramp.events(device_id=user):
            heard.append("gameramp")
        if self.staq.calls(device_id=user):
            heard.append("staq")
        return heard

    def stop(self) -> None:
        for server in (self._ga, self._gameramp, self._staq):
            server.stop()


@pytest.fixture
def sandboxes() -> Iterator[Sandboxes]:
    sb = Sandboxes()
    yield sb
    sb.stop()


def play(user: str, n: int, first: int = 0) -> list[dict[str, Any]]:
    """`n` events of a player: a design event and a custom one each (every provider takes one of them)."""
    events = []
    for i in range(first, first + n):
        for ev in (make_event("design", event_id=f"{user}:{i}"), make_event("custom", name=f"{user}_{i}")):
            ev["user_id"] = user
            events.append(ev)
    return events


def sent(user: str, n: int, first: int = 0) -> dict[str, list[str]]:
    """What `taken` shows once `play(user, n, first)` was delivered everywhere."""
    design = [f"{user}:{i}" for i in range(first, first + n)]
    return {"gameanalytics": design, "gameramp": design, "staq": [f"{user}_{i}" for i in range(first, first + n)]}


def delivered(sb: Sandboxes, user: str, n: int) -> bool:
    return sb.taken(user) == sent(user, n)


def server(h: InProcessBridge) -> Any:
    """A dedicated server's connection: its players named in their sessions and events."""
    return h.hello(device_id="server", engine="godot", **SERVER)


# --- consent required ------------------------------------------------------------------------------------

def test_under_required_a_player_is_held_until_consent_then_everything_goes_in_order(
        tmp_path: Path, sandboxes: Sandboxes) -> None:
    """Under `consent = "required"` a player who has not answered is stored and acknowledged but reaches no
    sandbox (no event, no login, no remote-configs ask) while another player's events, sent after theirs,
    reach all three, across a restart; once they grant, all their events go, in the order sent."""
    sb = sandboxes
    h = InProcessBridge(tmp_path, sb.providers(), consent="required")
    with h:
        game = server(h)
        assert game.consent(user_id="other", analytics="granted") == {
            "device_id": "server", "user_id": "other", "analytics": "granted", "ip_ads": "unknown"}
        game.session_start(user_id="held", user_ip=IP)
        assert game.events(play("held", 3))["stored"] == 6  # acknowledged: stored, held
        game.session_start(user_id="other")
        game.events(play("other", 1))
        h.flush()
        wait_until(lambda: delivered(sb, "other", 1), what="the consenting player's events, sent later")
        h.tick(1.0)  # the providers' timers: logins kept fresh, remote configs asked again, for players only
        assert sb.reached("held") == []
        h.restart()  # the held events stay held
        assert game.events(play("held", 2, first=3))["stored"] == 4
        game.events(play("other", 1, first=1))
        h.flush()
        wait_until(lambda: sb.taken("other") == sent("other", 2), what="the other player's events after a restart")
        assert sb.reached("held") == []
        assert len([e for e in h.events() if e["user_id"] == "held"]) == 10 + 1  # and the session's start

        assert game.consent(user_id="held", analytics="granted")["analytics"] == "granted"
        h.flush()
        wait_until(lambda: delivered(sb, "held", 5), what="the held player's events, once granted")
        assert sorted(sb.reached("held")) == ["gameanalytics", "gameramp", "staq"]
        assert sb.ga_events("held", "user")[0]["category"] == "user"  # their session's start went too
        h.figures("gameanalytics")  # the lanes are still alive


def test_held_events_of_a_player_who_never_answers_are_purged_after_hold_hours(tmp_path: Path,
                                                                                sandboxes: Sandboxes) -> None:
    """The held events older than `[privacy] hold_hours` go from the store; a consenting player's stay until
    delivered."""
    sb = sandboxes
    with InProcessBridge(tmp_path, sb.providers(), consent="required") as h:
        game = server(h)
        game.events(play("silent", 2))
        housekeeping = h.dispatcher.views.housekeeping
        assert housekeeping.purge_held(0) == 0  # nothing received before the epoch
        assert housekeeping.purge_held(time.time() + 1) == 5  # two events of each kind and the session start
        assert [e for e in h.events() if e["user_id"] == "silent"] == []
