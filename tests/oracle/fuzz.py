"""Fuzz: seeded, structured garbage from several connections, with a well-behaved client beside it.

Each fuzz connection says a valid `hello` first, so that frames reach every handler, then sends one frame
at a time and waits for its reply: a reply is then always the reply to that frame, whatever its `rid`. The
frames come from generators (random bytes, truncations and bit flips of valid requests of every type, wrong
types, extreme integers and strings in every field, deep nesting, map keys no Python dict can hold,
extension types, multi-frame messages, oversize frames); a staq sandbox is configured so that `purchase`
reaches its checks instead of stopping at `not_configured`.

What must hold (protocol.md sections 2, 3, 6, 8):
- every message gets exactly one reply, within 2 s (7 s for `purchase`, whose reply may wait 5 s for the
  verdict), carrying the frame's `rid` when the frame had a readable one (section 3: a too-large or malformed
  frame's too, and a multi-frame message's first frame's), else nil. A multi-frame message is one message:
  one reply. The one exception is a frame over 16 MiB: the daemon drops the connection
  without a reply (section 8). A second reply to a frame shows as a reply whose rid is not the next
  frame's (rids are unique on a connection) or as a reply with no frame in flight;
- no reply is `internal` (a daemon bug, section 6);
- no `ack` counts as stored an event holding an extension type or an integer outside int64, and the store
  holds none, nor a `client_ts` outside 0..2^63-1;
- the ingress never stops answering; the well-behaved client never waits more than 2 s for an answer, its
  ack p99 stays under 250 ms (no stall: a quiet machine measures ~25 ms, a loaded one more; the figure is
  printed), and every one of its events is acknowledged and stored;
- no traceback in the daemon's log.

When the ingress stops answering, the daemon is restarted (a few times at most) so that the rest of the
frames still run, and at the end the frames that were in flight are replayed one by one on a fresh daemon
to say which one stops it. Set ORACLE_SEED to replay a run.
"""

from __future__ import annotations

import logging
import math
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import msgpack
import zmq

from bridge.protocol import CATEGORIES, HARD_MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES, readable_rid
from tests.harness import Daemon, make_event
from tests.oracle.common import Mode, Report, no_tracebacks, scenario_seed
from tests.oracle.probe import (ProbeResult, WellBehaved, answers_new_client, exceptions_in, ms, percentile,
                                stored_uids, summary)
from tests.sandboxes import provider_table, start_sandbox

CONNECTIONS = 4
REPLY_BOUND_S = 2.0
PURCHASE_BOUND_S = 7.0  # the daemon may hold a purchase reply 5 s for its verdict (protocol.md 4.9)
GAP_BOUND_S = 2.0
P99_BOUND_S = 0.250  # a stall, not a slow machine
BUDGET_S_PER_10K = 30.0  # streaming time allowed per 10,000 frames, restarts included
HANGS_PER_10K = 4  # restarts after a hang before the fuzzer gives up
TRIAGE_GRACE_S = 1.0  # a replayed frame waits for its reply this much longer than its bound
TRIAGE_BUDGET_S = 12.0
INT64 = (-(2**63), 2**63 - 1)
BASE_TS = 1_795_600_000_000
PACKER = msgpack.Packer(use_bin_type=True)


# --- frames the standard encoder cannot make ------------------------------------------------------------

@dataclass(frozen=True)
class Raw:
    """Bytes sent as they are: a str holding invalid UTF-8, nesting too deep for recursion, a lying header,
    an extension type of a reserved (negative) code, which msgpack.ExtType refuses to make."""

    data: bytes
    ext: bool = False


@dataclass(frozen=True)
class OddMap:
    """A map whose keys need not be str nor hashable (arrays, maps): what no Python dict can hold."""

    items: tuple[tuple[Any, Any], ...]


def pack(value: Any) -> bytes:
    """msgpack of a value that may hold `Raw` and `OddMap` nodes."""
    out: list[bytes] = []
    _pack_into(value, out)
    return b"".join(out)


def _pack_into(value: Any, out: list[bytes]) -> None:
    if isinstance(value, Raw):
        out.append(value.data)
    elif isinstance(value, (dict, OddMap)):
        items = list(_items(value))
        out.append(PACKER.pack_map_header(len(items)))
        for key, item in items:
            _pack_into(key, out)
            _pack_into(item, out)
    elif isinstance(value, list):
        out.append(PACKER.pack_array_header(len(value)))
        for item in value:
            _pack_into(item, out)
    else:
        out.append(PACKER.pack(value))


def _items(value: Any) -> Iterator[tuple[Any, Any]]:
    return iter(value.items) if isinstance(value, OddMap) else iter(value.items())


def raw_str(data: bytes) -> Raw:
    """A msgpack str (str32 header) holding any bytes, valid UTF-8 or not."""
    return Raw(b"\xdb" + len(data).to_bytes(4, "big") + data)


def ext(code: int, data: bytes) -> Raw:
    """An extension value of any code, -128..127 (fixext 1/2/4/8/16 when the size allows, else ext 8)."""
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    head = bytes([fixed[len(data)]]) if len(data) in fixed else bytes([0xC7, len(data)])
    return Raw(head + code.to_bytes(1, "big", signed=True) + data, ext=True)


