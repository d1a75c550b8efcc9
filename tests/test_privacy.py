"""Player privacy: consent held, granted and denied, IP forwarding by purpose, and erasure with its ledger.

In-process (tests/providers/inprocess.py): the real store, lanes, publisher and the three providers against
their sandboxes over loopback HTTP; a restart in the middle of each flow (a new dispatcher and providers, the
ingress's sessions and consents read back from the store). "Nothing reached a sandbox" is always asserted
after a condition that was waited for: a later event of another player delivered at every sandbox."""

from __future__ import annotations

import contextlib
import csv
import sqlite3
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bridge.store import schema

from tests.harness import Client, Daemon, make_event
from tests.providers.inprocess import InProcessBridge, provider_spec
from tests.sandboxes import provider_table, start_sandbox, wait_until

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
        """What each sandbox took of the player's own events, in the order it first took them: the design events'
        `event_id` at GameAnalytics and GameRamp, the custom events' names at staq. A batch in flight at a restart
        is sent again (delivery is at least once): its repeat is left out."""
        uids = {c["uid"] for c in self.staq.calls(device_id=user) if c.get("uid")}
        taken = {"gameanalytics": [e["event_id"] for e in self.ga_events(user)],
                 "gameramp": [e["payload"]["event_id"] for e in self.gameramp.received_events(device_id=user)
                              if e["eventType"] == "design"],
                 "staq": [e["event"] for e in self.staq.events() if e["uid"] in uids and e["source"] == "client"]}
        return {name: list(dict.fromkeys(ids)) for name, ids in taken.items()}

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
        assert h.store.counts()["held"] == 10 + 1  # what `stats` shows

        assert game.consent(user_id="held", analytics="granted")["analytics"] == "granted"
        h.flush()
        wait_until(lambda: delivered(sb, "held", 5), what="the held player's events, once granted")
        assert h.store.counts()["held"] == 0
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


# --- denial and withdrawal -------------------------------------------------------------------------------

def player_events(h: InProcessBridge, user: str) -> list[dict[str, Any]]:
    return [e for e in h.events() if e["user_id"] == user]


def test_after_a_denial_nothing_more_of_the_player_leaves_and_none_of_their_events_stay(
        tmp_path: Path, sandboxes: Sandboxes) -> None:
    """A player delivered to, then events stored while the lanes are down (undelivered), then a withdrawal:
    their events leave the store at once and their session ends; after a restart their new events are
    acknowledged and discarded, the timers ask their remote configs no more, and the other player's events,
    sent after, reach every sandbox while none of theirs does."""
    sb = sandboxes
    h = InProcessBridge(tmp_path, sb.providers())  # consent not required: an unknown player is sent to
    with h:
        game = server(h)
        game.session_start(user_id="quits", user_ip=IP)
        game.session_start(user_id="other")
        game.events(play("quits", 1) + play("other", 1))
        h.flush()
        wait_until(lambda: delivered(sb, "quits", 1) and delivered(sb, "other", 1), what="both players' events")
        asked = sb.ga.configs_asked().count("quits")
        assert asked == 1
        h.stop()  # the lanes down: what is stored now stays undelivered
        game.events(play("quits", 2, first=1))
        assert len(player_events(h, "quits")) == 1 + 2 + 4  # their session's start, the delivered, the undelivered
        reply = game.consent(user_id="quits", analytics="denied")
        assert (reply["analytics"], reply["ip_ads"]) == ("denied", "unknown")
        assert player_events(h, "quits") == []  # the undelivered ones (and the delivered ones kept) are gone
        assert h.book.current("quits") is None
        h.restart()
        ack = game.events(play("quits", 1, first=3) + play("other", 1, first=1))
        assert (ack["stored"], ack["discarded"]) == (2, 2)
        h.flush()
        h.tick(1.0)  # past remote_configs_refresh: every player who plays is asked again
        wait_until(lambda: sb.taken("other") == sent("other", 2) and sb.ga.configs_asked().count("other") >= 2,
                   what="the other player's later events and remote configs")
        assert sb.taken("quits") == sent("quits", 1)  # only what went before the denial
        assert sb.ga.configs_asked().count("quits") == asked
        assert player_events(h, "quits") == []
        assert [p.user_id for p in h.dispatcher.views.state.active_players(0, playing=True)] == ["other"]


