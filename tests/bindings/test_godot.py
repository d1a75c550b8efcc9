"""The Godot binding for real: the GDScript addon run headless in Godot 3 (`godot3-server`) against real daemons,
and its GDScript parse-checked and linted with gdtoolkit (no Godot 4 binary installs here).

The wrapper builds a temporary Godot project from engine_bindings/godot/test_project and the addon, with a
`vectors.gd` holding the shared conformance vectors (engine_bindings/conformance/vectors.json) and a few cases of
its own made by Python's msgpack, and runs it under `timeout`, one phase per run (see test_main.gd). A run makes
its own checks and prints `N passed, N failed`; it prints `EB_MARK <step>` when the wrapper must act (configs
rewritten, daemon killed for an outage, stopped and resumed, staq down and back) and `EB_FACT <name> <json>` for
what the wrapper then checks in the store or in Godot's console output. Each run's whole output is kept in
tmp_path as godot-<phase>.log. Godot 3 exits 0 on script errors, so any `SCRIPT ERROR` in its output fails the
test too.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from bridge.conformance import VECTORS_PATH, Float32, from_json
from bridge.sandbox.staq import StaqSandbox
from bridge.game import default_endpoints
from tests.bindings import shipping
from tests.bindings.godot_project import write_project_file
from tests.harness import REPO, Daemon, free_port
from tests.sandboxes import provider_table, start_sandbox, wait_until

GODOT = REPO / "engine_bindings" / "godot"
ADDONS = GODOT / "addons"
ADDON = ADDONS / "engine_bridge"
RUN_TIMEOUT_S = 240
# Checks test_main.gd makes in its main phase besides those of the vectors (conformance_checks.gd), and in its
# second phase.
OTHER_CHECKS = 200
RESTART_CHECKS = 15
GAME_BUILD = "1.2.3-test"
STAQ_ROUTE = "iap_apple"
# The outage: the daemon is away this long while the game makes 1,000 events/s.
OUTAGE_S = 6
QUIT_WAYS = ("tree", "request", "remove", "free", "shutdown")
QUIT_EVENTS = 603
# At most one console warning of a kind per this many ms in the refusals test (10 s by default).
WARNING_INTERVAL_MS = 1000

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
    "ads_failed": ("ads", {"ad_action": "failed_show", "ad_type": "app_open", "ad_sdk_name": "applovin_max",
                           "ad_placement": "launch", "ad_fail_show_reason": "unable_to_precache"}),
    # The deprecated ad_fb_error extra field reaches the store under its new name, and only so.
    "ads_fb_error": ("ads", {"ad_action": "failed_show", "ad_type": "video", "ad_sdk_name": "admob",
                             "ad_placement": "end_of_level", "ad_duration": 0, "ad_fail_show_reason": "no_fill",
                             "custom_01": "vip"}),
    "impression": ("impression", {"ad_network_name": "max", "ad_network_version": "12.4.1",
                                  "impression_data": {"revenue": 0.0123, "currency": "USD", "precision": "exact",
                                                      "ad_unit": {"id": "u-1", "format": "REWARDED"},
                                                      "deepest": {"k": {"k": 1}}}}),
    "custom": ("custom", {"name": "tutorial_skipped", "step": 3, "ratio": -0.25, "big": 5000000000,
                          "neg": -70000, "flag": True, "nothing": None, "text": "héllo 🎮",
                          "blob": b"\x00\x01\xfe\xff", "list": [1, "two", [3.5]],
                          "custom_fields": {"nested": {"deeper": [1, 2]}}}),
}


# --- vectors.gd: the shared conformance vectors and a few of our own, as GDScript ----------------------------

class Gen:
    """A value spelled in GDScript by an expression: a helper of vectors.gd, or a literal made here."""

    def __init__(self, gd: str, value: Any = None) -> None:
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


def extra_vectors() -> list[tuple[str, bytes, Any, str]]:
    """(name, bytes, value, mode) for what the shared vectors leave out: the 32-bit forms (64 KiB and more),
    int map keys, infinities, and forms Godot only reads ("decode"); "both" when Godot must also write
    exactly these bytes, as Python's msgpack does."""
    both: list[tuple[str, Any]] = [
        ("str 16 max", text(65535)), ("str 32 min", text(65536)), ("bin 16 max", pattern(65535)),
        ("bin 32 min", pattern(65536)), ("array 32 min", zeros(65536)), ("map 32 min", keyed(65536)),
        ("map int keys", {1: "one", -1: "minus one", 300: "big"}), ("float inf", math.inf),
        ("float -inf", -math.inf),
    ]
    out = [(name, msgpack.packb(py(v), use_bin_type=True), v, "both") for name, v in both]
    decode_only: list[tuple[str, bytes, Any]] = [
        ("uint 64 max reads as float", b"\xcf" + b"\xff" * 8, float(2**64 - 1)),
        ("uint 16 holding 5", b"\xcd\x00\x05", 5),
        ("int 64 holding -1", b"\xd3" + b"\xff" * 8, -1),
        ("float nan", msgpack.packb(math.nan), math.nan),
        ("str 32 short", b"\xdb\x00\x00\x00\x02hi", "hi"),
        ("array 32 of 1", b"\xdd\x00\x00\x00\x01\x07", [7]),
        ("map 16 of 1", b"\xde\x00\x01\xa1k\xc0", {"k": None}),
        ("bin 32 short", b"\xc6\x00\x00\x00\x01\x2a", b"\x2a"),
    ]
    return out + [(name, raw, v, "decode") for name, raw, v in decode_only]