def nested(depth: int, kind: str) -> Raw:
    """`depth` arrays (or maps under key "k") around the integer 1."""
    return Raw((b"\x91" if kind == "array" else b"\x81\xa1k") * depth + b"\x01")


# --- valid requests of every type ---------------------------------------------------------------------

def _event(category: str, k: int, n: int, suffix: str = "") -> dict[str, Any]:
    """A valid event, unique per connection and frame; its fields nest three levels (the slow checks)."""
    fields = {**make_event(category)["fields"], "custom_01": "c1",
              "custom_fields": {"k": 1, "deep": {"a": [1, 2.5, "s"]}}}
    return {"id": f"fz{k}-{n}{suffix}", "category": category, "ts": BASE_TS + n, "fields": fields,
            "user_id": f"fuzz-{k}"}


def hello_request(k: int) -> dict[str, Any]:
    return {"type": "hello", "rid": 0, "protocol": 1, "protocol_min": 1, "engine": "custom",
            "engine_version": "1.0", "binding": "oracle-fuzz", "binding_version": "1.0.0", "game_build": "1.0",
            "device_id": f"fuzz-{k}", "user_id": f"fuzz-{k}", "platform": "linux", "os_version": "linux 6",
            "device": "vm", "manufacturer": "none"}


def _purchase(store: str, k: int, n: int) -> dict[str, Any]:
    # a few ids per connection: a resent purchase is answered from the store at once (section 4.9)
    body = {"type": "purchase", "id": f"p{k}-{n % 3}", "store": store, "receipt": "cmVjZWlwdA==",
            "price_usd": 0.99, "status": "completed", "comment": "oracle", "metadata": {"sku": "gems", "n": 1},
            "user_id": f"fuzz-{k}"}
    if store == "googleplay":
        body["signature"] = "c2lnbmF0dXJl"
    return body


TEMPLATES: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "hello": lambda k, n: hello_request(k),
    **{f"event.{c}": (lambda c: lambda k, n: {"type": "event", "event": _event(c, k, n)})(c) for c in CATEGORIES},
    "events": lambda k, n: {"type": "events", "events": [_event("design", k, n, "a"), _event("business", k, n, "b")]},
    "session_start": lambda k, n: {"type": "session_start", "user_id": f"fuzz-{k}", "user_ip": "10.0.0.1",
                                   "ts": BASE_TS + n},
    "session_end": lambda k, n: {"type": "session_end", "user_id": f"fuzz-{k}", "ts": BASE_TS + n},
    "flush": lambda k, n: {"type": "flush"},
    "ping": lambda k, n: {"type": "ping"},
    "stats": lambda k, n: {"type": "stats"},
    "configs": lambda k, n: {"type": "configs", "prefix": "config/"},
    "purchase.apple": lambda k, n: _purchase("apple", k, n),
    "purchase.googleplay": lambda k, n: _purchase("googleplay", k, n),
}


def template(name: str, k: int, n: int) -> dict[str, Any]:
    """A valid request with rid n + 1 (unique on its connection), `type` and `rid` first."""
    body = TEMPLATES[name](k, n)
    return {"type": body.pop("type"), "rid": n + 1, **body}


Path_ = tuple[Any, ...]  # keys and indices from the request map down to a value


def all_paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every value's path inside a request, containers included."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in children:
        yield prefix + (key,)
        yield from all_paths(item, prefix + (key,))


def get_path(value: Any, path: Path_) -> Any:
    for key in path:
        value = value[key]
    return value


def with_value(msg: dict[str, Any], path: Path_, value: Any) -> Any:
    """The request with the value at `path` replaced (or added); the empty path replaces the whole frame."""
    if not path:
        return value
    get_path(msg, path[:-1])[path[-1]] = value
    return msg


def path_text(path: Path_) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".") or "<frame>"


def short(value: Any) -> str:
    text = f"Raw({len(value.data)} bytes)" if isinstance(value, Raw) else repr(value)
    return text if len(text) <= 48 else f"{text[:40]}...({len(text)} chars)"


# --- what must never be stored ------------------------------------------------------------------------

def is_ext(value: Any) -> bool:
    return isinstance(value, (msgpack.ExtType, msgpack.Timestamp)) or isinstance(value, Raw) and value.ext


def is_wide_int(value: Any) -> bool:
    return type(value) is int and not INT64[0] <= value <= INT64[1]


def holds(value: Any, test: Callable[[Any], bool]) -> bool:
    """Does a value, or anything inside it (map keys included), pass `test`?"""
    if test(value):
        return True
    if isinstance(value, (dict, OddMap)):
        return any(holds(k, test) or holds(v, test) for k, v in _items(value))
    return isinstance(value, list) and any(holds(item, test) for item in value)


