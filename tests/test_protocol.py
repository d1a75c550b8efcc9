"""protocol.py on its own: the document's examples, and the checks' edges."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from bridge import protocol
from bridge.protocol import Code, ProtocolError

REPO = Path(__file__).resolve().parent.parent


def test_protocol_md_examples_are_what_the_encoder_produces() -> None:
    text = (REPO / "protocol.md").read_text()
    assert protocol.with_examples(text) == text, "protocol.md section 9 is stale: re-render it with with_examples()"
    for _, msg in protocol.EXAMPLES:
        assert protocol.hexdump(protocol.encode(msg)).splitlines()[0] in text


def test_every_limit_in_the_welcome_is_in_protocol_md() -> None:
    text = (REPO / "protocol.md").read_text()
    for name, value in protocol.LIMITS.items():
        assert f"`{name}` | {value}" in text or f"`{name}` | {value} " in text, name


def test_every_error_code_is_documented() -> None:
    text = (REPO / "protocol.md").read_text()
    codes = [v for k, v in vars(Code).items() if not k.startswith("_")]
    assert len(codes) == 14
    for code in codes:
        assert f"| `{code}` |" in text, code


@pytest.mark.parametrize("levels,ok", [(4, True), (5, False)])
def test_depth_limit_counts_fields_as_the_first_level(levels: int, ok: bool) -> None:
    value: object = 1
    for _ in range(levels - 1):  # maps inside `fields`, which is the first level
        value = {"k": value}
    event = {"id": "e", "category": "custom", "ts": 0, "fields": {"name": "n", "deep": value}}
    if ok:
        protocol.read_event(event, None)
    else:
        with pytest.raises(ProtocolError) as err:
            protocol.read_event(event, None)
        assert err.value.code == Code.INVALID_VALUE


def test_decode_refuses_trailing_bytes_and_non_maps() -> None:
    with pytest.raises(ProtocolError) as err:
        protocol.decode(msgpack.packb({"a": 1}) + msgpack.packb(2))
    assert err.value.code == Code.MALFORMED
    with pytest.raises(ProtocolError) as err:
        protocol.decode(msgpack.packb("text"))
    assert err.value.code == Code.NOT_A_MAP
