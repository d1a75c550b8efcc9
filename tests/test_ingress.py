"""The ingress over real sockets: every message type, every bad input, acks after commit, duplicates."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq

from bridge import protocol
from tests.harness import Client, Daemon, make_event
from tests.sandboxes import wait_until


def stored_uids(daemon: Daemon | Since) -> list[str]:
    return [e["uid"] for e in daemon.events() if e["category"] in protocol.CATEGORIES]


# --- one daemon for the module --------------------------------------------------------------------------
# A daemon boot is most of what a test here costs. The tests of a module run one after another on a worker
# (pytest-xdist or not), each talking as devices of its own, and each reads only the events stored since it
# began: exactly what a daemon started for it alone would hold. The test that reads the daemon's counters
# gets a daemon of its own.

@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("ingress")) as d:
        yield d


class Since:
    """The shared daemon as one test sees it: its events are those stored since the test began."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.ingress = daemon.ingress
        self.db_path = daemon.db_path
        self.proc = daemon.proc
        self.first_pk = max((e["pk"] for e in daemon.events()), default=0) + 1

    def events(self) -> list[dict]:
        return [e for e in self.daemon.events() if e["pk"] >= self.first_pk]

    def log(self) -> str:
        return self.daemon.log()


@pytest.fixture
def daemon(shared_daemon: Daemon) -> Since:
    """In this module `daemon` is the shared one, as the test sees it (conftest's is a daemon of its own)."""
    return Since(shared_daemon)


@pytest.fixture
def client(daemon: Since) -> Iterator[Client]:
    """A player of its own for each test (sessions and devices are per player)."""
    with Client(daemon.ingress, device_id=f"dev-{uuid.uuid4().hex[:8]}") as c:
        assert c.hello()["type"] == "welcome"
        yield c


@pytest.fixture
def own_client(tmp_path: Path) -> Iterator[Client]:
    """A player on a daemon of its own, whose [configs] are the topic config/local."""
    with Daemon(tmp_path, config='[configs]\ndifficulty = "normal"\nmax_lives = 3\n') as d, \
            Client(d.ingress, device_id="dev-1") as c:
        assert c.hello()["type"] == "welcome"
        yield c


# --- round trips ----------------------------------------------------------------------------------------

def test_hello_welcome_carries_version_time_limits_and_topics(daemon: Since) -> None:
    with Client(daemon.ingress, device_id="dev-h") as c:
        before = int(time.time() * 1000)
        reply = c.hello(protocol=3, protocol_min=1, platform="windows", os_version="windows 10")
    assert reply["type"] == "welcome"
    assert reply["protocol"] == 1
    assert before - 1000 <= reply["server_time"] <= int(time.time() * 1000) + 1000
    assert reply["limits"]["max_batch_events"] == protocol.MAX_BATCH_EVENTS
    assert reply["topics"] == ["config/", "purchase/dev-h"]
    assert reply["session"] is None
    with Client(daemon.ingress, device_id="dev-h-upper") as c:
        assert c.hello(platform="WebGL")["type"] == "welcome"  # sent once the device row has committed
    with sqlite3.connect(daemon.db_path) as db:
        platform = db.execute("SELECT platform FROM devices WHERE device_id = 'dev-h-upper'").fetchone()[0]
    assert platform == "webgl"  # lower case, as providers want it


def test_protocol_md_examples_are_what_the_daemon_answers(daemon: Since) -> None:
    """Section 9's requests, sent as they are: each reply is its example (the clock and the version aside, and
    the welcome's `limits` and `topics`, which the example leaves out). Its error example was once an event's
    error that the daemon never sends (an event that fails the checks comes back in its ack's `rejected`)."""
    requests = [msg for _, msg in protocol.EXAMPLES if msg["type"] in protocol.REQUEST_TYPES]
    replies = {msg["rid"]: msg for _, msg in protocol.EXAMPLES if msg["type"] not in protocol.REQUEST_TYPES}
    assert len(requests) == len(replies) == 4
    with Client(daemon.ingress) as c:
        for request in requests:
            real, example = c.request(dict(request)), replies[request["rid"]]
            same = [k for k in example if k not in ("server_time", "daemon_version")]
            assert {k: real[k] for k in same} == {k: example[k] for k in same}, request