def poison(msg: Any) -> tuple[tuple[int, str], ...]:
    """The events of an event/events request that no ack may count as stored, with the reason."""
    if not isinstance(msg, (dict, OddMap)):
        return ()
    top = {k: v for k, v in _items(msg) if isinstance(k, str)}
    kind = top.get("type")
    batch = [top.get("event")] if kind == "event" else top.get("events") if kind == "events" else None
    if not isinstance(batch, list):
        return ()
    found = []
    for index, ev in enumerate(batch):
        if holds(ev, is_ext):
            found.append((index, "ext"))
        if holds(ev, is_wide_int):
            found.append((index, "int64"))
    return tuple(found)


# --- generators ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """One fuzz message: its ZeroMQ frames, where it came from, and what its reply must respect."""

    generator: str
    note: str
    parts: tuple[bytes, ...]
    template: str = ""
    poison: tuple[tuple[int, str], ...] = ()

    @property
    def bound_s(self) -> float:
        return PURCHASE_BOUND_S if self.template.startswith("purchase") else REPLY_BOUND_S

    @property
    def rid(self) -> int | None:
        """The rid the reply must carry (or nil), as protocol.md section 3 reads it: the frame's, or after a
        REQ-style empty delimiter the next frame's; in a message of several, the first of them."""
        parts = self.parts[1:] if len(self.parts) > 1 and not self.parts[0] else self.parts
        return readable_rid(parts[0]) if parts else None

    def signature(self) -> str:
        return f"{self.generator}: {self.note}"

    def hex(self, limit: int = 160) -> str:
        shown = " | ".join(p[:limit].hex() + ("..." if len(p) > limit else "") for p in self.parts)
        return f"{shown} ({'+'.join(str(len(p)) for p in self.parts)} bytes)"


KIND_VALUES: dict[str, Any] = {"nil": None, "bool": True, "int": 7, "float": 1.5, "str": "x", "bin": b"\x00\x01",
                               "array": [1], "map": {"k": 1}}  # one value of each msgpack kind protocol.md allows
KIND_OF: dict[type, str] = {type(value): kind for kind, value in KIND_VALUES.items()}


EXTREME_INTS: list[Any] = [0, -1, 2**31, 2**32 - 1, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1, -(2**63),
                           math.nan, math.inf, -math.inf]
EXTREME_STRS: list[Any] = ["", "a" * 64, "a" * 65, "é" * 65, "🎮" * 64, "a" * 8192, "a" * 8193, "a" * 100_000,
                           "nul\x00inside", raw_str(b"\xff\xfe"), raw_str(b"ok\xc0\x80"), raw_str(b"\xed\xa0\x80")]
EXT_VALUES: list[Any] = [msgpack.ExtType(1, b""), ext(-128, b"\x00"), msgpack.ExtType(127, bytes(17)),
                         msgpack.ExtType(5, b"abcd"), ext(-2, b"x"), msgpack.Timestamp(0, 0),
                         msgpack.Timestamp(2**34, 999_999_999), ext(-1, bytes(8)), ext(-1, b"abc"),
                         [msgpack.ExtType(1, b"x")], {"k": msgpack.Timestamp(1, 0)}]
ODD_KEYS: list[Any] = [0, -1, 2**64 - 1, 1.5, None, True, b"bin", [1, 2], {"a": 1}, [], {},
                       msgpack.ExtType(1, b"k"), msgpack.Timestamp(0, 0), "", "k" * 65, raw_str(b"\xff")]
FIRST_KEY_AS_BIN = "first key as bin"
DEPTHS = [1, 3, 4, 5, 8, 64, 1023, 1024, 1025, 5000, 80_000]
LYING_HEADERS = [b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff",
                 b"\xc9\xff\xff\xff\xff\x01", b"\xde\xff\xff", b"\xdc\xff\xff", b"\x81\xa4type\xdb\x7f\xff\xff\xff",
                 b"\x82\xa4type\xa4ping\xa3rid\xdd\xff\xff\xff\xff", b"\xc7\xff\x05", b"\xd8\x05"]
MARKER_BYTES = [0xC1, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xD4, 0xD8, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xCF, 0xD3, 0xFF]
OVERSIZE = [MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES + 4096, 1 << 20, 4 << 20]


def _template_paths(name: str) -> list[Path_]:
    return list(all_paths(template(name, 0, 0)))


def _int_paths(name: str) -> list[Path_]:
    """Integer and number fields, every event field value, and a field the daemon does not know."""
    msg = template(name, 0, 0)
    return [p for p in all_paths(msg) if type(get_path(msg, p)) in (int, float) or "fields" in p[:-1]] + [("x_extra",)]


def _str_paths(name: str) -> list[Path_]:
    msg = template(name, 0, 0)
    return [p for p in all_paths(msg) if type(get_path(msg, p)) is str] + [("x_extra",)]


def _map_paths(name: str) -> list[Path_]:
    msg = template(name, 0, 0)
    return [(), *(p for p in all_paths(msg) if type(get_path(msg, p)) is dict)]


def _deep_paths(name: str) -> list[Path_]:
    """Where nesting can hide: an event's fields and custom_fields, purchase metadata, an unknown field."""
    msg = template(name, 0, 0)
    return [p + ("x",) for p in all_paths(msg) if p[-1] in ("fields", "custom_fields", "metadata")] + [("x_extra",)]