def test_claimed_events_purged_by_a_denial_are_never_sent(tmp_path: Path, sandboxes: Sandboxes) -> None:
    """Events a lane holds (its batch retrying through an outage) when the player denies are dropped before the
    next try: a lane checks that its events are still stored before each send. The other player's, held by
    the same outage, go once it ends."""
    sb = sandboxes
    providers = {"gameanalytics": provider_spec("gameanalytics", sb._ga.url, remote_configs=False)}
    sb.ga.faults.fail("events", status=503, count=None)
    with InProcessBridge(tmp_path, providers) as h:
        game = server(h)
        game.events(play("late", 2) + play("early", 1))
        h.flush()
        wait_until(lambda: sb.ga.faults.fired().get("events", 0) >= 2, what="both players' batches refused")
        game.consent(user_id="late", analytics="denied")
        # its next try finds its events gone: only the other player's batch (session start, event) is left out
        wait_until(lambda: h.figures("gameanalytics")["in_flight"] == 2, what="the denied player's batch dropped")
        sb.ga.faults.clear()
        wait_until(lambda: sb.ga_events("early"), what="the other player's batch after the outage")
        wait_until(lambda: h.settled("gameanalytics"), what="the lane past every event")
        assert sb.reached("late") == []
        assert h.figures("gameanalytics")["delivered"] == 2  # early's session start and design event


# --- erasure ---------------------------------------------------------------------------------------------

