"""The staq provider against the local staq sandbox: device auth, custom events, purchases end to end.

The provider is driven in-process (tests/providers/inprocess.py); the daemon-level tests at the end keep
what needs the daemon process: a `purchase` request's reply (held for the verdict, a resend answered from the
store), a verdict reaching a client that comes back after a kill -9, the replies to bad purchases, and the
ingress's early word in its ack."""

from __future__ import annotations

import base64
import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bridge.client import recv_publication, subscribe
from bridge.providers.staq import google_play_signature_ok, load_public_key, ms_date, staq_json
from bridge.sandbox.api import Route
from bridge.sandbox.server import Request, Response, SandboxServer
from bridge.sandbox.staq import StaqSandbox
from tests.harness import Client, Daemon, make_event
from tests.providers.inprocess import InProcessBridge, provider_spec
from tests.sandboxes import provider_table, start_sandbox, wait_until

HELLO = {"platform": "android", "os_version": "android 14", "device": "pixel", "manufacturer": "google"}


def staq_daemon(workdir: Path, url: str, **overrides: object) -> Daemon:
    return Daemon(workdir, config=provider_table("staq", url, kind="staq", **overrides))


def in_process(workdir: Path, url: str, **overrides: Any) -> InProcessBridge:
    """The staq provider's dispatcher (its event lane and the purchase lane) in the test process."""
    return InProcessBridge(workdir, {"staq": provider_spec("staq", url, **overrides)})


def client_events(sb: StaqSandbox) -> list[dict]:
    return [e for e in sb.events() if not str(e.get("event", "")).startswith("server_")]


def staq_refs(bridge: Daemon | InProcessBridge) -> list[str]:
    with sqlite3.connect(bridge.db_path) as db:
        return [r[0] for r in db.execute("SELECT ref FROM provider_refs WHERE provider = 'staq' ORDER BY event_pk")]


def purchase(store: str = "apple", receipt: str | None = None, **fields: object) -> dict:
    msg = {"type": "purchase", "id": uuid.uuid4().hex, "store": store,
           "receipt": receipt or base64.b64encode(uuid.uuid4().bytes).decode(), "price_usd": 4.99}
    msg.update(fields)
    return msg


DATE_RE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def parse_ms_date(text: str) -> int:
    """The instant of a staq date, in ms since the epoch (the zone does not shift it)."""
    match = DATE_RE.fullmatch(text.replace("\\/", "/"))
    if not match:
        raise ValueError(f"not a /Date(ms±hhmm)/ value: {text!r}")
    return int(match.group(1))


# --- the date form ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("ms,offset,text", [(1330848000000, -480, "/Date(1330848000000-0800)/"),
                                            (0, 0, "/Date(0+0000)/"), (1795600000123, 330, "/Date(1795600000123+0530)/")])
def test_date_form_round_trips(ms: int, offset: int, text: str) -> None:
    assert ms_date(ms, offset) == text
    assert parse_ms_date(text) == ms
    assert parse_ms_date(text.replace("/", "\\/")) == ms  # as the JSON text shows it
    assert staq_json({"t": text}) == ('{"t":"' + text.replace("/", "\\/") + '"}').encode()
    assert json.loads(staq_json({"t": text})) == {"t": text}


def test_bad_dates_are_refused() -> None:
    for bad in ("/Date(abc)/", "Date(1)", "/Date(1+08)/"):
        with pytest.raises(ValueError):
            parse_ms_date(bad)


# --- events ----------------------------------------------------------------------------------------------