@pytest.mark.parametrize("category", protocol.CATEGORIES)
def test_every_category_round_trips_into_the_store(daemon: Since, client: Client, category: str) -> None:
    event = make_event(category)
    reply = client.request({"type": "event", "event": event})
    assert reply == {"type": "ack", "rid": reply["rid"], "stored": 1, "duplicates": 0, "rejected": [],
                     "invalid": []}
    [row] = [e for e in daemon.events() if e["uid"] == event["id"]]
    assert row["category"] == category
    assert row["fields"] == event["fields"]
    assert row["client_ts"] == event["ts"]
    assert row["device_id"] == client.device_id and row["user_id"] == client.device_id and row["game_build"] == "dev"
    assert row["session_id"] is not None


def test_batch_is_stored_in_order(daemon: Since, client: Client) -> None:
    batch = [make_event("design", event_id=f"level:{i}") for i in range(300)]
    reply = client.request({"type": "events", "events": batch})
    assert (reply["stored"], reply["duplicates"], reply["rejected"]) == (300, 0, [])
    assert stored_uids(daemon) == [e["id"] for e in batch]


def test_ack_only_after_commit(daemon: Since, client: Client) -> None:
    """Every acknowledged event is already visible to another connection of the store."""
    db = sqlite3.connect(daemon.db_path)
    for i in range(50):
        batch = [make_event("resource") for _ in range(20)]
        assert client.request({"type": "events", "events": batch})["stored"] == 20
        ids = [e["id"] for e in batch]
        marks = ",".join("?" * len(ids))
        found = db.execute(f"SELECT count(*) FROM events WHERE uid IN ({marks})", ids).fetchone()[0]
        assert found == 20, f"batch {i}: acked but only {found} of 20 committed"
    db.close()


def test_duplicate_ids_are_stored_once_and_acked_again(daemon: Since, client: Client) -> None:
    batch = [make_event("design") for _ in range(10)]
    assert client.request({"type": "events", "events": batch})["stored"] == 10
    again = client.request({"type": "events", "events": batch[:5] + [make_event("design")]})
    assert (again["stored"], again["duplicates"]) == (1, 5)
    # the same id twice inside one batch: one stored, one duplicate
    twin = make_event("error")
    reply = client.request({"type": "events", "events": [twin, dict(twin)]})
    assert (reply["stored"], reply["duplicates"]) == (1, 1)
    uids = stored_uids(daemon)
    assert len(uids) == len(set(uids)) == 12


def test_the_same_event_twice_in_one_batch_is_stored_once_as_first_sent(daemon: Since, client: Client) -> None:
    """protocol.md section 4.3: the first copy is stored, a later one is a duplicate whatever its fields; a copy
    the checks refuse is rejected, not a duplicate; the same id at another ts is another event."""
    first = make_event("design", value=1.0)
    again = {**first, "fields": {**first["fields"], "value": 2.0}}
    refused = {**first, "fields": {"event_id": 5}}
    later = {**first, "ts": first["ts"] + 1}
    reply = client.request({"type": "events", "events": [refused, first, again, later]})
    assert (reply["stored"], reply["duplicates"], [r["index"] for r in reply["rejected"]]) == (2, 1, [0]), reply
    rows = [(e["client_ts"], e["fields"]["value"]) for e in daemon.events() if e["uid"] == first["id"]]
    assert rows == [(first["ts"], 1.0), (first["ts"] + 1, 1.0)]


def test_a_resend_after_a_reconnect_is_acknowledged_as_duplicates(daemon: Since, client: Client) -> None:
    """The resend keeps its rid (it may take another: the daemon only echoes it); its ack counts every event
    stored before as a duplicate, and the reply to the first send, if it was lost with the connection, is not
    needed."""
    batch = [make_event("design") for _ in range(5)]
    assert client.request({"type": "events", "rid": 900, "events": batch})["stored"] == 5
    with Client(daemon.ingress, device_id=client.device_id) as again:
        again.hello()
        resent = again.request({"type": "events", "rid": 900, "events": batch + [make_event("design")]})
    assert (resent["rid"], resent["stored"], resent["duplicates"]) == (900, 1, 5)
    assert len(stored_uids(daemon)) == 6