def as_godot(value: Any) -> tuple[Any, bool]:
    """A conformance value tree as Godot's reader gives it, and whether Godot's writer makes its exact bytes:
    Godot writes every float as float 64 and holds ints in int64 (a uint64 above reads as a float)."""
    if isinstance(value, Float32):
        return float(value), False
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
        return float(value), False
    if isinstance(value, list):
        items = [as_godot(v) for v in value]
        return [v for v, _ in items], all(ok for _, ok in items)
    if isinstance(value, dict):
        pairs = [(as_godot(k), as_godot(v)) for k, v in value.items()]
        return {k: v for (k, _), (v, _) in pairs}, all(a and b for (_, a), (_, b) in pairs)
    return value, True


HELPER_CATEGORIES = {"design", "business", "progression", "resource", "error", "ads", "impression", "custom"}
EVENT_ID = re.compile(r"[A-Za-z0-9\-_.:]{1,64}")


def helper_made(value: Any, encodable: bool) -> bool:
    """An event whose only free part is its fields: what Godot's helpers build (they make the id and the time
    themselves, and name no other user), so their local checks must agree with the daemon's verdict."""
    if not (encodable and isinstance(value, dict) and value.get("type") == "event"):
        return False
    e = value["event"]
    return (e["category"] in HELPER_CATEGORIES and "user_id" not in e and EVENT_ID.fullmatch(e["id"]) is not None
            and 0 <= e["ts"] < 2**63)


def accepted(verdict: dict[str, Any]) -> bool:
    if verdict["type"] == "ack":
        return verdict["accepted"] >= 1 and not verdict["rejected"]
    return verdict["type"] != "error"


def refused_by_reader(frame: bytes) -> bool:
    """What a protocol v1 reader refuses: not exactly one msgpack value, or an extension type in it."""
    def has_ext(v: Any) -> bool:
        if isinstance(v, msgpack.ExtType):
            return True
        if isinstance(v, (list, tuple)):
            return any(has_ext(x) for x in v)
        return isinstance(v, dict) and any(has_ext(k) or has_ext(x) for k, x in v.items())
    try:
        return has_ext(msgpack.unpackb(frame, strict_map_key=False, use_list=False))
    except ValueError:  # incomplete input, or extra data after the value
        return True


def conformance_rows(section: list[dict[str, Any]], **more: Callable[[dict[str, Any], Any, bool], Any]) -> str:
    """A GDScript array of maps {name, hex, value, encode, ...more} for one section of vectors.json."""
    rows = []
    for v in section:
        value, encode = as_godot(from_json(v["value"]))
        row = {"name": v["name"], "hex": v["hex"], "value": Gen(gd(value)), "encode": encode}
        for key, make in more.items():
            row[key] = make(v, value, encode)
        rows.append(f"\t\t{gd(row)},\n")
    return "[\n" + "".join(rows) + "\t]"