def _combos() -> dict[str, list[tuple[Any, ...]]]:
    """Every case of the structured generators: (template, path, value)."""
    names = list(TEMPLATES)
    return {
        "wrong_type": [(t, p, KIND_VALUES[kind]) for t in names for p in [(), *_template_paths(t)]
                       for kind in KIND_VALUES if not p or kind != KIND_OF[type(get_path(template(t, 0, 0), p))]],
        "extreme_int": [(t, p, v) for t in names for p in _int_paths(t) for v in EXTREME_INTS],
        "extreme_str": [(t, p, v) for t in names for p in _str_paths(t) for v in EXTREME_STRS],
        "ext_type": [(t, p, v) for t in names for p in [(), *_template_paths(t), ("x_extra",)] for v in EXT_VALUES],
        "odd_key": [(t, p, key) for t in names for p in _map_paths(t) for key in [*ODD_KEYS, FIRST_KEY_AS_BIN]],
        "deep": [(t, p, nested(d, kind)) for t in ("hello", "event.custom", "events", "configs", "purchase.apple")
                 for p in _deep_paths(t) for d in DEPTHS for kind in ("array", "map")]
               + [("ping", (), nested(d, kind)) for d in DEPTHS for kind in ("array", "map")],
    }


# Frames per 100, by generator; the structured ones walk their cases in a seeded order.
WEIGHTS = {"wrong_type": 20, "extreme_int": 12, "extreme_str": 12, "ext_type": 14, "odd_key": 6, "deep": 5,
           "truncate": 8, "bitflip": 8, "random": 8, "multi_frame": 6, "oversize": 1}


@dataclass
class Ctx:
    """What a generator needs for one frame: its connection, its place in the run, a seeded rng."""

    rng: random.Random
    k: int  # connection
    n: int  # frame number on this connection: ids, ts and rid derive from it
    index: int  # the case to take, for the structured generators


class Plan:
    """The frames of one run, fully decided by the seed: CONNECTIONS streams of frames."""

    def __init__(self, seed: int, total: int) -> None:
        self.seed = seed
        self.total = total
        self.combos = _combos()
        rng = random.Random(seed)
        for cases in self.combos.values():
            rng.shuffle(cases)
        self.used: dict[str, set[int]] = {name: set() for name in self.combos}

    def stream(self, k: int) -> Iterator[Frame]:
        rng = random.Random(f"{self.seed}:{k}")
        schedule = [name for name, weight in WEIGHTS.items() for _ in range(weight)]
        rng.shuffle(schedule)
        uses: Counter[str] = Counter()
        count = self.total // CONNECTIONS + (k < self.total % CONNECTIONS)
        for n in range(count):
            name = schedule[n % len(schedule)]
            ctx = Ctx(rng, k, n, uses[name] * CONNECTIONS + k)
            uses[name] += 1
            yield getattr(self, f"_{name}")(ctx) if name not in self.combos else self._structured(name, ctx)

    def coverage(self) -> str:
        return ", ".join(f"{name} {len(self.used[name])}/{len(cases)}" for name, cases in self.combos.items())

    def _structured(self, name: str, ctx: Ctx) -> Frame:
        cases = self.combos[name]
        case = ctx.index % len(cases)
        self.used[name].add(case)
        tname, path, value = cases[case]
        msg = template(tname, ctx.k, ctx.n)
        if name == "odd_key":
            msg = with_value(msg, path, _with_odd_key(get_path(msg, path), value))
            note = f"{tname}: key {short(value)} in {path_text(path)}"
        else:
            msg = with_value(msg, path, value)
            note = f"{tname}: {path_text(path)} = {short(value)}"
        return Frame(name, note, (pack(msg),), tname, poison(msg))

    def _valid(self, ctx: Ctx) -> tuple[str, bytes]:
        """A valid request, of each type in turn."""
        names = list(TEMPLATES)
        name = names[ctx.index % len(names)]
        return name, pack(template(name, ctx.k, ctx.n))

    def _truncate(self, ctx: Ctx) -> Frame:
        name, frame = self._valid(ctx)
        cut = ctx.rng.randrange(1, len(frame))
        return Frame("truncate", f"{name} cut to {cut} of {len(frame)} bytes", (frame[:cut],), name)

    def _bitflip(self, ctx: Ctx) -> Frame:
        name, frame = self._valid(ctx)
        data = bytearray(frame)
        rng = ctx.rng
        if rng.random() < 0.25:
            pos = rng.randrange(len(data))
            data[pos] = rng.choice(MARKER_BYTES)
            note = f"{name} byte {pos} set to {data[pos]:#04x}"
        else:
            flips = [(rng.randrange(len(data)), rng.randrange(8)) for _ in range(rng.randint(1, 4))]
            for pos, bit in flips:
                data[pos] ^= 1 << bit
            note = f"{name} bits flipped at {flips}"
        return Frame("bitflip", note, (bytes(data),), name)

    def _random(self, ctx: Ctx) -> Frame:
        rng = ctx.rng
        variant = ctx.n % 4
        if variant == 0:
            data, note = rng.randbytes(rng.randrange(1, 64)), "random bytes"
        elif variant == 1:
            data, note = bytes([0x80 | rng.randrange(16)]) + rng.randbytes(rng.randrange(64)), "map header, random"
        elif variant == 2:
            head = LYING_HEADERS[ctx.index % len(LYING_HEADERS)]
            data, note = head + rng.randbytes(rng.randrange(16)), f"length header lies: {head.hex()}"
        else:
            data, note = rng.randbytes(rng.randrange(64, 2048)), "random bytes, long"
        return Frame("random", note, (data,))

    def _multi_frame(self, ctx: Ctx) -> Frame:
        """One ZeroMQ message of several frames (or of an empty one): still one message, one reply."""
        name, valid = self._valid(ctx)
        junk = ctx.rng.randbytes(8)
        shapes: list[tuple[str, tuple[bytes, ...]]] = [
            ("empty, request (REQ style)", (b"", valid)), ("request, request", (valid, valid)),
            ("empty, empty, request", (b"", b"", valid)), ("request, empty", (valid, b"")),
            ("empty, request, request", (b"", valid, valid)), ("junk, request", (junk, valid)),
            ("request x3", (valid, valid, valid)), ("one empty frame", (b"",)), ("empty, empty", (b"", b"")),
            ("empty, junk", (b"", junk))]
        note, parts = shapes[ctx.index % len(shapes)]
        return Frame("multi_frame", f"{note} ({name})", parts, name if len(parts) == 2 and not parts[0] else "")

    def _oversize(self, ctx: Ctx) -> Frame:
        """Frames at and over max_message_bytes: a valid event padded by an unknown field, or zero bytes."""
        size = OVERSIZE[ctx.index % len(OVERSIZE)]
        if ctx.rng.random() < 0.5:
            return Frame("oversize", f"{size} zero bytes", (bytes(size),))
        msg = template("event.design", ctx.k, ctx.n)
        msg["x_pad"] = raw_str(b"")
        pad = size - len(pack(msg))
        msg["x_pad"] = raw_str(b"p" * pad)
        return Frame("oversize", f"event padded to {size} bytes", (pack(msg),), "event.design")