def test_duplicates_inside_one_burst_from_two_requests(daemon: Since, client: Client) -> None:
    """Two requests in flight with the same event: exactly one of them stores it."""
    event = make_event("design")
    rids = [client.send({"type": "event", "event": event}) for _ in range(2)]
    replies = {r["rid"]: r for r in (client.recv(), client.recv())}
    assert sorted(replies) == sorted(rids)
    assert sorted((r["stored"], r["duplicates"]) for r in replies.values()) == [(0, 1), (1, 0)]


def test_same_event_id_on_two_devices_is_two_events(daemon: Since) -> None:
    event = make_event("design")
    for device in ("a", "b"):
        with Client(daemon.ingress, device_id=device) as c:
            c.hello()
            assert c.request({"type": "event", "event": event})["stored"] == 1
    assert stored_uids(daemon).count(event["id"]) == 2


def test_sessions_start_end_and_numbering(daemon: Since, client: Client) -> None:
    first = client.request({"type": "session_start"})
    assert first["type"] == "session" and first["session_num"] == 1 and first["ended_at"] is None
    assert uuid.UUID(first["session_id"]).version == 4
    ev = make_event("design")
    client.request({"type": "event", "event": ev})
    # a second of the daemon's clock (this machine's) since the session started
    wait_until(lambda: time.time() * 1000 >= first["started_at"] + 1000, what="a second into the session")
    ended = client.request({"type": "session_end"})
    assert ended["session_id"] == first["session_id"] and ended["length"] >= 1
    assert client.request({"type": "session_end"})["code"] == "no_session"
    second = client.request({"type": "session_start"})
    assert second["session_num"] == 2
    rows = daemon.events()
    assert [r["session_id"] for r in rows if r["uid"] == ev["id"]] == [first["session_id"]]
    markers = [(r["category"], r["session_id"]) for r in rows if r["category"].startswith("session_")]
    assert markers == [("session_start", first["session_id"]), ("session_end", first["session_id"]),
                       ("session_start", second["session_id"])]
    with Client(daemon.ingress, device_id=client.device_id) as again:
        assert again.hello()["session"]["session_id"] == second["session_id"]


@pytest.mark.parametrize("start,end,length", [
    (1_700_000_000_000, 1_700_000_002_999, 2),  # whole seconds, rounded down
    (1_700_000_000_000, 1_700_000_000_999, 0),
    (1_700_000_000_000, 1_699_999_000_000, 0),  # an end before the start (client clocks): 0
    (0, 2**63 - 1, 2**31 - 1),  # at most 2^31-1
])
def test_session_length_is_whole_seconds_between_the_two_ts(client: Client, start: int, end: int,
                                                            length: int) -> None:
    opened = client.request({"type": "session_start", "ts": start})
    ended = client.request({"type": "session_end", "ts": end})
    assert (opened["started_at"], ended["ended_at"], ended["length"]) == (start, end, length)


def test_server_mode_sessions_per_user(daemon: Since, client: Client) -> None:
    a = client.request({"type": "session_start", "user_id": "player-a", "user_ip": "203.0.113.7"})
    b = client.request({"type": "session_start", "user_id": "player-b"})
    assert a["session_id"] != b["session_id"] and a["user_id"] == "player-a"
    ev = make_event("design")
    ev["user_id"] = "player-b"
    client.request({"type": "event", "event": ev})
    [row] = [r for r in daemon.events() if r["uid"] == ev["id"]]
    assert (row["user_id"], row["session_id"]) == ("player-b", b["session_id"])
    with sqlite3.connect(daemon.db_path) as db:
        ip = db.execute("SELECT user_ip FROM sessions WHERE session_id = ?", (a["session_id"],)).fetchone()[0]
    assert ip == "203.0.113.7"


