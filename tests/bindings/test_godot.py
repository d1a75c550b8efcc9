"""The Godot binding for real: the GDScript addon run headless in Godot 3 (`godot3-server`) against a real
daemon on test ports that verifies purchases through a staq sandbox, and its Godot 4 files parse-checked with
gdtoolkit (no Godot 4 binary installs here).

The wrapper builds a temporary Godot project from engine_bindings/godot/test_project and the addon, with a
`vectors.gd` of msgpack vectors made here by Python's msgpack, and runs it under `timeout`. The GDScript test
program makes its own checks and prints `N passed, N failed`; it prints `EB_MARK <step>` when the daemon must
act (configs rewritten, daemon killed and restarted mid-stream, staq down and back) and `EB_FACT <name>
<json>` for what this wrapper then checks in the store: every helper's fields, sessions, no lost or duplicated
event across the kill, only the newest events kept after an overflow, the event sent to a daemon the binding
auto-launched, every purchase stored once with the verdict the game got. The run ends with a purchase pending at
staq and one the daemon never got; a second run of the same install (phase `restart`) must get both verdicts,
once, and none it had before. Each run's output is kept in tmp_path as godot-<phase>.log.
Godot 3 exits 0 on script errors, so any `SCRIPT ERROR` in its output fails the test too.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

from bridge.sandbox.staq import StaqSandbox
from tests.bindings.godot_project import write_project_file
from tests.harness import REPO, Daemon, free_port
from tests.sandboxes import provider_table, start_sandbox, wait_until

GODOT = REPO / "engine_bindings" / "godot"
ADDON = GODOT / "addons" / "engine_bridge"
RUN_TIMEOUT_S = 240
# Checks test_main.gd makes besides the two per vector (encode and decode) or one (decode only), and in
# its second phase.
OTHER_CHECKS = 190
RESTART_CHECKS = 15
GAME_BUILD = "1.2.3-test"
STAQ_ROUTE = "iap_apple"

# [configs] is the topic config/local; the only provider is the staq sandbox on loopback.
CONFIGS = '[configs]\ndifficulty = "hard"\nmax_lives = 5\n'
CONFIGS_UPDATED = '[configs]\ndifficulty = "nightmare"\nspeed = 1.25\n'
# Receipts test_main.gd verifies, by name; the sandbox calls each valid except "invalid".
RECEIPT_NAMES = ("valid", "invalid", "plain", "closed", "late", "last", "orphan", "unsent", "fresh")

# What each helper call of test_main.gd must store: category and the exact fields map.
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "design": ("design", {"event_id": "ui:click:play", "value": 1.5}),
    "design_int": ("design", {"event_id": "level:boss:defeated", "value": 3, "custom_01": "hard"}),
    "design_bare": ("design", {"event_id": "menu"}),
    "business": ("business", {"event_id": "gems:pack_small", "amount": 99, "currency": "USD",
                              "cart_type": "shop", "receipt_info": {"store": "apple"}}),
    "progression": ("progression", {"event_id": "Complete:world01:level01", "score": 100, "attempt_num": 2}),
    "progression_short": ("progression", {"event_id": "Start:world02"}),
    "resource": ("resource", {"event_id": "Sink:gold:boost:speed", "amount": 25.5}),
    "error": ("error", {"severity": "warning", "message": "Texture missing: ünïcödé 日本"}),
    "ads": ("ads", {"ad_action": "show", "ad_type": "rewarded_video", "ad_sdk_name": "admob",
                    "ad_placement": "end_of_level", "ad_duration": 15000}),
    "custom": ("custom", {"name": "tutorial_skipped", "step": 3, "ratio": -0.25, "big": 5000000000,
                          "neg": -70000, "flag": True, "nothing": None, "text": "héllo 🎮",
                          "blob": b"\x00\x01\xfe\xff", "list": [1, "two", [3.5]],
                          "custom_fields": {"nested": {"deeper": [1, 2]}}}),
}


# --- msgpack vectors ---------------------------------------------------------------------------------------

class Gen:
    """A value too large to spell out in GDScript: built by a helper of vectors.gd, and here in Python."""

    def __init__(self, gd: str, value: Any) -> None:
        self.gd = gd
        self.value = value


def text(n: int) -> Gen:
    return Gen(f"text({n})", ("abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n])


def pattern(n: int) -> Gen:
    return Gen(f"pattern({n})", bytes(i % 256 for i in range(n)))


def zeros(n: int) -> Gen:
    return Gen(f"zeros({n})", [0] * n)


def keyed(n: int) -> Gen:
    return Gen(f"keyed({n})", {f"k{i}": i for i in range(n)})


def py(v: Any) -> Any:
    """The Python value behind a vector value (Gen unwrapped, recursively)."""
    if isinstance(v, Gen):
        return v.value
    if isinstance(v, list):
        return [py(x) for x in v]
    if isinstance(v, dict):
        return {py(k): py(x) for k, x in v.items()}
    return v


def gd(v: Any) -> str:
    """A GDScript 3 expression for a value; floats go by their exact bits, since literals may round."""
    if isinstance(v, Gen):
        return v.gd
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return "(-9223372036854775807 - 1)" if v == -2**63 else str(v)
    if isinstance(v, float):
        return f'f64("{struct.pack(">d", v).hex()}")'
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{escaped}"'
    if isinstance(v, bytes):
        return f'from_hex("{v.hex()}")'
    if isinstance(v, list):
        return "[" + ", ".join(gd(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{gd(k)}: {gd(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def vectors() -> list[tuple[str, bytes, Any, str]]:
    """(name, bytes, value, mode): mode "both" when Godot must encode value to exactly these bytes (what
    Python's msgpack writes) and decode them back; "decode" for forms Godot only reads."""
    both: list[tuple[str, Any]] = [
        ("nil", None), ("false", False), ("true", True),
        ("int 0", 0), ("int 1", 1), ("positive fixint max", 127), ("uint 8 min", 128), ("uint 8 max", 255),
        ("uint 16 min", 256), ("uint 16 max", 65535), ("uint 32 min", 65536), ("uint 32 max", 2**32 - 1),
        ("uint 64 min", 2**32), ("int 64 max", 2**63 - 1),
        ("int -1", -1), ("negative fixint min", -32), ("int 8 min-side", -33), ("int 8 min", -128),
        ("int 16 first", -129), ("int 16 min", -32768), ("int 32 first", -32769), ("int 32 min", -2**31),
        ("int 64 first", -2**31 - 1), ("int 64 min", -2**63),
        ("float 0.0", 0.0), ("float 1.5", 1.5), ("float -2.25", -2.25), ("float pi", math.pi),
        ("float 1e300", 1e300), ("float -1e-300", -1e-300), ("float max", 1.7976931348623157e308),
        ("float 2^53+2", 9007199254740994.0), ("float inf", math.inf), ("float -inf", -math.inf),
        ("str empty", ""), ("str a", "a"), ("fixstr max", text(31)), ("str 8 min", text(32)),
        ("str 8 max", text(255)), ("str 16 min", text(256)), ("str 16 max", text(65535)),
        ("str 32 min", text(65536)),
        ("str latin-1", "héllo wörld"), ("str japanese", "日本語のテキスト"), ("str emoji", "game 🎮🚀 on"),
        ("str 20 chars, 40 bytes", "é" * 20), ("str quotes and escapes", 'say "hi"\\ \n\ttab — “ok”'),
        ("bin empty", b""), ("bin 2", b"\x00\xff"), ("bin 8 max", pattern(255)), ("bin 16 min", pattern(256)),
        ("bin 16 max", pattern(65535)), ("bin 32 min", pattern(65536)),
        ("array empty", []), ("fixarray max", list(range(15))), ("array 16 min", list(range(16))),
        ("array 32 min", zeros(65536)), ("array nested", [[[]], [1, [2, [3]]]]),
        ("map empty", {}), ("fixmap max", {f"k{i}": i for i in range(15)}), ("map 16 min", keyed(16)),
        ("map 32 min", keyed(65536)), ("map int keys", {1: "one", -1: "minus one", 300: "big"}),
        ("map nested", {"a": [1, {"b": [True, None, 1.5, "x", b"\x01"]}], "c": {"d": {"e": {}}},
                        "ü": {"日本": -7}}),
        ("protocol event", {"type": "events", "rid": 4294967295, "events": [
            {"id": "a1b2-1", "category": "design", "ts": 1795600000000,
             "fields": {"event_id": "ui:click:play", "value": 1.5}}]}),
    ]
    out = [(name, msgpack.packb(py(v), use_bin_type=True), v, "both") for name, v in both]
    decode_only: list[tuple[str, bytes, Any]] = [
        ("uint 64 max reads as float", b"\xcf" + b"\xff" * 8, float(2**64 - 1)),
        ("uint 64 2^63 reads as float", b"\xcf\x80" + b"\x00" * 7, float(2**63)),
        ("uint 16 holding 5", b"\xcd\x00\x05", 5),
        ("uint 64 holding 1", b"\xcf" + b"\x00" * 7 + b"\x01", 1),
        ("int 64 holding -1", b"\xd3" + b"\xff" * 8, -1),
        ("int 8 holding 5", b"\xd0\x05", 5),
        ("float 32 1.5", msgpack.packb(1.5, use_single_float=True), 1.5),
        ("float 32 -0.25", msgpack.packb(-0.25, use_single_float=True), -0.25),
        ("float nan", msgpack.packb(math.nan), math.nan),
        ("str 8 short", b"\xd9\x02hi", "hi"),
        ("str 32 short", b"\xdb\x00\x00\x00\x02hi", "hi"),
        ("array 32 of 1", b"\xdd\x00\x00\x00\x01\x07", [7]),
        ("map 16 of 1", b"\xde\x00\x01\xa1k\xc0", {"k": None}),
        ("bin 32 short", b"\xc6\x00\x00\x00\x01\x2a", b"\x2a"),
    ]
    return out + [(name, raw, v, "decode") for name, raw, v in decode_only]


VECTORS_HEADER = '''# Generated by tests/bindings/test_godot.py from Python's msgpack for one test run.
const HEX = "0123456789abcdef"


static func from_hex(h):
	var out = PoolByteArray()
	out.resize(h.length() / 2)
	for i in range(out.size()):
		out[i] = HEX.find(h[2 * i]) * 16 + HEX.find(h[2 * i + 1])
	return out


static func f64(h):
	var b = StreamPeerBuffer.new()
	b.big_endian = true
	b.data_array = from_hex(h)
	return b.get_double()


static func text(n):
	return "abcdefghijklmnopqrstuvwxyz".repeat(n / 26 + 1).substr(0, n)


static func pattern(n):
	var b = PoolByteArray()
	b.resize(n)
	for i in range(n):
		b[i] = i % 256
	return b


static func zeros(n):
	var a = []
	a.resize(n)
	for i in range(n):
		a[i] = 0
	return a


static func keyed(n):
	var d = {}
	for i in range(n):
		d["k%d" % i] = i
	return d


# [name, hex of the bytes, value, mode]
static func cases():
	return [
'''


def write_vectors(path: Path, cases: list[tuple[str, bytes, Any, str]]) -> None:
    rows = [f"\t\t[{gd(name)}, {gd(raw.hex())}, {gd(v)}, {gd(mode)}],\n" for name, raw, v, mode in cases]
    path.write_text(VECTORS_HEADER + "".join(rows) + "\t]\n", encoding="utf-8")


# --- the project and the run --------------------------------------------------------------------------------

def godot_binary() -> str:
    path = shutil.which("godot3-server")
    if path is None:
        pytest.fail("godot3-server is missing: run scripts/install-system-deps.sh (Debian package godot3-server)")
    return path


def build_project(root: Path, daemon: Daemon, cases: list[tuple[str, bytes, Any, str]]) -> Path:
    """The test project: test_project/ plus the addon, its settings, the vectors, a plugin compile check."""
    project = root / "project"
    shutil.copytree(GODOT / "test_project", project)
    shutil.copytree(ADDON, project / "addons" / "engine_bridge")
    write_vectors(project / "vectors.gd", cases)
    # EditorPlugin exists only in Godot's editor build: a copy of the Godot 3 plugin extending a stand-in
    # with the two EditorPlugin methods it calls shows that the script compiles in Godot 3.
    plugin3 = (ADDON / "godot3" / "plugin.gd").read_text()
    assert "extends EditorPlugin" in plugin3
    (project / "editor_plugin_stand_in.gd").write_text(
        "extends Node\n\n\nfunc add_autoload_singleton(_name, _path):\n\tpass\n\n\n"
        "func remove_autoload_singleton(_name):\n\tpass\n")
    (project / "addons" / "engine_bridge" / "godot3" / "plugin_compile_check.gd").write_text(
        plugin3.replace("extends EditorPlugin", 'extends "res://editor_plugin_stand_in.gd"'))
    write_project_file(project, "engine-bridge godot tests", daemon, f"""identity/game_build="{GAME_BUILD}"
daemon/auto_launch="yes"
""")
    return project


class Launch:
    """What the auto_launch check starts: the repository's daemon on fresh ports with its own data directory,
    through /bin/sh so its output goes to a file (the binding appends --ingress and --publish)."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root = root
        self.db_path = root / "data" / "bridge.sqlite3"
        (root / "bridge.toml").write_text("[providers]\n\n[configs]\n")
        self.spec = {
            "ingress": f"tcp://127.0.0.1:{free_port()}",
            "publish": f"tcp://127.0.0.1:{free_port()}",
            "executable": "/bin/sh",
            "arguments": ["-c", f'echo $$ > "{root}/daemon.pid"; exec "$0" -m bridge "$@" > "{root}/daemon.log" 2>&1',
                          sys.executable, "run", "--data-dir", str(root / "data"),
                          "--config", str(root / "bridge.toml")],
        }

    def pid(self) -> int:
        """The launched daemon's process id (its shell wrote it, then became the daemon), or 0."""
        path = self.root / "daemon.pid"
        return int(path.read_text()) if path.exists() else 0

    def stop(self) -> None:
        """SIGTERM to the daemon Godot started (by its pid), then SIGKILL if it lingers."""
        pid = self.pid()
        if pid <= 0:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)