def _with_odd_key(target: dict[str, Any], key: Any) -> OddMap:
    items: list[tuple[Any, Any]] = list(target.items())
    if key == FIRST_KEY_AS_BIN and items:
        items[0] = (items[0][0].encode(), items[0][1])
    elif key != FIRST_KEY_AS_BIN:
        items.append((key, "v"))
    return OddMap(tuple(items))


# --- the run ------------------------------------------------------------------------------------------

@dataclass
class Findings:
    """Frames that broke a rule, grouped by what they were, with the first example of each group."""

    groups: dict[str, dict[str, tuple[int, Frame, str]]] = field(default_factory=dict)

    def add(self, rule: str, frame: Frame, detail: str) -> None:
        group = self.groups.setdefault(rule, {})
        count, first, first_detail = group.get(frame.signature(), (0, frame, detail))
        group[frame.signature()] = (count + 1, first, first_detail)

    def count(self, rule: str) -> int:
        return sum(count for count, _, _ in self.groups.get(rule, {}).values())

    def detail(self, rule: str, shown: int = 6) -> str:
        group = self.groups.get(rule, {})
        lines = [f"{self.count(rule)} frame(s) in {len(group)} group(s)"]
        for signature, (count, frame, detail) in list(group.items())[:shown]:
            lines.append(f"  [{count}x] {signature}\n      frame {frame.hex()}\n      {detail}")
        return "\n".join(lines)


@dataclass
class Hang:
    """The ingress stopped answering: the frames then in flight, and what the daemon logged before."""

    frames: list[Frame]
    logged: list[str]


class FuzzConn:
    """One fuzz DEALER: says hello, then has at most one frame in flight."""

    def __init__(self, k: int, frames: Iterator[Frame]) -> None:
        self.k = k
        self.frames = frames
        self.sock: zmq.Socket | None = None
        self.inflight: Frame | None = None
        self.sent_at = 0.0
        self.rehello = False  # a fuzzed hello went out: say the real one again before the next frame
        self.done = False

    def open(self, endpoint: str) -> bool:
        """A fresh connection and a valid hello; False if the daemon did not welcome it."""
        self.close()
        sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(endpoint)
        sock.send(pack(hello_request(self.k)))
        self.sock = sock
        return bool(sock.poll(3000)) and msgpack.unpackb(sock.recv_multipart()[-1]).get("type") == "welcome"

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
        self.sock = None
        self.inflight = None

    def send_next(self, control: Callable[[int], Frame]) -> Frame | None:
        """The next frame (a real hello first when a fuzzed one went out); None when the stream is over."""
        assert self.sock is not None
        frame = control(self.k) if self.rehello else next(self.frames, None)
        self.rehello = False
        if frame is None:
            self.done = True
            return None
        self.sock.send_multipart(frame.parts)
        self.inflight, self.sent_at = frame, time.monotonic()
        return frame