def write_vectors(path: Path) -> None:
    if not VECTORS_PATH.exists():
        pytest.fail(f"{VECTORS_PATH} is missing: the shared conformance vectors (python -m bridge.conformance)")
    shared = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    limits = shared["limits"]
    extras = "".join(f"\t\t[{gd(name)}, {gd(raw.hex())}, {gd(v)}, {gd(mode)}],\n"
                     for name, raw, v, mode in extra_vectors())
    frames = [{"name": f["name"], "hex": f["hex"], "refused_by_reader": refused_by_reader(bytes.fromhex(f["hex"]))}
              for f in limits["frames"]]
    sections = {
        "msgpack": conformance_rows(shared["msgpack"]),
        "requests": conformance_rows(shared["requests"]),
        "replies": conformance_rows(shared["replies"]),
        "publications": conformance_rows(shared["publications"], topic=lambda v, value, ok: v["topic"]),
        "limit_cases": conformance_rows(limits["cases"], accepted=lambda v, value, ok: accepted(v["verdict"]),
                                        helper_made=lambda v, value, ok: helper_made(value, ok)),
        "limit_frames": gd(frames),
        "limit_values": gd(limits["values"]),
        "cases": "[\n" + extras + "\t]",
    }
    funcs = "".join(f"\n\nstatic func {name}():\n\treturn {body}\n" for name, body in sections.items())
    path.write_text(VECTORS_HEADER + funcs, encoding="utf-8")


VECTORS_HEADER = '''# Generated by tests/bindings/test_godot.py for one test run: the vectors of
# engine_bindings/conformance/vectors.json (each a map: name, hex, value as Godot reads it, encode: whether
# Godot writes exactly hex, ...) and, in cases(), [name, hex, value, mode] made by Python's msgpack.
const HEX = "0123456789abcdef"


static func from_hex(h):
\tvar out = PoolByteArray()
\tout.resize(h.length() / 2)
\tfor i in range(out.size()):
\t\tout[i] = HEX.find(h[2 * i]) * 16 + HEX.find(h[2 * i + 1])
\treturn out


static func f64(h):
\tvar b = StreamPeerBuffer.new()
\tb.big_endian = true
\tb.data_array = from_hex(h)
\treturn b.get_double()


static func text(n):
\treturn "abcdefghijklmnopqrstuvwxyz".repeat(n / 26 + 1).substr(0, n)


static func pattern(n):
\tvar b = PoolByteArray()
\tb.resize(n)
\tfor i in range(n):
\t\tb[i] = i % 256
\treturn b


static func zeros(n):
\tvar a = []
\ta.resize(n)
\tfor i in range(n):
\t\ta[i] = 0
\treturn a


static func keyed(n):
\tvar d = {}
\tfor i in range(n):
\t\td["k%d" % i] = i
\treturn d
'''


# --- the project and the runs --------------------------------------------------------------------------------

def godot_binary() -> str:
    path = shutil.which("godot3-server")
    if path is None:
        pytest.fail("godot3-server is missing: run scripts/install-system-deps.sh (Debian package godot3-server)")
    return path


def build_project(root: Path, daemon: Daemon, extra_settings: str = "") -> Path:
    """test_project/ with both addon folders as shipped, the project settings, the vectors and a plugin
    compile check."""
    project = root / "project"
    shutil.copytree(GODOT / "test_project", project)
    shutil.copytree(ADDONS, project / "addons")
    write_vectors(project / "vectors.gd")
    # EditorPlugin exists only in Godot's editor build: a copy of the Godot 3 plugin extending a stand-in
    # with the two EditorPlugin methods it calls shows that the script compiles in Godot 3.
    plugin3 = (ADDON / "godot3" / "plugin.gd").read_text()
    assert "extends EditorPlugin" in plugin3
    (project / "editor_plugin_stand_in.gd").write_text(
        "extends Node\n\n\nfunc add_autoload_singleton(_name, _path):\n\tpass\n\n\n"
        "func remove_autoload_singleton(_name):\n\tpass\n")
    (project / "addons" / "engine_bridge" / "godot3" / "plugin_compile_check.gd").write_text(
        plugin3.replace("extends EditorPlugin", 'extends "res://editor_plugin_stand_in.gd"'))
    write_project_file(project, "engine-bridge godot tests", daemon, extra_settings)
    return project