def test_ping_flush_stats_configs(own_client: Client) -> None:
    """On a daemon of its own: the counters it reads are the daemon's, not the test's."""
    client = own_client
    assert client.request({"type": "ping"})["type"] == "pong"
    client.request({"type": "events", "events": [make_event("ads") for _ in range(3)]})
    flushed = client.request({"type": "flush"})
    assert flushed["type"] == "flushed" and flushed["queued"] >= 0
    stats = client.request({"type": "stats"})
    assert stats["type"] == "stats"
    assert stats["stored"] == 3 and stats["received"] == 3 and stats["clients"] >= 1
    assert stats["store"]["events"] >= 3
    configs = client.request({"type": "configs"})
    assert configs["topics"]["config/local"]["values"] == {"difficulty": "normal", "max_lives": 3}
    assert client.request({"type": "configs", "prefix": "nothing/"})["topics"] == {}


def test_purchase_is_not_configured_yet(client: Client) -> None:
    reply = client.request({"type": "purchase", "id": "p1", "store": "apple", "receipt": "x"})
    assert reply["code"] == "not_configured"


def test_req_socket_clients_are_served(daemon: Since) -> None:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.linger = 0
    sock.connect(daemon.ingress)
    try:
        sock.send(msgpack.packb({"type": "hello", "rid": 9, "protocol": 1, "engine": "custom", "binding": "req",
                                 "binding_version": "1", "game_build": "1", "device_id": "req-dev"}))
        assert sock.poll(5000)
        assert msgpack.unpackb(sock.recv())["type"] == "welcome"
    finally:
        sock.close(0)


# --- bad input ------------------------------------------------------------------------------------------

BAD_FRAMES = [
    (b"\xc1", "malformed", None),
    (msgpack.packb({"type": "ping", "rid": 1}) + b"\x01", "malformed", None),
    (msgpack.packb([1, 2, 3]), "not_a_map", None),
    (msgpack.packb({"rid": 4}), "missing_field", "type"),
    (msgpack.packb({"type": 5, "rid": 5}), "wrong_type", "type"),
    (msgpack.packb({"type": "ping"}), "missing_field", "rid"),
    (msgpack.packb({"type": "ping", "rid": -1}), "invalid_value", "rid"),
    (msgpack.packb({"type": "ping", "rid": "x"}), "wrong_type", "rid"),
    (msgpack.packb({"type": "ping", "rid": None}), "missing_field", "rid"),  # nil is absent
    (msgpack.packb({"type": "teleport", "rid": 6}), "unknown_type", "type"),
    (msgpack.packb({"type": "events", "rid": 7}), "missing_field", "events"),
    (msgpack.packb({"type": "events", "rid": 8, "events": {}}), "wrong_type", "events"),
    (msgpack.packb({"type": "events", "rid": 9, "events": []}), "invalid_value", "events"),
    (msgpack.packb({"type": "event", "rid": 10, "event": 3}), "wrong_type", "event"),
    (msgpack.packb({"type": "events", "rid": 11, "events": [{}] * 1001}), "batch_too_large", "events"),
    (msgpack.packb({"type": "session_start", "rid": 12, "user_id": 7}), "wrong_type", "user_id"),
    (b"\x81\xa4type" + msgpack.packb("x" * (300 * 1024)), "too_large", None),
    (b"\x83\xa4type\xa4ping\xa3rid\x01\x91\x01\x02", "malformed", None),  # an array as a map key
    (b"\x83\xa4type\xa4ping\xa3rid\x01\x81\x01\x02\x03", "malformed", None),  # a map as a map key
    (msgpack.packb({"type": "session_start", "rid": 13, "ts": 2**63}), "invalid_value", "ts"),
    (msgpack.packb({"type": "session_start", "rid": 14, "ts": 2**64 - 1}), "invalid_value", "ts"),
    (msgpack.packb({"type": "session_end", "rid": 15, "ts": 2**63}), "invalid_value", "ts"),
    (msgpack.packb({"type": "ping", "rid": 2**64 - 1}), "invalid_value", "rid"),
]