class Run:
    """What one Godot run needs: the project, its home (user:// lives there), the daemon and the staq sandbox."""

    def __init__(self, project: Path, home: Path, daemon: Daemon, sandbox: StaqSandbox, launch: Launch,
                 receipts: dict[str, str], config: str) -> None:
        self.project, self.home, self.daemon, self.sandbox, self.launch = project, home, daemon, sandbox, launch
        self.receipts = receipts
        self.config = config

    def act(self, step: str) -> None:
        """What an EB_MARK asks for."""
        if step == "config_update":
            assert self.daemon.config_path is not None and self.daemon.proc is not None
            self.daemon.config_path.write_text(self.config.replace(CONFIGS, CONFIGS_UPDATED))
            self.daemon.proc.send_signal(signal.SIGHUP)
        elif step == "restart":
            self.daemon.kill()
            self.daemon.start()
        elif step == "staq_down":
            self.sandbox.faults.fail(STAQ_ROUTE, status=503, count=None)
        elif step == "staq_up":
            self.sandbox.faults.clear()
        else:
            raise AssertionError(f"unknown mark {step!r}")


def run_godot(run: Run, phase: str, **env_extra: str) -> tuple[int, str]:
    """Runs the project headless in `phase`, acting on its EB_MARK lines and answering each with a file in the
    ack directory; returns the exit code and the whole output."""
    project, home, launch = run.project, run.home, run.launch
    home.mkdir(exist_ok=True)
    acks = project.parent / f"acks-{phase}"
    acks.mkdir()
    env = dict(os.environ, HOME=str(home), LANG="en_US.UTF-8", LC_ALL="en_US.UTF-8", PYTHONPATH=str(REPO),
               EB_TEST_DEAD_ENDPOINT=f"tcp://127.0.0.1:{free_port()}", EB_TEST_LAUNCH=json.dumps(launch.spec),
               EB_TEST_PHASE=phase, EB_TEST_ACK_DIR=str(acks), EB_TEST_RECEIPTS=json.dumps(run.receipts),
               **env_extra)
    # stdbuf: Godot writes through stdio, which a pipe would buffer until exit; the marks must come at once.
    cmd = ["timeout", "-k", "5", str(RUN_TIMEOUT_S), "stdbuf", "-oL", "-eL", godot_binary(), "--path", str(project)]
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=project, text=True,
                          encoding="utf-8", errors="replace") as proc:
        assert proc.stdout is not None
        try:
            marks = 0
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("EB_MARK "):
                    run.act(line.split()[1])
                    marks += 1
                    (acks / str(marks)).touch()
            code = proc.wait(timeout=30)
        except BaseException:
            proc.terminate()  # `timeout` passes SIGTERM on to Godot
            raise
        finally:
            (project.parent / f"godot-{phase}.log").write_text("".join(lines))  # the whole run, for a failure
    return code, "".join(lines)