class Launch:
    """What the auto_launch check starts: a script found in its base directory (the binding's daemon_base_dir)
    that runs the repository's daemon with what the binding passes (run, the endpoints, --parent-pid, --game)
    and its own data directory, its output in a file."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root = root
        self.db_path = root / "data" / "bridge.sqlite3"
        (root / "bridge.toml").write_text("[providers]\n\n[configs]\n")
        script = root / "daemon.sh"
        script.write_text(f'#!/bin/sh\necho $$ > "{root}/daemon.pid"\n'
                          f'exec "{sys.executable}" -m bridge "$@" > "{root}/daemon.log" 2>&1\n')
        script.chmod(0o755)
        self.spec = {
            "ingress": f"tcp://127.0.0.1:{free_port()}",
            "publish": f"tcp://127.0.0.1:{free_port()}",
            "executable": script.name,
            "base_dir": str(root),
            "game": "godot-launch",
            "arguments": ["--data-dir", str(root / "data"), "--config", str(root / "bridge.toml")],
        }

    def log(self) -> str:
        path = self.root / "daemon.log"
        return path.read_text(errors="replace") if path.exists() else ""

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


class Godot:
    """One test project, run phase after phase, each in an install of the game (a HOME, which holds user://,
    hence the device id): the same one unless told; `act` does what an EB_MARK asks."""

    def __init__(self, root: Path, daemon: Daemon, extra_settings: str = "",
                 act: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.daemon = daemon
        self.project = build_project(root, daemon, extra_settings)
        self.act = act or (lambda step: pytest.fail(f"unexpected mark {step!r}"))

    def run(self, phase: str, min_checks: int, exit_code: int = 0, install: str = "game",
            **env_extra: str) -> tuple[dict[str, Any], str]:
        """Runs `phase` headless, acting on its EB_MARK lines and answering each with a file in the ack
        directory; checks its verdict; returns its facts and its whole output."""
        acks = self.root / f"acks-{phase}"
        acks.mkdir()
        home = self.root / f"home-{install}"
        home.mkdir(exist_ok=True)
        env = dict(os.environ, HOME=str(home), LANG="en_US.UTF-8", LC_ALL="en_US.UTF-8",
                   PYTHONPATH=str(REPO), EB_TEST_DEAD_ENDPOINT=f"tcp://127.0.0.1:{free_port()}",
                   EB_TEST_PHASE=phase, EB_TEST_ACK_DIR=str(acks), **env_extra)
        # stdbuf: Godot writes through stdio, which a pipe would buffer until exit; the marks must come at once.
        cmd = ["timeout", "-k", "5", str(RUN_TIMEOUT_S), "stdbuf", "-oL", "-eL", godot_binary(),
               "--path", str(self.project)]
        lines: list[str] = []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=self.project,
                              text=True, encoding="utf-8", errors="replace") as proc:
            assert proc.stdout is not None
            try:
                marks = 0
                for line in proc.stdout:
                    lines.append(line)
                    if line.startswith("EB_MARK "):
                        self.act(line.split()[1])
                        marks += 1
                        (acks / str(marks)).touch()
                code = proc.wait(timeout=30)
            except BaseException:
                proc.terminate()  # `timeout` passes SIGTERM on to Godot
                raise
            finally:
                (self.root / f"godot-{phase}.log").write_text("".join(lines))  # the whole run, for a failure
        output = "".join(lines)
        return check_output(self.daemon, phase, code, exit_code, output, min_checks), output


def check_output(daemon: Daemon, phase: str, code: int, exit_code: int, output: str,
                 min_checks: int) -> dict[str, Any]:
    """A Godot run's verdict: its own checks all passed, enough of them, no script error; then its facts."""
    tail = output[-6000:]
    summary = [line for line in output.splitlines() if line.endswith(" failed") and " passed, " in line]
    assert summary, f"{phase}: no 'N passed, N failed' line (exit {code}):\n{tail}\n--- daemon log:\n" \
                    f"{daemon.log()[-3000:]}"
    passed, failed = (int(w) for w in summary[-1].replace(",", "").split()[::2][:2])
    assert "SCRIPT ERROR" not in output, tail
    assert failed == 0 and code == exit_code, f"{phase}: exit {code}:\n{tail}"
    assert passed >= min_checks, f"{phase}: only {passed} checks passed, expected at least {min_checks}:\n{tail}"
    facts = {}
    for line in output.splitlines():
        if line.startswith("EB_FACT "):
            _, name, payload = line.split(" ", 2)
            facts[name] = json.loads(payload)
    return facts


