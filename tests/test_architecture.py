"""The shape of the code, read from its imports: data flows one way, and the ingress is no hub."""

from __future__ import annotations

import ast
from pathlib import Path

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"


def imports_of(path: Path) -> set[str]:
    """The bridge modules one file imports (relative imports resolved), as dotted names."""
    package = ["bridge", *path.relative_to(BRIDGE).parent.parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            found.update(f"{module}.{alias.name}" if not node.module else module for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("bridge")}


def test_the_ingress_knows_protocol_sessions_stats_and_the_store_only() -> None:
    imported = imports_of(BRIDGE / "ingress.py")
    assert imported <= {"bridge.__version__", "bridge.protocol", "bridge.sessions", "bridge.stats", "bridge.store"}, imported


def test_the_store_parts_import_one_another_in_layers() -> None:
    """Schema and rows know no other part, the Store knows the schema, each concern builds on the Store, schema
    and rows (never on another concern), and views gathers the concerns: no cycle. The store imports nothing
    else of the bridge."""
    layer = {"schema": 0, "rows": 0, "database": 1, "ingest": 2, "delivery": 2, "purchases": 2, "state": 2,
             "housekeeping": 2, "views": 3}
    parts = {path.stem: imports_of(path) for path in (BRIDGE / "store").glob("*.py") if path.stem != "__init__"}
    assert set(parts) == set(layer)
    for part, imported in parts.items():
        for name in imported:
            assert name.startswith("bridge.store."), (part, name)
            assert layer[name.split(".")[2]] < layer[part], (part, name)
