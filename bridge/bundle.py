"""`engine-bridge bundle`: the daemon frozen by PyInstaller into one folder that a game ships beside itself.

One folder, not one file: a one-file build unpacks itself into a temporary folder at every start (2-3 s, twice
the one-folder start) through a bootloader process whose death (a SIGKILL with the game) orphans the real
daemon and leaves the unpacked folder behind. PyInstaller is a build dependency only (`pip install
'engine-bridge[bundle]'`); the player's machine needs no Python. The built-in providers are imported by the
registry, so the freezer sees them; a third-party provider's package is named with `--with` so that its modules
and its entry point's metadata go in too.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

NAME = "engine-bridge"
# The frozen program's entry: the same `main` as the installed command.
ENTRY = "from bridge.cli import main\n\nraise SystemExit(main())\n"
# Imported by nothing the daemon runs, yet found in a development venv by the freezer's analysis.
# PostgreSQL is for fleets of dedicated servers, which run the installed daemon: a game's bundle holds SQLite.
EXCLUDES = ("tkinter", "pytest", "_pytest", "mypy", "ruff", "coverage", "pip", "setuptools", "IPython", "psycopg",
            "psycopg_binary")


class BundleError(Exception):
    """The bundle cannot be built; the message says what to do."""


def executable(folder: Path) -> Path:
    """The daemon's program inside a built bundle folder."""
    return folder / (NAME + (".exe" if sys.platform == "win32" else ""))


def pyinstaller_args(out: Path, work: Path, entry: Path, extra_packages: list[str]) -> list[str]:
    """PyInstaller's command line for a one-folder build of `entry` into out/engine-bridge."""
    args = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--onedir", "--console", "--name", NAME,
            "--distpath", str(out), "--workpath", str(work / "build"), "--specpath", str(work),
            "--paths", str(Path(__file__).resolve().parent.parent), "--log-level", "WARN"]
    for module in EXCLUDES:
        args += ["--exclude-module", module]
    for package in extra_packages:
        args += ["--collect-submodules", package, "--copy-metadata", package]
    return [*args, str(entry)]


def build(out: Path, extra_packages: list[str] | None = None) -> Path:
    """Build the bundle into out/engine-bridge (replacing an earlier one) and return that folder."""
    if importlib.util.find_spec("PyInstaller") is None:
        raise BundleError("PyInstaller is not installed: pip install 'engine-bridge[bundle]' (a build dependency "
                          "only; players need nothing)")
    out.mkdir(parents=True, exist_ok=True)
    folder = out / NAME
    with tempfile.TemporaryDirectory(prefix="engine-bridge-bundle-") as tmp:
        work = Path(tmp)
        entry = work / "engine_bridge_main.py"
        entry.write_text(ENTRY)
        if folder.exists():
            shutil.rmtree(folder)
        result = subprocess.run(pyinstaller_args(out, work, entry, list(extra_packages or [])),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise BundleError(f"PyInstaller failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    if not executable(folder).exists():
        raise BundleError(f"PyInstaller finished but {executable(folder)} is missing")
    return folder


def size_bytes(folder: Path) -> int:
    """What the folder weighs on disk: what a game's download grows by."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