def facts(output: str) -> dict[str, Any]:
    out = {}
    for line in output.splitlines():
        if line.startswith("EB_FACT "):
            _, name, payload = line.split(" ", 2)
            out[name] = json.loads(payload)
    return out


def check_output(daemon: Daemon, code: int, output: str, min_checks: int) -> dict[str, Any]:
    """A Godot run's verdict: its own checks all passed, enough of them, no script error; then its facts."""
    tail = output[-6000:]
    summary = [line for line in output.splitlines() if line.endswith(" failed") and " passed, " in line]
    assert summary, f"no 'N passed, N failed' line (exit {code}):\n{tail}\n--- daemon log:\n{daemon.log()[-3000:]}"
    passed, failed = (int(w) for w in summary[-1].replace(",", "").split()[::2][:2])
    assert "SCRIPT ERROR" not in output, tail
    assert failed == 0 and code == 0, f"exit {code}:\n{tail}"
    assert passed >= min_checks, f"only {passed} checks passed, expected at least {min_checks}:\n{tail}"
    return facts(output)


def stored_purchase(daemon: Daemon, purchase_id: str) -> tuple[int | None] | None:
    """(verified_at,) of a stored purchase, None if the daemon has none of that id."""
    with sqlite3.connect(daemon.db_path) as db:
        return db.execute("SELECT verified_at FROM purchases WHERE purchase_id = ?", (purchase_id,)).fetchone()


