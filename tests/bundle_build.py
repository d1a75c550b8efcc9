"""The bundled daemon for the tests: `engine-bridge bundle` (PyInstaller, about a minute) run once per test run in
the background from the moment the run knows it holds tests of the bundle, and shared by every test and xdist
worker, as the C++ build is. Tests of the bundle are those of tests/test_bundle.py and every test whose name says
`bundled`; the figures they measure are printed at the end of the run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bridge.bundle import executable
from tests.shared import shared_dir, start_build, wait_for_build

NAME = "bundle"
BUILD_TIMEOUT_S = 600
FIGURES = "figures.txt"


def uses_bundle(nodeid: str) -> bool:
    return nodeid.startswith("tests/test_bundle.py") or "bundled" in nodeid


def start(root: Path) -> None:
    """Build into root/bundle/out/engine-bridge; coverage's subprocess patch is kept out of the freezer."""
    start_build(root, NAME, [["env", "-u", "COVERAGE_PROCESS_CONFIG", "-u", "COVERAGE_PROCESS_START", "timeout",
                              str(BUILD_TIMEOUT_S), sys.executable, "-m", "bridge", "bundle", "--out",
                              str(root / NAME / "out")]])


def built(factory: pytest.TempPathFactory) -> Path:
    """The bundle's folder once the run's one build has succeeded (started here if nobody started it)."""
    root = shared_dir(factory)
    start(root)
    return wait_for_build(root, NAME, BUILD_TIMEOUT_S + 60) / "out" / "engine-bridge"


def daemon_program(factory: pytest.TempPathFactory) -> Path:
    return executable(built(factory))


def record(factory: pytest.TempPathFactory, line: str) -> None:
    """A figure for the end of the run (size, time to the first welcome): CI prints it."""
    with open(shared_dir(factory) / NAME / FIGURES, "a", encoding="utf-8") as out:
        out.write(line + "\n")


def figures(root: Path) -> str:
    path = root / NAME / FIGURES
    return path.read_text(encoding="utf-8") if path.exists() else ""