class Fuzzer:
    """Runs a plan against a daemon and keeps what the oracle needs."""

    def __init__(self, daemon: Daemon, plan: Plan) -> None:
        self.daemon = daemon
        self.plan = plan
        scale = plan.total / 10_000
        self.budget_s = BUDGET_S_PER_10K * scale
        self.max_hangs = max(2, round(HANGS_PER_10K * scale))
        self.conns = [FuzzConn(k, plan.stream(k)) for k in range(CONNECTIONS)]
        self.findings = Findings()
        self.sent: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.reply_latency: list[float] = []
        self.hangs: list[Hang] = []
        self._log_mark = 0  # how much of the daemon's log an earlier hang already accounted for
        self.extra_replies = 0
        self.elapsed = 0.0

    @staticmethod
    def control(k: int) -> Frame:
        return Frame("control", "the connection's real hello", (pack(hello_request(k)),), "hello")

    def run(self) -> None:
        started = time.monotonic()
        deadline = started + self.budget_s
        self._open_all()
        poller = self._poller()
        while time.monotonic() < deadline and not all(c.done for c in self.conns):
            for conn in self.conns:
                if conn.inflight is None and not conn.done:
                    frame = conn.send_next(self.control)
                    if frame is not None and frame.generator != "control":
                        self.sent[frame.generator] += 1
            for sock, _ in poller.poll(20):
                conn = next(c for c in self.conns if c.sock is sock)
                while sock.poll(0):
                    self._on_reply(conn, sock.recv_multipart())
            now = time.monotonic()
            overdue = [c for c in self.conns if c.inflight and now - c.sent_at > c.inflight.bound_s]
            if overdue:
                if not self._on_overdue(overdue):
                    break
                poller = self._poller()
        self.elapsed = time.monotonic() - started
        self._drain()

    def _open_all(self) -> None:
        for conn in self.conns:
            if not conn.open(self.daemon.ingress):
                raise RuntimeError(f"fuzz connection {conn.k} got no welcome")

    def _poller(self) -> zmq.Poller:
        poller = zmq.Poller()
        for conn in self.conns:
            poller.register(conn.sock, zmq.POLLIN)
        return poller

    def _on_reply(self, conn: FuzzConn, parts: list[bytes]) -> None:
        frame = conn.inflight
        if frame is None:
            self.extra_replies += 1
            return
        conn.inflight = None
        self.reply_latency.append(time.monotonic() - conn.sent_at)
        conn.rehello = frame.template == "hello" and frame.generator != "control"
        try:
            reply = msgpack.unpackb(parts[-1], raw=False)
            code = reply["code"] if reply.get("type") == "error" else reply["type"]
        except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException):
            self.findings.add("reply is a map with a type", frame, f"reply {parts[-1][:200].hex()}")
            return
        if frame.generator == "control":
            if code != "welcome":
                self.findings.add("a valid hello is welcomed", frame, f"reply {short(reply)}")
            return
        self.codes[code] += 1
        if code == "internal":
            self.findings.add("internal", frame, f"reply {reply.get('message')!r}")
        if reply.get("rid") != frame.rid:
            self.findings.add("rid", frame, f"reply rid {reply.get('rid')!r}, frame's readable rid {frame.rid!r}")
        if reply.get("type") == "ack":
            rejected = {r.get("index") for r in reply.get("rejected", [])}
            for index, why in frame.poison:
                if index not in rejected:
                    self.findings.add(f"ack {why}", frame, f"event {index} counted as stored: {short(reply)}")

    def _on_overdue(self, overdue: list[FuzzConn]) -> bool:
        """A frame got no reply in time: either the daemon hung (restart it) or it dropped that one reply.
        False when the fuzzer must stop (too many hangs)."""
        if answers_new_client(self.daemon.ingress, 1.0) is not None:
            for conn in overdue:
                frame = conn.inflight
                assert frame is not None  # overdue: in flight
                self.findings.add("reply in time", frame, f"no reply in {frame.bound_s:.0f} s; the daemon still "
                                  "answered a new client")
                conn.open(self.daemon.ingress)  # a late reply must not be taken for the next frame's
            return True
        log = self.daemon.log()
        self.hangs.append(Hang([c.inflight for c in self.conns if c.inflight is not None],
                               exceptions_in(log[self._log_mark:])))
        self._log_mark = len(log)
        self.daemon.kill()
        self.daemon.start()
        self._open_all()
        return len(self.hangs) < self.max_hangs

    def _drain(self) -> None:
        """Replies still coming: owed to a frame in flight, or one too many."""
        until = time.monotonic() + 0.5
        while time.monotonic() < until:
            for conn in self.conns:
                while conn.sock is not None and conn.sock.poll(0):
                    self._on_reply(conn, conn.sock.recv_multipart())
            time.sleep(0.02)
        for conn in self.conns:
            if conn.inflight is not None:
                self.findings.add("reply in time", conn.inflight, "no reply by the end of the run")
            conn.close()

    def hard_oversize(self) -> tuple[int, float | None]:
        """A frame over 16 MiB on its own connection: no reply is owed (the connection is dropped); a new
        client must still be answered. Returns (replies, seconds the new client took)."""
        sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        try:
            sock.connect(self.daemon.ingress)
            sock.send(pack(hello_request(99)))
            if sock.poll(2000):
                sock.recv_multipart()  # its welcome
            sock.send(bytes(HARD_MAX_MESSAGE_BYTES + 1))
            replies = 0
            while sock.poll(1000):
                sock.recv_multipart()
                replies += 1
        finally:
            sock.close(0)
        return replies, answers_new_client(self.daemon.ingress, 3.0)

    def triage(self) -> list[str]:
        """Each distinct frame in flight at a hang, replayed alone on a fresh connection (the quick ones first:
        a purchase may wait 5 s for its verdict): the ones that stop the ingress are named with the exceptions
        they leave in the log, innocent ones only counted, and those the budget left are listed."""
        verdicts: list[str] = []
        innocent = 0
        seen: set[str] = set()
        deadline = time.monotonic() + TRIAGE_BUDGET_S
        for number, hang in enumerate(self.hangs, 1):
            verdicts.append(f"hang {number}; exceptions logged before it: {hang.logged or 'none'}")
            named = fresh = 0
            for frame in sorted(hang.frames, key=lambda f: f.bound_s):
                if frame.signature() in seen:
                    continue
                seen.add(frame.signature())
                fresh += 1
                verdict = self._replay(frame) if time.monotonic() < deadline else "not replayed (triage budget)"
                if verdict is None:
                    innocent += 1
                else:
                    named += 1
                    verdicts.append(f"  {frame.signature()}\n      frame {frame.hex()}\n      {verdict}")
            if fresh and not named:
                verdicts.append("  every frame in flight is answered alone (a race, or state earlier frames built): "
                                + "; ".join(frame.signature() for frame in hang.frames))
        return verdicts + [f"{innocent} other frame(s) in flight answered at once when replayed alone"]

    def _replay(self, frame: Frame) -> str | None:
        """What one frame does alone to the daemon; None when it is answered in time."""
        log_before = len(self.daemon.log())
        conn = FuzzConn(100, iter([frame]))
        try:
            if not conn.open(self.daemon.ingress):
                return "not replayed: no welcome"
            conn.send_next(self.control)
            answered = conn.sock.poll(int((frame.bound_s + TRIAGE_GRACE_S) * 1000))  # type: ignore[union-attr]
            took = time.monotonic() - conn.sent_at
        finally:
            conn.close()
        if answered:
            return f"replayed alone: answered in {ms(took)} (slow)" if took > frame.bound_s else None
        alive = answers_new_client(self.daemon.ingress, 1.0) is not None
        raised = exceptions_in(self.daemon.log()[log_before:])
        if not alive:
            self.daemon.kill()
            self.daemon.start()
        return (f"replayed alone: no answer in {frame.bound_s + TRIAGE_GRACE_S:.0f} s; a new client "
                + ("was still answered" if alive else "got no answer either: this frame stops the ingress")
                + "".join(f"\n        log: {line}" for line in raised))


