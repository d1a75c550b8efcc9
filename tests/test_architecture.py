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