def console_warnings(output: str, text: str) -> list[str]:
    """Godot's console lines for push_warning calls whose message holds `text`."""
    return [line for line in output.splitlines() if line.startswith("WARNING:") and text in line]


def stored_purchase(daemon: Daemon, purchase_id: str) -> tuple[int | None] | None:
    """(verified_at,) of a stored purchase, None if the daemon has none of that id."""
    with sqlite3.connect(daemon.db_path) as db:
        return db.execute("SELECT verified_at FROM purchases WHERE purchase_id = ?", (purchase_id,)).fetchone()


# --- the main run: conformance, every call, purchases, an outage, overflow, auto-launch, a restart -----------

class MainActs:
    """What the main phases' EB_MARK lines ask of the wrapper."""

    def __init__(self, daemon: Daemon, sandbox: StaqSandbox, config: str, launch: Launch) -> None:
        self.daemon, self.sandbox, self.config, self.launch = daemon, sandbox, config, launch

    def __call__(self, step: str) -> None:
        proc = self.daemon.proc
        assert proc is not None and self.daemon.config_path is not None
        if step == "config_update":
            self.daemon.config_path.write_text(self.config.replace(CONFIGS, CONFIGS_UPDATED))
            proc.send_signal(signal.SIGHUP)
        elif step == "outage":
            self.daemon.kill()
            self.daemon.prepare()  # the next daemon's interpreter and imports, during the outage
            time.sleep(OUTAGE_S)  # the outage itself: the daemon is back this long after the kill, not a start more
            self.daemon.start()
        elif step == "pause_daemon":
            proc.send_signal(signal.SIGSTOP)  # it takes bytes into its socket buffers, and answers nothing
        elif step == "resume_daemon":
            proc.send_signal(signal.SIGCONT)
        elif step == "staq_down":
            self.sandbox.faults.fail(STAQ_ROUTE, status=503, count=None)
        elif step == "staq_up":
            self.sandbox.faults.clear()
        elif step == "launcher_freed":
            # The bridge that launched a daemon was freed while the game runs on: it stopped its daemon, cleanly.
            pid = self.launch.pid()
            wait_until(lambda: shipping.gone(pid), shipping.GONE_WITHIN_S, f"the launched daemon (pid {pid}) gone")
            log = self.launch.log()
            assert "SIGTERM: stopping" in log and "stopped:" in log, log
        else:
            raise AssertionError(f"unknown mark {step!r}")


def test_godot_binding_headless(tmp_path: Path) -> None:
    launch = Launch(tmp_path / "launched")
    receipts = {name: base64.b64encode(f"{name}-{os.urandom(8).hex()}".encode()).decode() for name in RECEIPT_NAMES}
    sandbox, server = start_sandbox("staq")
    for name, receipt in receipts.items():
        sandbox.register_receipt(receipt, valid=name != "invalid")
    config = provider_table("staq", server.url, kind="staq") + "\n" + CONFIGS
    env = {"EB_TEST_LAUNCH": json.dumps(launch.spec), "EB_TEST_RECEIPTS": json.dumps(receipts)}
    try:
        with Daemon(tmp_path / "daemon", config=config) as daemon:
            godot = Godot(tmp_path, daemon, f'identity/game_build="{GAME_BUILD}"\ndaemon/auto_launch="yes"\n',
                          MainActs(daemon, sandbox, config, launch))
            try:
                known, _ = godot.run("main", OTHER_CHECKS, **env)
                launched_pid = launch.pid()
            finally:
                launch.stop()
            check_store(daemon, known)
            # The game quit with a purchase pending and one unsent; staq comes back, the daemon verifies the first.
            orphan, unsent = known["orphan"], known["unsent"]
            assert stored_purchase(daemon, orphan) == (None,), "the orphan purchase was verified while staq was down"
            assert stored_purchase(daemon, unsent) is None, "the unsent purchase reached the daemon"
            sandbox.faults.clear()
            wait_until(lambda: stored_purchase(daemon, orphan) != (None,), 15, what="the pending purchase's verdict")
            more, _ = godot.run("restart", RESTART_CHECKS, EB_TEST_ORPHAN=orphan, EB_TEST_UNSENT=unsent, **env)
            known.update(more)
            check_purchases(daemon, sandbox, known, receipts)
    finally:
        server.stop()
    assert known["launched"]["pid"] == launched_pid > 0, "get_stats() names the process auto_launch started"
    assert "engine-bridge ready for game godot-launch" in launch.log(), launch.log()
    for game, pair in known["game_ports"].items():
        assert pair == list(default_endpoints(game, unix_sockets=False)), (game, pair)
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
    assert stream == list(range(known["stream"]["events"])), "stream events lost or stored twice across the outage"
    # The first events reached the stopped daemon before the bridge gave up on them (it may have stored
    # them); those dropped before they were ever sent cannot be in the store; the newest are.
    overflow = {e["fields"]["value"] for e in events if e["fields"].get("custom_01") == "overflow"}
    sent, never_sent = known["overflow"]["sent"], known["overflow"]["never_sent"]
    assert not overflow & set(range(sent, sent + never_sent)), f"events counted as never sent were stored: {overflow}"
    assert set(range(sent + never_sent, sent * 2 + never_sent)) <= overflow, f"the newest events are kept: {overflow}"
    with sqlite3.connect(daemon.db_path) as db:
        row = db.execute("SELECT engine, binding, binding_version, game_build, platform FROM devices "
                         "WHERE device_id = ?", (device,)).fetchone()
    assert row == ("godot", "engine-bridge-godot", "0.2.0", GAME_BUILD, "linux"), row


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


