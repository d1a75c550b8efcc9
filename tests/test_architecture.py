"""The shape of the code, read from its imports: data flows one way, and the ingress is no hub."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"


def import_statements(path: Path) -> list[tuple[str, list[str], bool]]:
    """(module, imported names, written `from module import`) per import of one file, relative ones resolved."""
    package = ["bridge", *path.relative_to(BRIDGE).parent.parts]
    found: list[tuple[str, list[str], bool]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            found.append((module, [alias.name for alias in node.names], node.module is not None))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, [], True) for alias in node.names)
    return found


def imports_of(path: Path) -> set[str]:
    """The bridge modules one file imports (relative imports resolved), as dotted names."""
    found: set[str] = set()
    for module, names, named in import_statements(path):
        found.update([module] if named else [f"{module}.{name}" for name in names])
    return {name for name in found if name.startswith("bridge")}


def test_the_ingress_knows_protocol_intake_sessions_stats_the_store_and_its_relay_socket_only() -> None:
    imported = imports_of(BRIDGE / "ingress.py")
    assert imported <= {"bridge.__version__", "bridge.intake", "bridge.protocol", "bridge.secure", "bridge.sessions",
                        "bridge.stats", "bridge.store"}, imported
    assert imports_of(BRIDGE / "secure.py") <= {"bridge.keys", "bridge.protocol"}


def imported_names(path: Path) -> set[str]:
    """Every dotted name one file imports, `from a import b` as `a.b` (b may be a module or a name in a)."""
    found: set[str] = set()
    for module, names, _ in import_statements(path):
        found.update([f"{module}.{name}" for name in names] or [module])
    return {name for name in found if name.startswith("bridge")}


def module_name(path: Path) -> str:
    parts = ["bridge", *path.relative_to(BRIDGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the bridge modules it imports (a name imported from a package counts as the package)."""
    modules = {module_name(p): p for p in BRIDGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(path):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, found by depth-first search (each reported once, from where it was entered)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_cycles_are_found_when_there_are_some() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycle_anywhere_in_bridge() -> None:
    graph = import_graph()
    assert "bridge.providers.gameanalytics.provider" in graph  # the graph is the real one
    assert cycles(graph) == []


def test_one_module_sends_provider_http_and_no_provider_catches_transport_errors() -> None:
    clients = {module_name(p) for p in BRIDGE.rglob("*.py")
               if "sandbox" not in p.parts and re.search(r"httpx\.(Async)?Client\(", p.read_text())}
    assert clients == {"bridge.sender"}
    for path in (BRIDGE / "providers").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"TransportError|TimeoutException|TRANSIENT|\.client\b", text), path


def test_the_store_parts_import_one_another_in_layers() -> None:
    """Schema and rows know no other part, the Store knows the schema, each concern builds on the Store, schema
    and rows (never on another concern), and views gathers the concerns: no cycle. The store imports nothing
    else of the bridge."""
    layer = {"schema": 0, "rows": 0, "database": 1, "ingest": 2, "delivery": 2, "purchases": 2, "state": 2,
             "housekeeping": 2, "privacy": 2, "views": 3}
    parts = {path.stem: imports_of(path) for path in (BRIDGE / "store").glob("*.py") if path.stem != "__init__"}
    assert set(parts) == set(layer)
    for part, imported in parts.items():
        for name in imported:
            assert name.startswith("bridge.store."), (part, name)
            assert layer[name.split(".")[2]] < layer[part], (part, name)


def test_the_shipping_modules_know_little() -> None:
    """The game identity needs only the protocol's id rule; the lifetime watchers and the bundle builder none of
    the bridge: the daemon and the CLI wire them."""
    assert imports_of(BRIDGE / "game.py") <= {"bridge.protocol", "bridge.protocol.GAME_RE"}
    assert imports_of(BRIDGE / "lifetime.py") == set()
    assert imports_of(BRIDGE / "bundle.py") == set()


def test_the_operators_window_knows_no_part_it_watches_and_only_the_daemon_and_cli_know_it() -> None:
    """bridge.ops reads the store and the figures the daemon hands it (callables, a lane hook): it imports
    neither the ingress, the dispatcher, the lanes, the publisher nor the daemon, and only those two wire it."""
    graph = import_graph()
    ops = {name for name in graph if name.startswith("bridge.ops")}
    assert {"bridge.ops", "bridge.ops.server", "bridge.ops.feed", "bridge.ops.metrics", "bridge.ops.health",
            "bridge.ops.tap", "bridge.ops.top", "bridge.ops.validate"} <= ops
    watched = {"bridge.ingress", "bridge.dispatcher", "bridge.lane", "bridge.publisher", "bridge.daemon",
               "bridge.sender", "bridge.cli"}
    for name in ops:
        assert not graph[name] & watched, (name, graph[name] & watched)
    users = {name for name, targets in graph.items() if targets & ops and name not in ops}
    assert users == {"bridge.daemon", "bridge.cli"}, users


def test_consent_and_erasure_flow_one_way() -> None:
    """The ingress writes players' consent and erasure requests into the store (through intake and ingest);
    the dispatcher settles the ledger, handing each provider an `Erasure` it answers with an `Erased`: no
    provider reaches the ledger, the dispatcher, the ingress or intake, and intake reaches no provider."""
    for path in (BRIDGE / "providers").rglob("*.py"):
        names = imported_names(path)
        assert not {n for n in names if n.startswith(("bridge.dispatcher", "bridge.ingress", "bridge.intake",
                                                      "bridge.store.privacy", "bridge.store.Ledger"))}, path
    assert not {n for n in imported_names(BRIDGE / "intake.py") if n.startswith(("bridge.providers",
                                                                                  "bridge.dispatcher"))}
    ledger_users = {module_name(p) for p in BRIDGE.rglob("*.py") if "Ledger" in p.read_text()}
    assert ledger_users == {"bridge.store", "bridge.store.privacy", "bridge.store.views", "bridge.cli"}, ledger_users


def test_a_shipped_games_daemon_loads_no_library_only_some_settings_need() -> None:
    """`cryptography` (staq's Google Play receipts) and `prometheus_client` (the operator's `/metrics`, off by
    default) are imported where they are used: together about 9 MB of a desktop game's daemon."""
    loaded = subprocess.run([sys.executable, "-c", "import sys, bridge.daemon, bridge.cli; print(*sys.modules)"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert "bridge.providers.staq" in loaded and "bridge.daemon" in loaded
    assert not {name for name in loaded if name.split(".")[0] in {"cryptography", "prometheus_client"}}
