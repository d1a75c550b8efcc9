"""The bindings' conformance vectors: current with protocol.py, and true of the daemon's decoder and replies."""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from bridge import conformance, protocol
from bridge.conformance import Float32, from_json
from bridge.protocol import Code
from tests.harness import Client, Daemon
from tests.sandboxes import provider_table, start_sandbox

VECTORS = json.loads(conformance.VECTORS_PATH.read_text(encoding="utf-8"))


def test_vectors_file_is_what_protocol_py_generates() -> None:
    assert conformance.VECTORS_PATH.read_text(encoding="utf-8") == conformance.render(), (
        "engine_bindings/conformance/vectors.json is stale: run `python -m bridge.conformance`")


def test_check_flag_fails_on_a_stale_file(tmp_path: Path) -> None:
    path = tmp_path / "vectors.json"
    assert conformance.main(["--check", "--path", str(path)]) == 1  # missing
    assert conformance.main(["--path", str(path)]) == 0
    assert conformance.main(["--check", "--path", str(path)]) == 0
    path.write_text(path.read_text().replace(VECTORS["protocol_py_sha256"], "0" * 64))  # protocol.py edited
    assert conformance.main(["--check", "--path", str(path)]) == 1


def same(a: Any, b: Any) -> bool:
    """Equal with the same msgpack kinds and the same map order (1, 1.0 and True differ)."""
    if isinstance(a, dict):
        return (isinstance(b, dict) and list(a) == list(b)
                and all(same(x, y) for x, y in zip(a.values(), b.values())))
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    kind = float if isinstance(a, float) else type(a)
    if kind is not (float if isinstance(b, float) else type(b)):
        return False
    return a == b or a != a and b != b  # NaN equals NaN here


def all_trees() -> Iterator[tuple[str, dict[str, Any]]]:
    for section in ("msgpack", "requests", "replies", "publications"):
        for vector in VECTORS[section]:
            yield section, vector
    for vector in VECTORS["limits"]["cases"]:
        yield "limits", vector