# --- a provider's refusal reaches the game at once -----------------------------------------------------------

def test_godot_provider_refusal_reaches_the_game(tmp_path: Path) -> None:
    """An event whose id breaks a GameAnalytics rule is stored, listed in its ack's `invalid`: provider_refused
    fires with the id, the provider and the rule, get_stats() counts it, and Godot's console warns at once;
    more of them within the warning interval are summed up in one warning when it is over."""
    _, server = start_sandbox("gameanalytics")
    try:
        with Daemon(tmp_path / "daemon", config=provider_table("gameanalytics", server.url)) as daemon:
            godot = Godot(tmp_path, daemon, f"behavior/warning_interval_ms={WARNING_INTERVAL_MS}\n")
            known, output = godot.run("refusals", 5)
            uids = {e["uid"] for e in daemon.events()}
    finally:
        server.stop()
    refusal = known["refusal"]
    assert refusal["id"] in uids, "the refused event is stored all the same"
    warned = console_warnings(output, "gameanalytics refuses event")
    assert len(warned) == 2, warned
    assert refusal["id"] in warned[0] and refusal["rule"] in warned[0], warned[0]
    assert f"{known['refusals']['count'] - 1} more like this since the last warning" in warned[1], warned[1]


# --- an absent daemon, or another program on its port, is said once ------------------------------------------

class NotADaemon:
    """Another program on a port: it answers whatever it gets with an HTTP error and hangs up."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


def test_godot_says_once_when_the_daemon_is_absent(tmp_path: Path) -> None:
    foreign = NotADaemon()
    try:
        with Daemon(tmp_path / "daemon") as daemon:
            known, output = Godot(tmp_path, daemon).run("absent", 13, EB_TEST_FOREIGN_ENDPOINT=foreign.endpoint)
    finally:
        foreign.close()
    absent = known["absent"]
    assert len(console_warnings(output, f"no engine-bridge daemon answers at {absent['nobody']}")) == 1, output
    assert len(console_warnings(output, f"{absent['foreign']} belongs to another program")) == 1, output


# --- every way of quitting: all queued events stored, the session ended -------------------------------------

def test_godot_every_way_of_quitting_stores_the_queue_and_ends_the_session(tmp_path: Path) -> None:
    """Each way in an install of its own (its own device, hence user): a session left open would not be ended
    by the next run's session_start."""
    with Daemon(tmp_path / "daemon") as daemon:
        godot = Godot(tmp_path, daemon)
        for way in QUIT_WAYS:
            # shutdown() is for a game that ends its own way: this one kills itself right after it (SIGKILL,
            # which `timeout` passes on as its own end).
            known, _ = godot.run(f"quit_{way}", 2, exit_code=-signal.SIGKILL if way == "shutdown" else 0,
                                 install=way)
            assert known["quit"] == {"way": way, "events": QUIT_EVENTS}
        events = daemon.events()
        with sqlite3.connect(daemon.db_path) as db:
            sessions = db.execute("SELECT device_id, session_id, ended_at FROM sessions").fetchall()
    for way in QUIT_WAYS:
        mine = [e for e in events if e["fields"].get("custom_01") == f"quit_{way}"]
        assert sorted(e["fields"]["value"] for e in mine) == list(range(QUIT_EVENTS)), f"{way}: events lost"
        device = {e["device_id"] for e in mine}
        assert len(device) == 1, device
        its = [(sid, at) for d, sid, at in sessions if d in device]
        assert {e["session_id"] for e in mine} <= {sid for sid, _ in its}, f"{way}: events outside its sessions"
        assert its and all(at is not None for _, at in its), f"{way}: a session was left open: {its}"