def traces(h: InProcessBridge, *names: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the store that names one of `names` in any column (msgpack and JSON
    columns read as bytes), by table."""
    found: dict[str, list[dict[str, Any]]] = {}
    marks = [name.encode() for name in names]
    with h.store.engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                values = [v if isinstance(v, bytes) else str(v).encode() for v in row.values()]
                if any(mark in value for mark in marks for value in values):
                    found.setdefault(table.name, []).append(dict(row))
    return found


def test_forget_erases_every_local_trace_and_writes_one_ledger_entry_per_provider(
        tmp_path: Path, sandboxes: Sandboxes) -> None:
    """A game's own player, delivered to all three providers (logged in at GameRamp and staq, remote configs
    and player config published), with a consent given: after `forget` and a restart before the lanes took it,
    no table holds anything of them but the erasure ledger, which has one entry per provider, settled as a
    manual request naming the player as that provider knows them; their topics are gone."""
    sb = sandboxes
    sb.ga.set_remote_configs([{"key": "gravity", "value": "2"}])
    h = InProcessBridge(tmp_path, sb.providers())
    with h:
        game = h.hello(device_id="dev-alice", user_id="alice-77", platform="android", os_version="android 14")
        game.consent(ip_ads="granted")
        game.session_start(user_ip=IP)
        game.events(play("alice-77", 2))
        h.flush()
        h.tick(1.0)  # GameRamp's timer: the player's config on its topic
        wait_until(lambda: delivered(sb, "alice-77", 2), what="the player's events everywhere")
        wait_until(lambda: h.published("config/gameramp/dev-alice") and h.published("config/gameanalytics/dev-alice"),
                   what="the player's config topics")
        assert set(traces(h, "alice-77", "dev-alice")) >= {"events", "sessions", "devices", "consent",
                                                           "provider_state", "configs"}
        h.stop()  # the lanes down: the ledger's entries stay pending across the restart
        reply = game.forget()
        assert reply == {"device_id": "dev-alice", "user_id": "alice-77",
                         "providers": ["gameanalytics", "gameramp", "staq"]}
        assert [e.status for e in h.dispatcher.views.ledger.entries()] == ["pending"] * 3
        h.restart()
        assert h.erase_pending() == 3
        assert h.erase_pending() == 0  # settled once
        assert set(traces(h, "alice-77", "dev-alice")) == {"erasures"}, traces(h, "alice-77", "dev-alice")
        assert h.published("config/gameramp/dev-alice") is None
        assert h.published("config/gameanalytics/dev-alice") is None and h.published("config/gameanalytics") is None
        ledger = {e.provider: e for e in h.dispatcher.views.ledger.entries()}
        assert sorted(ledger) == ["gameanalytics", "gameramp", "staq"]
        for entry in ledger.values():
            assert (entry.status, entry.device_id, entry.user_id, entry.own) == ("manual", "dev-alice", "alice-77",
                                                                                True)
            assert entry.done_at is not None and entry.done_at >= entry.requested_at
        assert ledger["gameanalytics"].ids == {"user_id": "alice-77", "device_id": "dev-alice"}
        assert ledger["gameramp"].ids["deviceId"] == "alice-77" and ledger["gameramp"].ids["userId"]
        assert ledger["staq"].ids["uid"] == sb.staq.calls(device_id="alice-77")[0]["uid"]
        h.restart()  # the ledger holds across restarts
        assert len(h.dispatcher.views.ledger.entries(status="manual")) == 3


def test_ip_forwarding_stops_when_the_ip_purpose_is_denied(tmp_path: Path, sandboxes: Sandboxes) -> None:
    """A dedicated server's two players with their IP addresses: the one who denied ip_ads reaches
    GameAnalytics without X-Forwarded-For and with limit_ad_tracking, their sessions lose the address, and so
    it stays after a restart; the other's requests carry theirs."""
    sb = sandboxes
    providers = {"gameanalytics": provider_spec("gameanalytics", sb._ga.url, remote_configs=False)}
    h = InProcessBridge(tmp_path, providers)
    with h:
        game = server(h)
        game.session_start(user_id="private", user_ip=IP)
        game.session_start(user_id="open", user_ip="198.51.100.4")
        assert game.consent(user_id="private", ip_ads="denied")["ip_ads"] == "denied"
        game.events(play("private", 1) + play("open", 1))
        h.flush()
        wait_until(lambda: sb.ga_events("private") and sb.ga_events("open"), what="both players' events")
        h.restart()
        game.events(play("private", 1, first=1) + play("open", 1, first=1))
        h.flush()
        wait_until(lambda: sb.taken("private")["gameanalytics"] == ["private:0", "private:1"] and
                   sb.taken("open")["gameanalytics"] == ["open:0", "open:1"], what="both players' events after a restart")
    records = [r for r in sb.ga.accepted(category="design")]  # a batch repeated after the restart: the same
    private = [r for r in records if r["event"]["user_id"] == "private"]
    opened = [r for r in records if r["event"]["user_id"] == "open"]
    assert {r["forwarded_for"] for r in private} == {None}
    assert {r["event"].get("limit_ad_tracking") for r in private} == {True}
    assert {r["forwarded_for"] for r in opened} == {"198.51.100.4"}
    assert all("limit_ad_tracking" not in r["event"] for r in opened)
    h2 = InProcessBridge(tmp_path, {})  # the store as the daemon would reopen it
    try:
        assert traces(h2, IP) == {}  # the denied player's address is nowhere
        assert set(traces(h2, "198.51.100.4")) == {"sessions"}
    finally:
        h2.close()


# --- the daemon: the protocol requests, `engine-bridge forget` and `engine-bridge privacy` -------------------

def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parent.parent)