@pytest.mark.parametrize("section,vector", list(all_trees()), ids=lambda v: v if isinstance(v, str) else v["name"])
def test_each_hex_decodes_to_its_tree_and_the_daemons_encoder_writes_it(section: str, vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    tree = from_json(vector["value"])
    assert same(msgpack.unpackb(frame, raw=False), tree)
    if not _holds_float32(tree):  # the daemon's encoder writes every float as float 64
        assert msgpack.packb(tree, use_bin_type=True) == frame
    if section != "msgpack":
        assert same(protocol.decode(frame), tree)


def _holds_float32(tree: Any) -> bool:
    if isinstance(tree, dict):
        return any(_holds_float32(v) for v in tree.values())
    if isinstance(tree, list):
        return any(_holds_float32(v) for v in tree)
    return isinstance(tree, Float32)


def test_every_request_reply_and_error_code_has_vectors() -> None:
    types = {from_json(v["value"])["type"] for v in VECTORS["requests"]}
    assert types == set(protocol.REQUEST_TYPES)
    replies = [from_json(v["value"]) for v in VECTORS["replies"]]
    assert {r["type"] for r in replies} == set(conformance.REPLY_TYPES.values()) | {"error"}
    codes = [v for k, v in vars(Code).items() if not k.startswith("_")]
    assert sorted(r["code"] for r in replies if r["type"] == "error") == sorted(codes)
    ack = next(r for r in replies if r["type"] == "ack" and r["rejected"] and r["invalid"])
    assert ack["invalid"][0]["provider"] == "gameanalytics"
    assert VECTORS["limits"]["values"] == protocol.LIMITS
    verdicts = [v["verdict"] for v in VECTORS["limits"]["cases"] + VECTORS["limits"]["frames"]]
    seen = {v.get("code") for v in verdicts} | {r["code"] for v in verdicts for r in v.get("rejected", [])}
    assert {Code.BATCH_TOO_LARGE, Code.INVALID_VALUE, Code.MALFORMED, Code.NOT_A_MAP, Code.UNKNOWN_TYPE,
            Code.UNSUPPORTED_VERSION, Code.WRONG_TYPE, Code.MISSING_FIELD} <= seen


# --- against a running daemon ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def staq_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with a purchase verifier (the staq sandbox), as the verdicts assume."""
    _, server = start_sandbox("staq")
    try:
        with Daemon(tmp_path_factory.mktemp("conformance"), config=provider_table("staq", server.url, "staq")) as d:
            yield d
    finally:
        server.stop()


def ask(client: Client, frame: bytes, rid: int | None) -> dict[str, Any]:
    """Send one frame and return its reply (one request in flight, so the next reply with its rid is it)."""
    client.send_raw(frame)
    while True:
        reply = client.recv(timeout_ms=10_000)
        if reply.get("rid") == rid:
            return reply


def observed(reply: dict[str, Any]) -> dict[str, Any]:
    """A reply in the form of a vector's verdict."""
    if reply["type"] == "ack":
        return {"type": "ack", "accepted": reply["stored"] + reply["duplicates"],
                "rejected": [{"index": r["index"], "code": r["code"]} for r in reply["rejected"]]}
    if reply["type"] == "error":
        out = {k: reply[k] for k in ("type", "code", "field") if k in reply}
        if "detail" in reply:
            out["detail"] = conformance.to_json(reply["detail"])
        return out
    return {"type": reply["type"]}


def test_the_daemon_answers_every_request_vector_with_its_verdict(staq_daemon: Daemon) -> None:
    received: dict[str, list[dict[str, Any]]] = {}
    cases = VECTORS["requests"] + VECTORS["limits"]["cases"]  # the requests first: hello opens the connection
    with Client(staq_daemon.ingress, device_id=conformance.DEVICE) as client:
        for vector in cases:
            rid = from_json(vector["value"])["rid"]
            reply = ask(client, bytes.fromhex(vector["hex"]), rid if 0 <= rid <= protocol.RID_MAX else None)
            assert observed(reply) == vector["verdict"], vector["name"]
            received.setdefault(reply["type"], []).append(reply)
        for vector in VECTORS["limits"]["frames"]:  # an error carries the frame's rid where it can be read
            frame = bytes.fromhex(vector["hex"])
            reply = ask(client, frame, protocol.readable_rid(frame))
            assert observed(reply) == vector["verdict"], vector["name"]
    # The daemon sends every field of each reply vector (a field it adds later is ignored by clients,
    # protocol.md section 2; one it drops would break the bindings that read it).
    for vector in VECTORS["replies"]:
        value = from_json(vector["value"])
        if value["type"] == "error":
            continue
        real = received[value["type"]][0]
        assert set(value) <= set(real), vector["name"]
        if value["type"] == "welcome":
            assert value["limits"] == real["limits"] and value["topics"] == real["topics"]


def test_the_daemon_sends_error_fields_as_the_vectors_have_them(staq_daemon: Daemon) -> None:
    vectors = {from_json(v["value"])["code"]: from_json(v["value"]) for v in VECTORS["replies"]
               if from_json(v["value"])["type"] == "error"}
    with Client(staq_daemon.ingress, device_id="conformance-errors") as client:
        hello_required = client.request({"type": "ping"})
        client.hello()
        no_session = client.request({"type": "session_end", "user_id": "nobody"})
        version = client.request({"type": "hello", "protocol": 9, "protocol_min": 9})
    for code, reply in ((Code.HELLO_REQUIRED, hello_required), (Code.NO_SESSION, no_session),
                        (Code.UNSUPPORTED_VERSION, version)):
        assert reply["code"] == code
        assert set(vectors[code]) <= set(reply), code
    assert version["detail"] == vectors[Code.UNSUPPORTED_VERSION]["detail"]