@pytest.mark.parametrize("frame,code,field", BAD_FRAMES, ids=[c + ":" + str(f) for _, c, f in BAD_FRAMES])
def test_bad_frames_get_a_clear_error_and_the_daemon_keeps_serving(client: Client, frame: bytes, code: str,
                                                                   field: str | None) -> None:
    client.send_raw(frame)
    reply = client.recv()
    assert reply["type"] == "error" and reply["code"] == code, reply
    assert reply["message"]
    if field is not None:
        assert reply["field"] == field
    assert client.request({"type": "event", "event": make_event()})["stored"] == 1


BAD_EVENTS = [
    ({"ts": 2**63}, "invalid_value"),
    ({"ts": 2**64 - 1}, "invalid_value"),
    ({"fields": {"event_id": "a:b", "value": 2**64 - 1}}, "invalid_value"),
    ({"fields": {"event_id": "a:b", "when": msgpack.Timestamp(1_700_000_000)}}, "wrong_type"),
    ({"fields": {"event_id": "a:b", "blob": msgpack.ExtType(7, b"\x00\x01")}}, "wrong_type"),
    ({"fields": {"event_id": "a:b", "deep": {"list": [msgpack.ExtType(1, b"")]}}}, "wrong_type"),
]


@pytest.mark.parametrize("change,code", BAD_EVENTS, ids=[str(c) for c, _ in BAD_EVENTS])
def test_events_the_store_cannot_hold_are_rejected_alone(shared_daemon: Daemon, client: Client,
                                                        change: dict, code: str) -> None:
    """A 2^63 `ts` once left the ingress unresponsive; an extension type once reached providers."""
    bad = {**make_event("design"), **change}
    good = make_event("design")
    frame = msgpack.packb({"type": "events", "rid": 77, "events": [bad, good]}, datetime=False)
    client.send_raw(frame)
    reply = client.recv()
    assert (reply["stored"], [(r["index"], r["code"]) for r in reply["rejected"]]) == (1, [(0, code)]), reply
    uids = stored_uids(shared_daemon)
    assert good["id"] in uids and bad["id"] not in uids


def test_no_bad_input_left_a_traceback(shared_daemon: Daemon, client: Client) -> None:
    for frame, _, _ in BAD_FRAMES:
        client.send_raw(frame)
        assert client.recv()["type"] == "error"
    assert client.request({"type": "ping"})["type"] == "pong"
    assert "Traceback" not in shared_daemon.log()


def test_rid_is_echoed_in_errors_when_readable(client: Client) -> None:
    reply = client.request({"type": "teleport"})
    assert reply["rid"] is not None and reply["code"] == "unknown_type"


# --- the rid of a message refused whole (protocol.md section 3) -----------------------------------------

TOO_LARGE = msgpack.packb({"type": "events", "rid": 41, "events": [make_event(name="x" * 100)] * 3000})


@pytest.mark.parametrize("frame,code,rid", [
    (TOO_LARGE, "too_large", 41),  # over max_message_bytes, but it decodes
    (TOO_LARGE[:-1000], "too_large", 41),  # ... or its start does
    (b"\x81\xa4type" + msgpack.packb("x" * (300 * 1024)), "too_large", None),  # no rid in it
    (msgpack.packb({"type": "ping", "rid": 42}) + b"\x01", "malformed", 42),
    (b"\x83\xa4type\xa4ping\xa3rid\x2b\x91\x01\x02", "malformed", 43),  # an array key after the rid
    (b"\x82\xa4type\xa4ping\xa3rid", "malformed", None),
    (msgpack.packb({"type": "ping", "rid": 2**32}) + b"\x01", "malformed", None),
], ids=["too_large", "too_large cut short", "too_large without rid", "two values", "array key",
        "cut before the rid", "rid out of range"])
def test_a_message_refused_whole_carries_its_rid_when_it_can_be_read(client: Client, frame: bytes, code: str,
                                                                   rid: int | None) -> None:
    """A client with a window of requests in flight matches an error by its rid: nil left it guessing."""
    client.send_raw(frame)
    reply = client.recv()
    assert (reply["type"], reply["code"], reply["rid"]) == ("error", code, rid), reply