# --- the editor plugins, as each Godot finds them --------------------------------------------------------------

def godot3_plugins(addons: Path) -> list[Path]:
    """The plugin.cfg files Godot 3's editor lists: addons/<folder>/plugin.cfg, one level only
    (EditorPluginSettings::update_plugins)."""
    return sorted(p / "plugin.cfg" for p in addons.iterdir() if (p / "plugin.cfg").is_file())


def godot4_plugins(folder: Path) -> list[Path]:
    """The plugin.cfg files Godot 4's editor lists: each folder's plugin.cfg, or else those of its subfolders
    (EditorPluginSettings::_get_plugins)."""
    found: list[Path] = []
    for p in sorted(folder.iterdir()):
        if p.is_dir() and not p.name.startswith("."):
            found += [p / "plugin.cfg"] if (p / "plugin.cfg").is_file() else godot4_plugins(p)
    return found


def plugin_script(cfg: Path) -> Path:
    script = re.search(r'^script="(.+)"$', cfg.read_text(), re.MULTILINE)
    assert script, cfg
    return (cfg.parent / script.group(1)).resolve()


def test_each_godot_finds_its_own_editor_plugin(tmp_path: Path) -> None:
    """A Godot 3 install (both folders of addons/) and a Godot 4 install (addons/engine_bridge only) each list
    exactly one Engine Bridge plugin, whose script is that version's: nothing to edit after an update."""
    godot3 = godot3_plugins(ADDONS)
    assert [plugin_script(p) for p in godot3] == [ADDON / "godot3" / "plugin.gd"], godot3
    assert (ADDON / "godot3" / "plugin.gd").read_text().startswith("tool\n")
    shutil.copytree(ADDON, tmp_path / "addons" / "engine_bridge")
    godot4 = godot4_plugins(tmp_path / "addons")
    assert [plugin_script(p) for p in godot4] == [tmp_path / "addons" / "engine_bridge" / "godot4" / "plugin.gd"]
    assert (ADDON / "godot4" / "plugin.gd").read_text().startswith("@tool\n")


# --- the GDScript, parse-checked and linted -------------------------------------------------------------------

def gdscript_sources() -> list[Path]:
    """Every GDScript of the binding but godot3/plugin.gd, whose `tool` keyword gdtoolkit (Godot 4's grammar)
    does not parse; the headless Godot 3 run compiles that one."""
    return sorted(p for p in GODOT.rglob("*.gd") if p != ADDON / "godot3" / "plugin.gd")


def godot4_sources() -> list[Path]:
    """Everything Godot 4 loads: the shared core, the godot4/ adapter and plugin, the example project."""
    core = sorted(ADDON.glob("*.gd")) + sorted((ADDON / "internal").glob("*.gd"))
    return core + sorted((ADDON / "godot4").glob("*.gd")) + sorted((GODOT / "example").glob("*.gd"))