def test_godot_binding_headless(tmp_path: Path) -> None:
    cases = vectors()
    min_checks = OTHER_CHECKS + sum(2 if mode == "both" else 1 for *_, mode in cases)
    launch = Launch(tmp_path / "launched")
    receipts = {name: base64.b64encode(f"{name}-{os.urandom(8).hex()}".encode()).decode() for name in RECEIPT_NAMES}
    sandbox, server = start_sandbox("staq")
    for name, receipt in receipts.items():
        sandbox.register_receipt(receipt, valid=name != "invalid")
    config = provider_table("staq", server.url, kind="staq") + "\n" + CONFIGS
    try:
        with Daemon(tmp_path / "daemon", config=config) as daemon:
            run = Run(build_project(tmp_path, daemon, cases), tmp_path / "home", daemon, sandbox, launch, receipts,
                      config)
            try:
                code, output = run_godot(run, "main")
                launched_pid = launch.pid()
            finally:
                launch.stop()
            known = check_output(daemon, code, output, min_checks)
            check_store(daemon, known)
            # The game quit with a purchase pending and one unsent; staq comes back, the daemon verifies the first.
            orphan, unsent = known["orphan"], known["unsent"]
            assert stored_purchase(daemon, orphan) == (None,), "the orphan purchase was verified while staq was down"
            assert stored_purchase(daemon, unsent) is None, "the unsent purchase reached the daemon"
            sandbox.faults.clear()
            wait_until(lambda: stored_purchase(daemon, orphan) != (None,), 15, what="the pending purchase's verdict")
            code, output = run_godot(run, "restart", EB_TEST_ORPHAN=orphan, EB_TEST_UNSENT=unsent)
            known.update(check_output(daemon, code, output, RESTART_CHECKS))
            check_purchases(daemon, sandbox, known, receipts)
    finally:
        server.stop()
    assert known["launched"]["pid"] == launched_pid > 0, "get_stats() names the process auto_launch started"
    with sqlite3.connect(launch.db_path) as db:
        rows = db.execute("SELECT category FROM events WHERE uid = ?", (known["launched"]["event"],)).fetchall()
    assert rows == [("design",)], "the event sent to the auto-launched daemon is in its store"