def test_a_message_of_several_frames_carries_the_first_frames_rid(client: Client) -> None:
    client.sock.send_multipart([msgpack.packb({"type": "ping", "rid": 44}), b"\x01"])
    reply = client.recv()
    assert (reply["code"], reply["rid"], reply["message"]) == ("malformed", 44, "a message must be one frame; got 2")
    client.sock.send_multipart([b"\xc1", msgpack.packb({"type": "ping", "rid": 45})])
    assert (client.recv()["rid"]) is None  # the rid of a later frame is not read


def test_a_req_client_sending_several_frames_gets_its_error(daemon: Since) -> None:
    """The delimiter goes back with the error: without it a REQ socket drops the reply and waits for ever."""
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.linger = 0
    sock.connect(daemon.ingress)
    try:
        sock.send_multipart([msgpack.packb({"type": "ping", "rid": 46}), b"\x01"])
        assert sock.poll(5000), "no reply"
        reply = msgpack.unpackb(sock.recv())
        assert (reply["code"], reply["rid"]) == ("malformed", 46)
    finally:
        sock.close(0)


def test_nil_is_a_field_left_out_in_every_request(daemon: Since) -> None:
    """protocol.md section 2: nil for a field is the field left out (its default), never wrong_type."""
    with Client(daemon.ingress, device_id=f"dev-{uuid.uuid4().hex[:8]}") as c:
        nils = dict.fromkeys(("protocol_min", "engine_version", "user_id", "platform", "os_version", "device",
                              "manufacturer", "role"))
        assert c.hello(**nils)["type"] == "welcome"
        opened = c.request({"type": "session_start", "user_id": None, "user_ip": None, "ts": None,
                            **dict.fromkeys(protocol.PLAYER_DEVICE_MAX_CHARS)})
        assert (opened["type"], opened["user_id"]) == ("session", c.device_id), opened
        event = {**make_event("design", value=None, custom_01=None, free=None), "user_id": None}
        assert c.request({"type": "event", "event": event})["stored"] == 1
        assert c.request({"type": "configs", "prefix": None})["type"] == "configs"
        ended = c.request({"type": "session_end", "user_id": None, "ts": None})
        assert (ended["type"], ended["session_id"]) == ("session", opened["session_id"]), ended
        [row] = [e for e in daemon.events() if e["uid"] == event["id"]]
        assert row["fields"] == {"event_id": "ui:click:play", "free": None}  # named fields that are nil: left out
        assert (row["user_id"], row["session_id"]) == (c.device_id, opened["session_id"])


def test_requests_before_hello_are_refused(daemon: Since) -> None:
    with Client(daemon.ingress) as c:
        reply = c.request({"type": "event", "event": make_event()})
        assert reply["code"] == "hello_required"
        assert c.hello()["type"] == "welcome"
        assert c.request({"type": "event", "event": make_event()})["stored"] == 1


@pytest.mark.parametrize("overrides,code,field", [
    ({"protocol": 2, "protocol_min": 2}, "unsupported_version", "protocol"),
    ({"protocol": "1"}, "wrong_type", "protocol"),
    ({"device_id": ""}, "invalid_value", "device_id"),
    ({"device_id": None}, "missing_field", "device_id"),
    ({"game_build": "x" * 33}, "invalid_value", "game_build"),
])
def test_bad_hello(daemon: Since, overrides: dict, code: str, field: str) -> None:
    with Client(daemon.ingress) as c:
        reply = c.hello(**overrides)
    assert reply["code"] == code and reply["field"] == field
    if code == "unsupported_version":
        assert reply["detail"] == {"supported": [1]}