def test_the_daemon_holds_until_consent_forgets_on_the_cli_and_exports_its_ledger(tmp_path: Path,
                                                                                   sandboxes: Sandboxes) -> None:
    """A real daemon under `consent = "required"`: the `consent` reply says the new state and the held event
    goes; `engine-bridge forget` names the player; within a second each provider's ledger entry is a manual
    request, which `engine-bridge privacy` exports as CSV and JSON, again after a restart."""
    sb = sandboxes
    config = provider_table("gameanalytics", sb._ga.url, remote_configs=False) + \
        provider_table("staq", sb._staq.url, kind="staq") + '\n[privacy]\nconsent = "required"\n'
    with Daemon(tmp_path, config=config) as daemon:
        with Client(daemon.ingress, device_id="d-1") as game:
            game.hello(engine="custom", game_build="1.0")
            assert game.request({"type": "event", "event": make_event("design", event_id="held:0")})["stored"] == 1
            reply = game.request({"type": "consent", "analytics": "granted"})
            assert {k: reply[k] for k in ("type", "device_id", "user_id", "analytics", "ip_ads")} == {
                "type": "consent", "device_id": "d-1", "user_id": "d-1", "analytics": "granted", "ip_ads": "unknown"}
            game.request({"type": "flush"})
            wait_until(lambda: sb.ga_events("d-1"), what="the held event once granted")
            assert game.request({"type": "consent", "analytics": "denied"})["analytics"] == "denied"
            ack = game.request({"type": "event", "event": make_event("design", event_id="after:denial")})
            assert (ack["stored"], ack["duplicates"], ack["discarded"]) == (0, 0, 1)
            refused = game.request({"type": "consent", "analytics": "maybe"})
            assert (refused["type"], refused["code"], refused["field"]) == ("error", "invalid_value", "analytics")
        forgot = cli("forget", "--device", "d-1", "--ingress", daemon.ingress)
        assert forgot.returncode == 0, forgot.stderr
        assert json.loads(forgot.stdout)["providers"] == ["gameanalytics", "staq"]
        store = ["--data-dir", str(daemon.data_dir), "--config", str(daemon.config_path)]

        def ledger() -> list[dict[str, Any]]:
            out = cli("privacy", "--format", "json", *store)
            assert out.returncode == 0, out.stderr
            entries: list[dict[str, Any]] = json.loads(out.stdout)
            return entries if entries and all(e["status"] == "manual" for e in entries) else []

        entries = wait_until(ledger, what="the ledger's entries settled")
        assert [(e["provider"], e["device_id"], e["user_id"]) for e in entries] == [
            ("gameanalytics", "d-1", "d-1"), ("staq", "d-1", "d-1")]
        assert "GameAnalytics" in entries[0]["detail"] and entries[0]["ids"] == {"user_id": "d-1", "device_id": "d-1"}
        daemon.restart()
        exported = tmp_path / "ledger.csv"
        assert cli("privacy", "--status", "manual", "--output", str(exported), *store).returncode == 0
        rows = list(csv.DictReader(exported.open()))
        assert [(r["provider"], r["status"], r["user_id"]) for r in rows] == [
            ("gameanalytics", "manual", "d-1"), ("staq", "manual", "d-1")]
        assert json.loads(rows[1]["ids"])["deviceId"] == "d-1"
        marked = cli("privacy", "--format", "json", "--mark-sent", rows[0]["pk"], *store)
        assert [e["status"] for e in json.loads(marked.stdout)] == ["sent", "manual"], marked.stderr
        assert [e for e in daemon.events() if e["device_id"] == "d-1"] == []


@contextlib.contextmanager
def edge_and_relay(tmp_path: Path, sb: Sandboxes, relay_extra: str = "") -> Iterator[tuple[Daemon, Daemon]]:
    """A relay delivering to the GameAnalytics sandbox, and an edge forwarding to it."""
    from bridge.keys import RELAY, key_pair
    from tests.harness import free_port
    from tests.test_relay import edge_config

    port = free_port()
    relay_config = provider_table("gameanalytics", sb._ga.url, remote_configs=False) + \
        f'[relay]\nbind = "tcp://127.0.0.1:{port}"\n' + relay_extra
    with Daemon(tmp_path / "relay", relay_config) as relay:
        with Daemon(tmp_path / "edge", edge_config(port, key_pair(relay.data_dir, RELAY).public)) as edge:
            yield relay, edge