def scan_store(db_path: Path) -> dict[str, list[str]]:
    """Every stored event's fields decoded as msgpack: what no event may hold."""
    found: dict[str, list[str]] = {"ext": [], "int64": [], "client_ts": [], "undecodable": []}
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT pk, device_id, uid, client_ts, typeof(client_ts), fields FROM events")
        for pk, device_id, uid, client_ts, ts_type, blob in rows:
            where = f"pk {pk} {device_id}/{uid}"
            if ts_type != "integer" or not 0 <= client_ts <= INT64[1]:
                found["client_ts"].append(f"{where}: client_ts {client_ts!r} ({ts_type})")
            try:
                fields = msgpack.unpackb(blob, raw=False, strict_map_key=False)
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                found["undecodable"].append(f"{where}: {exc}")
                continue
            if holds(fields, is_ext):
                found["ext"].append(f"{where}: {short(fields)}")
            if holds(fields, is_wide_int):
                found["int64"].append(f"{where}: {short(fields)}")
    return found


def _listing(items: list[str], shown: int = 5) -> str:
    return f"{len(items)}: " + "; ".join(items[:shown])


def run(mode: Mode, workdir: Path) -> Report:
    report = Report("fuzz")
    seed = scenario_seed("fuzz")
    report.figures["seed"] = seed
    plan = Plan(seed, mode.fuzz_frames - 1)  # the last frame is the one over 16 MiB
    _sandbox, server = start_sandbox("staq")
    quiet = logging.NullHandler()  # the sandbox's refusals of fuzzed events are its business, not the report's
    logging.getLogger("bridge.sandbox").addHandler(quiet)
    try:
        daemon = Daemon(workdir, config=provider_table("staq", server.url, kind="staq"))
        with daemon, WellBehaved(daemon.ingress, "oracle-wb") as probe:
            fuzzer = Fuzzer(daemon, plan)
            fuzzer.run()
            hard_replies, newcomer = fuzzer.hard_oversize()
            result = probe.finish()
            verdicts = fuzzer.triage()
            stored = stored_uids(daemon.db_path, result.device_id)
            found = scan_store(daemon.db_path)
            _judge(report, mode, plan, fuzzer, result, probe.end, stored, found, verdicts, hard_replies, newcomer,
                   daemon.log())
            no_tracebacks(report, daemon)
    finally:
        server.stop()
        logging.getLogger("bridge.sandbox").removeHandler(quiet)
    return report