def test_gdscript_parses_and_lints() -> None:
    tools = Path(sys.executable).parent
    names = {str(p.relative_to(GODOT)) for p in godot4_sources()}
    assert {"addons/engine_bridge/engine_bridge.gd", "addons/engine_bridge/internal/ingress_link.gd",
            "addons/engine_bridge/godot4/adapter.gd", "addons/engine_bridge/godot4/plugin.gd",
            "example/main.gd"} <= names, names
    # gdtoolkit is no part of bridge/: under `coverage run` (patch = ["subprocess"]) it would be traced for
    # nothing, at three times the time.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS_")}
    for tool, files in (("gdparse", godot4_sources()), ("gdlint", gdscript_sources())):
        exe = tools / tool
        assert exe.exists(), f"{tool} missing: pip install gdtoolkit (the [test] extra)"
        result = subprocess.run([str(exe), *map(str, files)], capture_output=True, text=True, timeout=120, cwd=GODOT,
                                check=False, env=env)
        assert result.returncode == 0, f"{tool}:\n{result.stdout}\n{result.stderr}"


def test_shared_core_avoids_version_specific_names() -> None:
    """The shared core must parse in Godot 3 and 4: names that exist in only one of them belong in an
    adapter. (Godot 3 parses and runs it in the headless test; this catches Godot 4-only breakage.)"""
    godot3_only = ["PoolByteArray", "PoolStringArray", "TYPE_REAL", "TYPE_RAW_ARRAY", "to_utf8()", "yield(",
                   "File.new", "OS.get_system_time", "OS.get_ticks", "onready ", "export ", "setget", "tool\n",
                   ".empty()", "funcref(", "is_valid_integer", "subarray(", "OS.execute(", "MainLoop.NOTIFICATION"]
    godot4_only = ["PackedByteArray", "PackedStringArray", "TYPE_FLOAT", "TYPE_PACKED", "to_utf8_buffer",
                   "await ", "FileAccess", "Time.", "@onready", "@export", "@tool", "is_empty()", "Callable(",
                   "create_process", ".slice(", "WM_CLOSE_REQUEST", "auto_accept_quit"]
    for path in sorted(ADDON.glob("*.gd")) + sorted((ADDON / "internal").glob("*.gd")):
        source = path.read_text()
        found = [name for name in godot3_only + godot4_only if name in source]
        assert not found, f"{path.name} uses version-specific {found}; move it to godot3/ and godot4/adapter.gd"


# --- shipped with a game: the bundled daemon next to the game's executable (tests/bindings/shipping.py) ---------

def ship_game(install: shipping.Install, mode: str, settings: str, name: str = "") -> list[str]:
    """The game as an export ships it: Godot's executable in the install folder (a link to godot3-server, the
    folder the addon finds the daemon from) and the project beside it, whose Project Settings are the game's."""
    program = install.folder / "godot-game"
    if not program.exists():
        try:
            os.link(godot_binary(), program)
        except OSError:  # another file system: a copy
            shutil.copy2(godot_binary(), program)
    project = install.folder / f"project-{name or mode}"
    shutil.copytree(GODOT / "test_project", project)
    shutil.copytree(ADDONS, project / "addons")
    write_project_file(project, "engine-bridge shipped game", None, f'identity/game="{install.game}"\n{settings}',
                       "res://ship.tscn")
    # stdbuf: Godot writes through stdio, which a pipe would buffer; the lines must come as they are printed.
    return ["stdbuf", "-oL", "-eL", str(program), "--path", str(project), "--", mode, str(shipping.COUNT)]


def launching(daemon: str) -> str:
    return f'daemon/auto_launch=true\ndaemon/executable="{daemon}"\n'


@pytest.mark.alone
@pytest.mark.parametrize("quit_cleanly", [False, True], ids=["killed", "quits"])
def test_godot_game_with_the_bundled_daemon(install: shipping.Install, tmp_path: Path, quit_cleanly: bool) -> None:
    mode = "quit" if quit_cleanly else "play"
    shipping.play(ship_game(install, mode, launching(shipping.DAEMON)), install, tmp_path, quit_cleanly)


@pytest.mark.alone
def test_godot_bundled_daemon_missing_and_another_games_daemon(install: shipping.Install, tmp_path: Path) -> None:
    with Daemon(tmp_path / "other", extra_args=["--game", "other-game"]) as other:
        endpoints = f'connection/ingress_endpoint="{other.ingress}"\nconnection/configs_endpoint="{other.publish}"\n'
        shipping.missing_and_wrong_game(
            ship_game(install, "missing", launching("engine-bridge-missing/engine-bridge")),
            ship_game(install, "missing", launching(shipping.NOT_EXECUTABLE), "noexec"),
            ship_game(install, "wrong", endpoints), install, tmp_path, other)
