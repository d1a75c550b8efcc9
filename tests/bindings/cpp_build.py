"""The C++ binding's build for the tests: every target of engine_bindings/cpp, built once per test run (in the
background from the moment the run knows it holds C++ tests) and shared by every test and xdist worker."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.harness import REPO
from tests.shared import shared_dir, start_build, wait_for_build

SOURCE = REPO / "engine_bindings" / "cpp"
NAME = "cpp-build"
TOOLS = ("cmake", "g++", "gcc", "pkg-config")
CONFIGURE_TIMEOUT_S, BUILD_TIMEOUT_S = 120, 600
TESTS = "tests/bindings/test_cpp.py"


def start(root: Path) -> None:
    """Configure and build every target into root/cpp-build/out, unless a tool is missing (the fixture says so)."""
    if any(shutil.which(tool) is None for tool in TOOLS):
        return
    out = root / NAME / "out"
    start_build(root, NAME, [
        ["timeout", str(CONFIGURE_TIMEOUT_S), "cmake", "-S", str(SOURCE), "-B", str(out), "-DCMAKE_BUILD_TYPE=Debug",
         "-DCMAKE_C_COMPILER=gcc", "-DCMAKE_CXX_COMPILER=g++"],
        ["timeout", str(BUILD_TIMEOUT_S), "cmake", "--build", str(out), "-j", "2"],
    ])


def built(factory: pytest.TempPathFactory) -> Path:
    """The build directory, once the run's one build has succeeded (started here if nobody started it)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-system-deps.sh")
    root = shared_dir(factory)
    start(root)
    return wait_for_build(root, NAME, CONFIGURE_TIMEOUT_S + BUILD_TIMEOUT_S + 60) / "out"