def test_mixed_batch_stores_the_good_and_lists_the_bad(daemon: Since, client: Client) -> None:
    good = [make_event(c) for c in protocol.CATEGORIES]
    bad = [
        ({**make_event("design"), "category": "telepathy"}, "invalid_value"),
        ({k: v for k, v in make_event("design").items() if k != "ts"}, "missing_field"),
        ({**make_event("design"), "ts": "yesterday"}, "wrong_type"),
        (make_event("business", amount=1.5), "wrong_type"),
        (make_event("design", value=float("nan")), "invalid_value"),
        ({**make_event("design"), "id": "x" * 65}, "invalid_value"),
        ({**make_event("design"), "id": "has space"}, "invalid_value"),
        (make_event("error", message="m" * (protocol.MAX_STRING_CHARS + 1)), "invalid_value"),
        (make_event("custom", deep={"a": {"b": {"c": {"d": 1}}}}), "invalid_value"),
        (make_event("resource", amount=None), "missing_field"),  # nil is absent
        ({**make_event("resource"), "fields": {"event_id": "Source:gold:x:y"}}, "missing_field"),
        ("not a map", "wrong_type"),
    ]
    batch = good[:3] + [b for b, _ in bad] + good[3:]
    reply = client.request({"type": "events", "events": batch})
    assert reply["stored"] == len(good)
    assert [(r["index"], r["code"]) for r in reply["rejected"]] == [(3 + i, code) for i, (_, code) in enumerate(bad)]
    assert all(r["message"] for r in reply["rejected"])
    assert sorted(stored_uids(daemon)) == sorted(e["id"] for e in good)


def test_one_bad_client_does_not_stop_another(daemon: Since, client: Client) -> None:
    with Client(daemon.ingress, device_id="noisy") as noisy:
        for _ in range(200):
            noisy.send_raw(b"\xc1\xc1\xc1")
        for _ in range(20):
            assert client.request({"type": "event", "event": make_event()})["stored"] == 1
        assert sum(1 for _ in range(200) if noisy.recv()["code"] == "malformed") == 200
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_a_tool_connection_reads_but_never_becomes_a_player(shared_daemon: Daemon) -> None:
    """`engine-bridge status` once said hello as device "cli", which GameRamp then logged in and polled."""
    with Client(shared_daemon.ingress, device_id="monitor-1") as tool:
        assert tool.hello(role="tool")["type"] == "welcome"
        assert tool.request({"type": "stats"})["type"] == "stats"
        assert tool.request({"type": "configs"})["type"] == "configs"
        refused = tool.request({"type": "event", "event": make_event()})
        assert (refused["type"], refused["code"], refused["field"]) == ("error", "invalid_value", "role")
        assert tool.request({"type": "session_start"})["code"] == "invalid_value"
        assert tool.hello(role="robot")["code"] == "invalid_value"
    with Client(shared_daemon.ingress, device_id="player-1") as game:
        game.hello()
        assert game.request({"type": "event", "event": make_event()})["stored"] == 1
    with sqlite3.connect(shared_daemon.db_path) as db:
        devices = {row[0] for row in db.execute("SELECT device_id FROM devices")}
    assert "player-1" in devices and "monitor-1" not in devices and "harness" not in devices


def test_a_storm_of_connections_never_stalls_the_other_clients(shared_daemon: Daemon) -> None:
    """libzmq's monitor blocks the I/O thread when its queue is full: left unread for seconds, 3,000
    connects made every client wait (a ping took 4.6 s). The bound is loose on purpose: a stall, not a speed."""
    worst = 0.0
    done = threading.Event()

    def probe() -> None:
        nonlocal worst
        with Client(shared_daemon.ingress, device_id="probe") as c:
            c.hello(role="tool")
            while not done.is_set():
                started = time.perf_counter()
                c.request({"type": "ping"})
                worst = max(worst, time.perf_counter() - started)

    prober = threading.Thread(target=probe)
    prober.start()
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 8192)  # closed sockets count until libzmq's reaper has run
    try:
        for _ in range(3000):
            sock = ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.connect(shared_daemon.ingress)
            sock.send(b"\x80")
            sock.close()
        with Client(shared_daemon.ingress, device_id="after-storm") as c:  # the storm has been accepted
            c.hello(role="tool")
            wait_for = time.monotonic() + 10
            while c.request({"type": "stats"})["clients"] > 3 and time.monotonic() < wait_for:
                time.sleep(0.05)  # until the storm's disconnects are counted: the probe ran through all of it
    finally:
        done.set()
        prober.join()
        ctx.term()
    assert worst < 2.0, f"a ping waited {worst:.2f} s during the storm"