def check_store(daemon: Daemon, known: dict[str, Any]) -> None:
    """What the Godot run reported, checked independently in the daemon's store."""
    device = known["device_id"]
    events = [e for e in daemon.events() if e["device_id"] == device]
    assert len({e["uid"] for e in events}) == len(events), "an event id stored twice"
    by_uid = {e["uid"]: e for e in events}
    now_ms = time.time() * 1000
    for name, uid in known["helper_ids"].items():
        category, fields = EXPECTED[name]
        stored = by_uid.get(uid)
        assert stored is not None, f"{name} ({uid}) not in the store"
        assert stored["category"] == category and stored["fields"] == fields, (name, stored)
        assert stored["game_build"] == GAME_BUILD
        assert abs(stored["client_ts"] - now_ms) < 600_000, stored
    session = known["session"]
    assert by_uid[session["event"]]["session_id"] == session["id"], "event not stamped with its session"
    stream = sorted(e["fields"]["value"] for e in events if e["fields"].get("custom_01") == "stream")
    assert stream == list(range(known["stream"]["events"])), "stream events lost or stored twice"
    overflow = sorted(e["fields"]["value"] for e in events if e["fields"].get("custom_01") == "overflow")
    assert overflow == list(range(15, 25)), f"the newest 10 overflow events, not {overflow}"
    quit_events = [e for e in events if e["fields"].get("custom_01") == "quit"]
    assert len(quit_events) == 5, "the quit drain delivered its 5 events"
    with sqlite3.connect(daemon.db_path) as db:
        row = db.execute("SELECT engine, binding, binding_version, game_build, platform FROM devices "
                         "WHERE device_id = ?", (device,)).fetchone()
    assert row == ("godot", "engine-bridge-godot", "0.1.0", GAME_BUILD, "linux"), row


