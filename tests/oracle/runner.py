"""Running scenarios: each in a folder of its own, some at the same time in processes of their own, the
latency-bound ones at a higher priority (tests/oracle/__main__.py says which)."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import tempfile
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

from tests.harness import PORT_SLOT_ENV, XDIST_SLOTS, priority
from tests.oracle.common import Mode, Report


def run_scenario(name: str, mode: Mode, keep: bool, nice: int | None = None) -> tuple[Report, float]:
    """One scenario in a folder of its own (at priority `nice` if given); a scenario that breaks is a failed
    check."""
    with priority(nice) if nice is not None else contextlib.nullcontext():
        return _run_scenario(name, mode, keep)


def _run_scenario(name: str, mode: Mode, keep: bool) -> tuple[Report, float]:
    t0 = time.monotonic()
    folder = (contextlib.nullcontext(tempfile.mkdtemp(prefix=f"oracle-{name}-")) if keep
              else tempfile.TemporaryDirectory(prefix=f"oracle-{name}-"))
    with folder as tmp:
        if keep:
            print(f"[{name}] kept in {tmp}", flush=True)
        try:
            report = importlib.import_module(f"tests.oracle.{name}").run(mode, Path(tmp))
        except Exception:
            report = Report(name)
            report.check("scenario ran to its end", False, traceback.format_exc())
    return report, time.monotonic() - t0


def _child(name: str, mode: Mode, keep: bool, conn: Connection) -> None:
    try:
        conn.send(run_scenario(name, mode, keep))
    finally:
        conn.close()


def run_together(names: list[str], mode: Mode, keep: bool) -> dict[str, tuple[Report, float]]:
    """`names` at the same time, each in a process of its own with a block of ports of its own."""
    context = multiprocessing.get_context("spawn")
    running = []
    for i, name in enumerate(names):
        receiver, sender = context.Pipe(duplex=False)
        os.environ[PORT_SLOT_ENV] = str(XDIST_SLOTS + i)  # read by the child's first free_port()
        proc = context.Process(target=_child, args=(name, mode, keep, sender), name=f"oracle-{name}")
        proc.start()
        sender.close()
        running.append((name, proc, receiver))
    os.environ.pop(PORT_SLOT_ENV, None)
    results = {}
    for name, proc, receiver in running:
        try:
            results[name] = receiver.recv()
        except EOFError:  # the process died without a report
            report = Report(name)
            report.check("scenario ran to its end", False, f"its process ended with exit code {proc.exitcode}")
            results[name] = (report, 0.0)
        proc.join()
    return results
