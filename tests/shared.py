"""What one test run shares between its processes (pytest-xdist's workers and their controller): a folder, and
builds made once into it, started in the background as soon as the run knows it needs them.

A build is a shell command run once per test run in `shared_dir()/<name>/`; the process that starts it writes
`started` (created exclusively, so only one process starts it), the command writes its output to `log` and its
exit code to `rc` when it ends. `wait_for_build` blocks until `rc` exists and fails the test with the log if the
build failed. Whoever started a build stops it if the run ends before the build does.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

_started: list[subprocess.Popen[bytes]] = []


def shared_dir(factory: pytest.TempPathFactory) -> Path:
    """The run's base temporary folder: under pytest-xdist the parent of every worker's own base folder."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def start_build(root: Path, name: str, steps: list[list[str]]) -> None:
    """Run `steps` one after the other in the background, once per test run, unless it is started already."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(folder / "started", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    script = " && ".join(shlex.join(step) for step in steps)
    # rc is written to a temporary name and renamed: whoever sees `rc` sees all of it.
    command = f'( {script} ) > "$0/log" 2>&1; echo $? > "$0/rc.tmp"; mv "$0/rc.tmp" "$0/rc"'
    _started.append(subprocess.Popen(["sh", "-c", command, str(folder)], start_new_session=True,
                                     stdin=subprocess.DEVNULL))


def wait_for_build(root: Path, name: str, timeout_s: float) -> Path:
    """The build's folder once it succeeded; fails the test with its log if it failed or took too long."""
    folder = root / name
    rc = folder / "rc"
    deadline = time.monotonic() + timeout_s
    while not rc.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{name} still building after {timeout_s:.0f} s:\n{_log(folder)}")
        time.sleep(0.2)
    code = int(rc.read_text())
    if code != 0:
        pytest.fail(f"{name} failed (exit {code}):\n{_log(folder)}")
    return folder


def stop_builds() -> None:
    """Stop the builds this process started that are still running (the run ended first)."""
    for proc in _started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _log(folder: Path) -> str:
    log = folder / "log"
    return log.read_text(errors="replace")[-20000:] if log.exists() else "(no log)"