def check_purchases(daemon: Daemon, sandbox: StaqSandbox, known: dict[str, Any], receipts: dict[str, str]) -> None:
    """Every purchase the runs made is stored once with the verdict they reported, and staq verified each
    receipt as often as the runs asked for it (no request was verified twice)."""
    ids = {**known["purchases"], "orphan": known["orphan"], "unsent": known["unsent"], "fresh": known["fresh"]}
    with sqlite3.connect(daemon.db_path) as db:
        rows = db.execute("SELECT purchase_id, receipt, is_valid, is_duplicate, price_usd, metadata FROM purchases "
                          "WHERE device_id = ?", (known["device_id"],)).fetchall()
    stored = {r[0]: (*r[1:5], msgpack.unpackb(r[5])) for r in rows}
    assert len(rows) == len(stored) == len(ids), (rows, ids)
    for name, purchase_id in ids.items():
        receipt = receipts["valid" if name == "duplicate" else name]
        assert stored[purchase_id][:3] == (receipt, name != "invalid", name == "duplicate"), (name, stored[purchase_id])
    assert stored[ids["valid"]][3:] == (0.99, {"sku": "gems_100"}) and stored[ids["late"]][3] == 4.99
    # The unsent purchase went out at the second start, from what the first run saved in user://.
    assert stored[ids["unsent"]][3:] == (2.99, {"sku": "unsent"}), stored[ids["unsent"]]
    verified = [p["receipt"] for p in sandbox.purchases()]
    assert sorted(verified) == sorted(receipts["valid" if name == "duplicate" else name] for name in ids), verified


# --- Godot 4 and the shared core, parse-checked ----------------------------------------------------------

def godot4_sources() -> list[Path]:
    """Everything Godot 4 loads: the shared core, the godot4/ adapter and plugin, the example project."""
    core = sorted(ADDON.glob("*.gd"))
    return core + sorted((ADDON / "godot4").glob("*.gd")) + sorted((GODOT / "example").glob("*.gd"))


def test_godot4_files_parse_and_lint() -> None:
    tools = Path(sys.executable).parent
    sources = godot4_sources()
    names = {str(p.relative_to(GODOT)) for p in sources}
    assert {"addons/engine_bridge/engine_bridge.gd", "addons/engine_bridge/godot4/adapter.gd",
            "addons/engine_bridge/godot4/plugin.gd", "example/main.gd"} <= names, names
    files = [str(p) for p in sources]
    for tool in ("gdparse", "gdlint"):
        exe = tools / tool
        assert exe.exists(), f"{tool} missing: pip install gdtoolkit (the [test] extra)"
        result = subprocess.run([str(exe), *files], capture_output=True, text=True, timeout=120, cwd=GODOT)
        assert result.returncode == 0, f"{tool}:\n{result.stdout}\n{result.stderr}"


def test_shared_core_avoids_version_specific_names() -> None:
    """The shared core must parse in Godot 3 and 4: names that exist in only one of them belong in an
    adapter. (Godot 3 parses and runs it in the headless test; this catches Godot 4-only breakage.)"""
    godot3_only = ["PoolByteArray", "PoolStringArray", "TYPE_REAL", "TYPE_RAW_ARRAY", "to_utf8()", "yield(",
                   "File.new", "OS.get_system_time", "OS.get_ticks", "onready ", "export ", "setget", "tool\n",
                   ".empty()", "funcref(", "is_valid_integer", "subarray(", "OS.execute("]
    godot4_only = ["PackedByteArray", "PackedStringArray", "TYPE_FLOAT", "TYPE_PACKED", "to_utf8_buffer",
                   "await ", "FileAccess", "Time.", "@onready", "@export", "@tool", "is_empty()", "Callable(",
                   "create_process", ".slice("]
    for path in sorted(ADDON.glob("*.gd")):
        source = path.read_text()
        found = [name for name in godot3_only + godot4_only if name in source]
        assert not found, f"{path.name} uses version-specific {found}; move it to godot3/ and godot4/adapter.gd"