def _judge(report: Report, mode: Mode, plan: Plan, fuzzer: Fuzzer, result: ProbeResult, probe_end: float,
           stored: set[str], found: dict[str, list[str]], verdicts: list[str], hard_replies: int,
           newcomer: float | None, log: str) -> None:
    """Figures and checks of one run."""
    findings = fuzzer.findings
    sent = sum(fuzzer.sent.values())
    fig = report.figures
    fig["frames sent per generator"] = dict(fuzzer.sent.most_common())
    fig["cases covered"] = plan.coverage()
    fig["replies by code"] = dict(fuzzer.codes.most_common())
    fig["internal replies"] = fuzzer.codes["internal"]
    fig["fuzz frames/s"] = f"{sent / fuzzer.elapsed:.0f} ({sent} frames in {fuzzer.elapsed:.1f} s, "\
                           f"{CONNECTIONS} connections)"
    fig["fuzz reply latency"] = f"p99 {ms(percentile(fuzzer.reply_latency, 99))}, " \
                                f"max {ms(max(fuzzer.reply_latency, default=math.nan))}"
    fig["ingress hangs (daemon restarted)"] = len(fuzzer.hangs)
    fig["well-behaved client"] = summary(result.latency)
    fig["exceptions in the daemon log"] = exceptions_in(log) or "none"
    gap = result.max_gap(probe_end)

    report.check(f"all {mode.fuzz_frames} frames sent (budget {fuzzer.budget_s:.0f} s)",
                 sent + 1 == mode.fuzz_frames, f"{sent} of {plan.total} sent in {fuzzer.elapsed:.1f} s"
                 + (f"; stopped after {len(fuzzer.hangs)} hangs" if len(fuzzer.hangs) >= fuzzer.max_hangs else ""))
    report.check("the ingress never stopped answering", not fuzzer.hangs,
                 f"{len(fuzzer.hangs)} hang(s); frames in flight, replayed alone on a fresh daemon:\n    "
                 + "\n    ".join(verdicts))
    report.check(f"every frame answered within {REPLY_BOUND_S:.0f} s ({PURCHASE_BOUND_S:.0f} s for purchase)",
                 not findings.count("reply in time"), findings.detail("reply in time"))
    report.check("one reply per frame, carrying its readable rid or nil",
                 not findings.count("rid") and not fuzzer.extra_replies,
                 f"{fuzzer.extra_replies} reply(ies) with no frame in flight; " + findings.detail("rid"))
    report.check("every reply is a msgpack map with a type", not findings.count("reply is a map with a type"),
                 findings.detail("reply is a map with a type"))
    report.check("the connection's real hello is welcomed again after a fuzzed one",
                 not findings.count("a valid hello is welcomed"), findings.detail("a valid hello is welcomed"))
    report.check("no reply is `internal`", not findings.count("internal"), findings.detail("internal"))
    report.check("no ack counts as stored an event holding an extension type", not findings.count("ack ext"),
                 findings.detail("ack ext"))
    report.check("no ack counts as stored an event holding an integer outside int64",
                 not findings.count("ack int64"), findings.detail("ack int64"))
    report.check("the store holds no extension type in any event's fields", not found["ext"],
                 _listing(found["ext"]))
    report.check("the store holds no integer outside int64 in any event's fields", not found["int64"],
                 _listing(found["int64"]))
    report.check("every stored client_ts is an integer in 0..2^63-1", not found["client_ts"],
                 _listing(found["client_ts"]))
    report.check("every stored event's fields decode as msgpack", not found["undecodable"],
                 _listing(found["undecodable"]))
    report.check("a frame over 16 MiB gets no reply and a new client is answered after it",
                 hard_replies == 0 and newcomer is not None,
                 f"{hard_replies} reply(ies); new client answered in {ms(newcomer) if newcomer else 'no time'}")
    report.check(f"the well-behaved client never waited > {GAP_BOUND_S:.0f} s for an answer", gap <= GAP_BOUND_S,
                 f"longest wait {gap:.2f} s")
    p99 = percentile(result.latency, 99)
    report.check(f"well-behaved ack p99 < {P99_BOUND_S * 1000:.0f} ms", p99 < P99_BOUND_S,
                 f"{summary(result.latency)}")
    missing = result.acked_ids() - stored
    report.check("every well-behaved event acknowledged and stored",
                 not result.unanswered() and not result.failures and not missing,
                 f"{result.unanswered()} of {len(result.sent)} never acked, {len(missing)} acked but not in the "
                 f"store, {len(result.failures)} bad replies {result.failures[:3]}, {result.rehellos} re-hellos "
                 "after a daemon restart")