def test_a_player_forgotten_at_the_edge_is_forgotten_at_the_relay(tmp_path: Path, sandboxes: Sandboxes) -> None:
    """The edge's relay lane is its deletion API: its ledger entry is `requested`, with the relay's providers,
    and the relay keeps nothing of the player but its own ledger's entry for GameAnalytics."""
    sb = sandboxes
    with edge_and_relay(tmp_path, sb) as (relay, edge):
        with Client(edge.ingress, device_id="pc-9") as game:
            game.hello(user_id="zoe", platform="windows", os_version="windows 10", engine="unity")
            game.request({"type": "event", "event": make_event("design", event_id="edge:0")})
            game.request({"type": "flush"})
            wait_until(lambda: sb.ga_events("zoe"), 60, what="the event at the sandbox, through the relay")
            assert game.request({"type": "forget"})["providers"] == ["relay"]

        def settled(daemon: Daemon, status: str) -> list[dict[str, Any]]:
            out = cli("privacy", "--format", "json", "--data-dir", str(daemon.data_dir),
                      "--config", str(daemon.config_path))
            entries: list[dict[str, Any]] = json.loads(out.stdout)
            return entries if entries and all(e["status"] == status for e in entries) else []

        [entry] = wait_until(lambda: settled(edge, "requested"), 30, what="the edge's entry settled")
        assert entry["ids"]["relay_providers"] == ["gameanalytics"]
        [at_relay] = wait_until(lambda: settled(relay, "manual"), 30, what="the relay's own entry")
        assert (at_relay["provider"], at_relay["device_id"], at_relay["user_id"]) == ("gameanalytics", "pc-9",
                                                                                       "zoe")
        assert [e for e in relay.events() if e["device_id"] == "pc-9"] == []


def test_consent_given_at_the_edge_is_obeyed_at_the_relay(tmp_path: Path, sandboxes: Sandboxes) -> None:
    """A relay under `consent = "required"` holds what an edge forwards of a player until the edge, on its
    timer, tells it the player's consent: granted, the held event reaches the sandbox; then denied, the relay
    records the denial and holds none of the player's events."""
    sb = sandboxes
    with edge_and_relay(tmp_path, sb, '[privacy]\nconsent = "required"\n') as (relay, edge):
        with Client(edge.ingress, device_id="pc-7") as game:
            game.hello(user_id="kim", platform="windows", os_version="windows 10", engine="unity")
            game.request({"type": "event", "event": make_event("design", event_id="edge:held")})
            game.request({"type": "flush"})
            wait_until(lambda: [e for e in relay.events() if e["category"] == "design"], 60,
                       what="the event stored at the relay")
            assert sb.reached("kim") == []  # held there: the relay has no consent of the player yet
            game.request({"type": "consent", "analytics": "granted"})
            wait_until(lambda: sb.ga_events("kim"), 60, what="the held event once the relay knows the consent")
            game.request({"type": "consent", "analytics": "denied"})

            def relay_consent() -> list[tuple[str, str]]:
                with sqlite3.connect(relay.db_path) as db:
                    return db.execute("SELECT user_id, analytics FROM consent").fetchall()

            wait_until(lambda: relay_consent() == [("kim", "denied")], 30, what="the denial at the relay")
        assert [e for e in relay.events() if e["user_id"] == "kim"] == []


def test_a_purchase_awaiting_its_verdict_at_erasure_is_verified_then_erased(tmp_path: Path,
                                                                            sandboxes: Sandboxes) -> None:
    """The player may be owed the item: a purchase stored but not yet verified when they are forgotten is
    still verified (after a restart too), its verdict handed to the game, and then it leaves the store and
    the device's purchase topic."""
    sb = sandboxes
    receipt = "cmVjZWlwdC1mb3ItYS1mb3Jnb3R0ZW4tcGxheWVy"
    sb.staq.register_receipt(receipt, valid=True)
    h = InProcessBridge(tmp_path, {"staq": provider_spec("staq", sb._staq.url)})
    with h:
        game = h.hello(device_id="dev-bo", user_id="bo")
        h.stop()  # no verification yet
        purchase_id = game.purchase({"type": "purchase", "id": "p-owed", "store": "apple", "receipt": receipt,
                                     "price_usd": 0.99})
        assert game.forget()["providers"] == ["staq"]
        assert set(traces(h, "dev-bo")) == {"purchases", "erasures"}  # the pending purchase waits
        h.restart()
        h.dispatcher.nudge_purchases()
        verdict = h.verdict("dev-bo", purchase_id)
        assert verdict is not None and verdict["is_valid"] is True
        wait_until(lambda: h.published("purchase/dev-bo")["values"] == {}, what="the verdict off the device's topic")
        assert "purchases" not in traces(h, "dev-bo")  # erased before the topic was published again
        h.erase_pending()
        assert set(traces(h, "dev-bo")) == {"erasures"}