def test_custom_events_delivered_and_their_ids_kept(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(device_id="dev-s", **HELLO)
    with h:
        game.session_start()
        sent = [make_event("custom", name=f"quest_{i}", value=i, zone="north") for i in range(5)]
        game.events(sent)
        got = wait_until(lambda: len(client_events(sb)) == 5 and client_events(sb), what="5 staq events")
        # The ids are stored after staq's answer arrives, a moment after the sandbox has seen the events.
        refs = wait_until(lambda: len(staq_refs(h)) == 5 and staq_refs(h), what="5 staq ids stored")
    assert [e["event"] for e in got] == [f"quest_{i}" for i in range(5)]
    assert [e["value"] for e in got] == list(range(5))
    assert got[0]["metadata"] == {"zone": "north", "step": 3}  # the other fields ride in metadata
    assert [parse_ms_date(e["timestamp"]) for e in got] == [e["ts"] for e in sent]
    assert refs == [e["id"] for e in got] and len(set(refs)) == 5


def test_binary_fields_travel_as_base64(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        game.event(make_event("custom", name="snapshot", blob=b"\x00\xffgame-state"))
        [got] = wait_until(lambda: client_events(sb), what="the event with a binary field")
    assert got["metadata"]["blob"] == base64.b64encode(b"\x00\xffgame-state").decode()


def test_device_authorized_once_per_session(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(device_id="dev-a", **HELLO)
    with h:
        sids = []
        for session in range(2):
            game.session_start()
            for k in range(3):
                game.event(make_event("custom", name=f"s{session}e{k}"))
                n = 3 * session + k + 1  # each event delivered before the next is sent: a batch of its own
                wait_until(lambda: len(client_events(sb)) == n, what=f"event {n}")
            sids.append({e["sid"] for e in client_events(sb)[-3:]})
    assert len(sb.calls("events")) == 6  # six batches ...
    auths = sb.calls("auth")
    assert len(auths) == 2  # ... and one authorization per session, not one per batch
    assert len(sids[0]) == len(sids[1]) == 1 and sids[0] != sids[1]
    assert len({e["uid"] for e in client_events(sb)}) == 1  # the same device keeps its uid


def test_outage_then_recovery_loses_nothing_and_doubles_nothing(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    sb.faults.fail("events", status=503, count=3)
    sb.faults.drop("events", count=1)
    h = in_process(tmp_path, server.url, retry_base=0.01, retry_cap=0.05)  # what is proven is not the backoff
    game = h.hello(**HELLO)
    with h:
        for k in range(3):
            game.events([make_event("custom", name=f"o{k}_{i}") for i in range(20)])
        wait_until(lambda: len(client_events(sb)) >= 60, 20, what="everything after the outage")
        stats = wait_until(lambda: h.settled("staq"), what="the queue empty")
    names = [e["event"] for e in client_events(sb)]
    assert len(names) == len(set(names)) == 60
    assert stats["queued"] == 0 and stats["dead_lettered"] == 0
    assert sb.faults.fired()["events"] == 4  # every fault was met, and retried past


def test_wrong_app_secret_pauses_and_keeps_events(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    h = in_process(tmp_path, server.url, app_secret="wrong")
    game = h.hello(**HELLO)
    with h:
        game.event(make_event("custom"))
        stats = wait_until(lambda: (s := h.figures("staq")).get("paused") and s, what="the pause")
    assert "app_secret" in stats["paused"] and stats["queued"] >= 1
    assert not client_events(sb)


# --- purchases -------------------------------------------------------------------------------------------

def test_a_receipt_staq_refuses_gets_a_verdict_not_endless_retries(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    sb.faults.fail("iap_apple", status=400, count=1, body='{"error": "receipt is not a valid iOS receipt"}')
    good = base64.b64encode(b"good-after-a-refused-one").decode()
    sb.register_receipt(good, valid=True)
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        refused = game.buy(purchase())
        after = game.buy(purchase(receipt=good))  # the lane goes on past a refused purchase
    assert refused is not None and refused["is_valid"] is False
    assert "refused by staq (400): receipt is not a valid iOS receipt" in refused["reason"]
    assert after is not None and after["is_valid"] is True
    assert sb.faults.fired()["iap_apple"] == 1  # a verdict, not retried


def test_forged_google_play_receipt_is_refused_without_a_network_call(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.DER,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    data = json.dumps({"orderId": "GPA.1234", "productId": "gems_100"}).encode()
    receipt = base64.b64encode(data).decode()
    signature = base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA1())).decode()
    assert google_play_signature_ok(load_public_key(public), receipt, signature)
    sb.register_receipt(receipt, valid=True)
    forged = base64.b64encode(b"\0" * 256).decode()
    h = in_process(tmp_path, server.url, google_play_public_key=public)
    game = h.hello(**HELLO)
    with h:
        honest = game.buy(purchase("googleplay", receipt, signature=signature))
        fake = game.buy(purchase("googleplay", receipt, signature=forged))
        stats = h.figures("staq")
    assert honest is not None and honest["is_valid"] is True
    assert fake is not None and fake["is_valid"] is False and "forged" in fake["reason"]
    assert len(sb.purchases()) == 1 and stats["forged_receipts"] == 1


def test_answers_that_are_not_json_are_logged_and_retried_never_a_crash(tmp_path: Path, staq_sandbox,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sb, server = staq_sandbox
    receipt = base64.b64encode(b"garbled-answer").decode()
    sb.register_receipt(receipt, valid=True)
    sb.faults.fail("iap_apple", status=502, body="<html>gateway hiccup</html>", count=2)
    sb.faults.fail("events", status=502, body="not json either", count=1)
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        game.event(make_event("custom", name="after_garbage"))
        verdict = game.buy(purchase(receipt=receipt))
        wait_until(lambda: client_events(sb), what="the event after a 502 with a non-JSON body")
        stats = wait_until(lambda: h.settled("staq"), what="the batch finished")
    assert verdict is not None and verdict["is_valid"] is True  # retried past the two garbled answers
    assert sb.faults.fired() == {"iap_apple": 2, "events": 1} and stats["dead_lettered"] == 0
    assert "without isValid" in caplog.text and "request" in caplog.text


# --- delivery: limits, refusals, answers -----------------------------------------------------------------

def big_events(count: int) -> list[dict]:
    """Custom events of ~96 KB each (the protocol's string and field limits allow that much)."""
    return [make_event("custom", name=f"big_{i}", **{f"part{k}": "x" * 8000 for k in range(12)})
            for i in range(count)]


def dead_letters(bridge: Daemon | InProcessBridge) -> list[tuple[str, str, str]]:
    with sqlite3.connect(bridge.db_path) as db:
        return db.execute("SELECT d.code, d.reason, e.uid FROM dead_letters d JOIN events e ON e.pk = d.event_pk "
                          "WHERE d.requeued_at IS NULL ORDER BY d.pk").fetchall()


def test_a_batch_over_staqs_body_limit_is_split_and_an_event_too_large_alone_dead_lettered(tmp_path: Path,
                                                                                             staq_sandbox) -> None:
    sb, server = staq_sandbox
    sent = big_events(12)  # ~1.15 MB in one request: over the sandbox's (and our default) 1 MB
    h = in_process(tmp_path, server.url, interval=5.0)
    game = h.hello(**HELLO)
    for i in range(0, 12, 2):  # stored before the lane runs: no claim of it is under way while it is stored
        assert game.events(sent[i:i + 2])["stored"] == 2
    with h:
        h.flush()
        got = wait_until(lambda: len(client_events(sb)) == 12 and client_events(sb), 20, what="the split batch")
        sb.faults.fail("events", status=413, count=1)  # a staq whose limit is lower than ours
        game.events([make_event("custom", name=f"small_{i}") for i in range(3)])
        h.flush()
        wait_until(lambda: len(client_events(sb)) == 15, what="the small batch, split after its 413")
        sb.faults.fail("events", status=413, count=None)  # as staq answers an event over its limit
        alone = make_event("custom", name="too_large_alone")
        game.event(alone)
        h.flush()
        [letter] = wait_until(lambda: dead_letters(h), what="the dead letter")
        faulted = sb.faults.fired()["events"]
        sb.faults.clear()
        game.event(make_event("custom", name="after"))
        h.flush()
        wait_until(lambda: client_events(sb)[-1]["event"] == "after", what="the lane going on")
    assert sorted(e["event"] for e in got) == sorted(e["fields"]["name"] for e in sent)
    served = [(c["status"], c["count"]) for c in sb.calls("events")]  # faulted requests leave no call record
    assert served == [(200, 6), (200, 6), (200, 1), (200, 2), (200, 1)] and faulted == 2
    assert letter[0] == "too_large" and letter[2] == alone["id"]


def test_an_event_staq_refuses_is_bisected_out_and_stays_alone_when_requeued(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    sb.refuse_event("cheat_detected", "this event name is reserved")  # a staq rule no client can check
    sent = [make_event("custom", name=f"ok_{i}") for i in range(7)]
    sent.insert(5, make_event("custom", name="cheat_detected"))
    h = in_process(tmp_path, server.url, interval=5.0)
    game = h.hello(**HELLO)
    with h:
        game.events(sent)
        h.flush()
        [letter] = wait_until(lambda: dead_letters(h), what="the refused event's dead letter")
        wait_until(lambda: len(client_events(sb)) == 7, what="the seven others")
        calls = len(sb.calls("events"))
        assert h.dispatcher.views.delivery.requeue("staq") == 1  # as `engine-bridge dead-letters --requeue`
        h.flush()
        wait_until(lambda: len(sb.calls("events")) == calls + 1 and dead_letters(h), what="the requeued letter")
        [again] = dead_letters(h)
    assert [e["event"] for e in client_events(sb)] == [f"ok_{i}" for i in range(7)]  # in order, none twice
    assert letter[0] == "rejected" and "this event name is reserved" in letter[1] and letter[2] == sent[5]["id"]
    assert calls <= 1 + 2 * 3  # bisected: about 2·log2(8) requests, not one per event
    assert sb.calls("events")[-1]["count"] == 1 and again[2] == sent[5]["id"]  # sent back alone


def test_an_event_staq_would_refuse_is_dead_lettered_without_being_sent(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        bad = make_event("custom", name="inventory", value={"sword": 1})
        ack = game.events([make_event("custom", name="fine"), bad])
        [letter] = wait_until(lambda: dead_letters(h), what="the dead letter")
        wait_until(lambda: client_events(sb), what="the valid event")
    assert [(i["index"], i["id"], i["provider"]) for i in ack["invalid"]] == [(1, bad["id"], "staq")]
    assert letter[0] == "invalid" and letter[2] == bad["id"]
    assert [e["event"] for e in client_events(sb)] == ["fine"]
    assert all(call["status"] == 200 for call in sb.calls("events"))  # the refused one never went out


class CaptivePortal(StaqSandbox):
    """staq behind something that answers the first events posts 200 with a page of its own, storing nothing."""

    def __init__(self, garbled: int) -> None:
        super().__init__()
        self.garbled = garbled

    def serve_route(self, route: Route, request: Request, call: dict) -> Response:
        if route.name == "events" and self.garbled:
            self.garbled -= 1
            return Response(200, b"<html>Welcome to the hotel wifi</html>",
                            (("Content-Type", "text/html"), ("X-Request-Id", f"portal-{self.garbled}")))
        return super().serve_route(route, request, call)


def test_a_200_that_is_not_the_documented_id_list_is_retried_and_logged_with_its_request_id(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    portal = CaptivePortal(garbled=2)
    with SandboxServer(portal) as server:
        h = in_process(tmp_path, server.url)
        game = h.hello(**HELLO)
        with h:
            game.events([make_event("custom", name=f"e{i}") for i in range(3)])
            got = wait_until(lambda: len(client_events(portal)) == 3 and client_events(portal), what="the events")
            stats = wait_until(lambda: h.settled("staq"), what="the batch finished")
    assert [e["event"] for e in got] == ["e0", "e1", "e2"]
    assert portal.garbled == 0 and stats["dead_lettered"] == 0
    assert "portal-1" in caplog.text and "portal-0" in caplog.text


# --- sessions and players --------------------------------------------------------------------------------

def sessions_of(sb: StaqSandbox) -> list[list[str]]:
    """The client events grouped by staq session, in the order the sessions first appear."""
    by_sid: dict[str, list[str]] = {}
    for e in client_events(sb):
        by_sid.setdefault(e["sid"], []).append(e["event"])
    return list(by_sid.values())


def test_sessions_played_while_staq_was_unreachable_arrive_each_in_its_own_session(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    sb.faults.drop("*", count=None)
    h = in_process(tmp_path, server.url, interval=5.0)
    game = h.hello(**HELLO)
    for n in range(3):  # stored before the lane runs, to go in one batch
        game.session_start()
        game.events([make_event("custom", name=f"s{n}_{k}") for k in range(2)])
        game.session_end()
    with h:
        h.flush()
        wait_until(lambda: sb.faults.fired(), what="staq being tried while unreachable")
        sb.faults.clear()
        wait_until(lambda: len(client_events(sb)) == 6, 15, what="the three sessions' events")
    assert sessions_of(sb) == [["s0_0", "s0_1"], ["s1_0", "s1_1"], ["s2_0", "s2_1"]]
    assert len(sb.events(event="server_SESSION_START")) == 3


def test_a_token_renewal_after_a_401_keeps_the_events_in_their_session(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        game.session_start()
        game.events([make_event("custom", name=f"before_{k}") for k in range(2)])
        wait_until(lambda: len(client_events(sb)) == 2, what="the first events")
        assert sb.revoke_tokens() == 1
        game.events([make_event("custom", name=f"after_{k}") for k in range(2)])
        wait_until(lambda: len(client_events(sb)) == 4, what="the events after the token was revoked")
    assert sessions_of(sb) == [["before_0", "before_1", "after_0", "after_1"]]
    assert [call["status"] for call in sb.calls("events")] == [200, 401, 200]
    assert len(sb.calls("auth")) == 2


def test_a_dedicated_servers_players_are_staq_users_of_their_own(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    receipt = base64.b64encode(b"bought-by-p2").decode()
    sb.register_receipt(receipt, valid=True)
    h = in_process(tmp_path, server.url)
    game = h.hello(device_id="server-1", **HELLO)
    with h:
        for player in ("p1", "p2"):
            game.session_start(user_id=player, user_ip="203.0.113.7")
        game.events([{**make_event("custom", name=f"{p}_event"), "user_id": p} for p in ("p1", "p2", "p1")])
        bought = game.buy({**purchase(receipt=receipt), "user_id": "p2"})
        wait_until(lambda: len(client_events(sb)) == 3, what="both players' events")
    uids = {call["device_id"]: call["uid"] for call in sb.calls("auth")}
    assert set(uids) == {"p1", "p2"} and uids["p1"] != uids["p2"]
    assert {e["event"]: e["uid"] for e in client_events(sb)} == {"p1_event": uids["p1"], "p2_event": uids["p2"]}
    assert bought is not None and bought["is_valid"] is True and [p["uid"] for p in sb.purchases()] == [uids["p2"]]
    p2_sessions = {e["sid"] for e in client_events(sb) if e["uid"] == uids["p2"]}
    assert {p["sid"] for p in sb.purchases()} == p2_sessions  # in the buyer's own play session


# --- daemon level: the ingress's replies, kill -9, a returning subscriber -------------------------------

def test_purchase_verified_while_connected_and_duplicates_told(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    good = base64.b64encode(b"receipt-good").decode()
    bad = base64.b64encode(b"receipt-bad").decode()
    sb.register_receipt(good, valid=True)
    sb.register_receipt(bad, valid=False)
    with staq_daemon(tmp_path, server.url) as daemon, Client(daemon.ingress, device_id="buyer") as c:
        c.hello(**HELLO)
        first = c.request(purchase(receipt=good))
        assert (first["type"], first["state"], first["is_valid"], first["is_duplicate"]) == \
            ("purchase", "verified", True, False)
        again = c.request(purchase(receipt=good))
        assert (again["is_valid"], again["is_duplicate"]) == (True, True)
        refused = c.request(purchase(receipt=bad))
        assert refused["is_valid"] is False
        resend = c.request({**purchase(receipt=good), "id": first["id"]})  # a lost reply: same purchase
        assert (resend["state"], resend["is_duplicate"]) == ("verified", False)
        sub = subscribe(daemon.publish, "purchase/buyer")
        try:
            topic = wait_until(lambda: recv_publication(sub, 100), what="the verdicts topic")
        finally:
            sub.close(0)
    assert set(topic["values"]) == {first["id"], again["id"], refused["id"]}
    assert topic["values"][first["id"]]["is_valid"] is True
    assert len(sb.purchases()) == 3  # the resend was answered from the store


def test_purchase_made_offline_is_verified_later_and_reaches_the_returning_client(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    receipt = base64.b64encode(b"offline-receipt").decode()
    sb.register_receipt(receipt, valid=True)
    sb.faults.fail("iap_apple", status=503, count=None)
    daemon = staq_daemon(tmp_path, server.url).start()
    with Client(daemon.ingress, device_id="traveller", timeout_ms=10_000) as c:
        c.hello(**HELLO)
        reply = c.request(purchase(receipt=receipt))
    assert reply["state"] == "pending" and reply["is_valid"] is None
    daemon.kill()  # the game and the daemon go away before any verdict
    sb.faults.clear()
    daemon.start()
    sub = subscribe(daemon.publish, "purchase/traveller")  # the client comes back
    try:
        topic = wait_until(lambda: recv_publication(sub, 100), 15, what="the verdict after the restart")
    finally:
        sub.close(0)
        daemon.stop()
    assert topic["values"][reply["id"]]["is_valid"] is True


@pytest.fixture(scope="module")
def bad_purchase_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for every bad purchase: each is refused before anything is stored."""
    sb, server = start_sandbox("staq")
    try:
        with staq_daemon(tmp_path_factory.mktemp("bad-purchases"), server.url) as daemon:
            yield daemon
    finally:
        server.stop()


@pytest.mark.parametrize("fields,code,field", [
    ({"receipt": None}, "missing_field", "receipt"),
    ({"store": "steam"}, "invalid_value", "store"),
    ({"price_usd": "4.99"}, "wrong_type", "price_usd"),
    ({"price_usd": float("nan")}, "invalid_value", "price_usd"),
    ({"receipt": "r" * 65537}, "invalid_value", "receipt"),
    ({"store": "googleplay"}, "missing_field", "signature"),
    ({"id": "has space"}, "invalid_value", "id"),
    ({"receipt": "not base64!"}, "invalid_value", "receipt"),
    ({"store": "googleplay", "signature": "%%%"}, "invalid_value", "signature"),
])
def test_bad_purchases_get_a_clear_error_and_nothing_is_stored(bad_purchase_daemon: Daemon, fields: dict, code: str,
                                                               field: str) -> None:
    daemon = bad_purchase_daemon
    with Client(daemon.ingress) as c:
        c.hello(**HELLO)
        msg = purchase(**fields)
        if fields.get("receipt", "") is None:
            del msg["receipt"]
        reply = c.request(msg)
        assert c.request({"type": "ping"})["type"] == "pong"
    assert (reply["code"], reply["field"]) == (code, field)
    with sqlite3.connect(daemon.db_path) as db:
        assert db.execute("SELECT count(*) FROM purchases").fetchone()[0] == 0


def test_the_game_hears_in_its_ack_of_an_event_staq_will_refuse(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    with staq_daemon(tmp_path, server.url) as daemon, Client(daemon.ingress) as c:
        c.hello(**HELLO)
        bad = make_event("custom", name="inventory", value={"sword": 1})
        ack = c.request({"type": "events", "events": [make_event("custom", name="fine"), bad]})
        [letter] = wait_until(lambda: dead_letters(daemon), what="the dead letter")
        wait_until(lambda: client_events(sb), what="the valid event")
    assert ack["stored"] == 2 and ack["rejected"] == []
    [invalid] = ack["invalid"]
    assert (invalid["index"], invalid["id"], invalid["provider"]) == (1, bad["id"], "staq")
    assert "string, number, boolean or null" in invalid["message"]
    assert letter[0] == "invalid" and letter[2] == bad["id"]
    assert [e["event"] for e in client_events(sb)] == ["fine"]
    assert all(call["status"] == 200 for call in sb.calls("events"))  # the refused one never went out
