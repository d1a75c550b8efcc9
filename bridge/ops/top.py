"""`engine-bridge top`: a live terminal view of a running daemon, redrawn every second; `q` quits.

It reads what `engine-bridge status` reads (the `stats` request, as a tool connection), so it needs no HTTP
port and works over SSH like any full-screen terminal program (rich draws it; no mouse, no terminal
features beyond colours and cursor moves). Rates are the change between two readings.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..client import Client, NoReply

REFRESH_S = 1.0


class Rates:
    """Per-second rates of growing figures, between the latest two readings."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def of(self, key: str, value: float) -> float | None:
        now = time.monotonic()
        before = self._last.get(key)
        self._last[key] = (now, value)
        if before is None or now <= before[0]:
            return None
        return max(0.0, (value - before[1]) / (now - before[0]))


def render(stats: dict[str, Any] | None, rates: Rates, where: str, problem: str | None = None) -> Group:
    """The whole screen for one reading (or for a daemon that does not answer)."""
    if stats is None:
        return Group(Text(f"engine-bridge top: {where}", style="bold"),
                     Text(f"not answering ({problem}); trying again every second. q quits.", style="red"))
    store = stats["store"]
    received = rates.of("received", stats["received"])
    head = Text.assemble(
        (f"engine-bridge {stats['daemon_version']}", "bold"), f" on {where}, up {_duration(stats['uptime_s'])}, ",
        f"{stats['clients']} client(s)   ", ("q quits", "dim"))
    figures = Text(
        f"events   {stats['stored']:,} stored ({stats['rate_10s']:.1f}/s), {stats['received']:,} received "
        f"({_rate(received)}), {stats['duplicates']:,} duplicates, {stats['rejected']:,} rejected, "
        f"{stats['errors']:,} error replies\n"
        f"store    {store['events']:,} rows, {store['undelivered']:,} not yet delivered everywhere, "
        f"{store['trimmed']:,} trimmed  ({store['url']})")
    table = Table(expand=True, header_style="bold")
    for column in ("provider", "state", "queued", "in flight", "delivered", "delivered/s", "dead letters",
                   "requests", "last error"):
        table.add_column(column, justify="left" if column in ("provider", "state", "last error") else "right",
                         overflow="fold")
    for name, p in sorted(stats["providers"].items()):
        state = Text("PAUSED", "bold red") if p.get("paused") else (
            Text("retrying", "yellow") if p.get("next_retry_at") else Text("ok", "green"))
        error = p.get("paused") or p.get("last_error") or ""
        if error and p.get("last_error_at") and not p.get("paused"):
            error = time.strftime("%H:%M:%S ", time.localtime(p["last_error_at"] / 1000)) + error
        table.add_row(name, state, f"{p['queued']:,}", f"{p['in_flight']:,}", f"{p['delivered']:,}",
                      _rate(rates.of(f"delivered {name}", p["delivered"])), f"{p['dead_lettered']:,}",
                      f"{p['requests']:,}", error)
    if not stats["providers"]:
        table.add_row("(none configured)", "", "", "", "", "", "", "", "")
    errors = Table.grid(padding=(0, 1))
    for err in stats["last_errors"][-5:]:
        errors.add_row(time.strftime("%H:%M:%S", time.localtime(err["at"] / 1000)), Text(err["code"], "red"),
                       err["message"])
    return Group(head, figures, table, Text("last errors", style="bold") if stats["last_errors"] else Text(""),
                 errors)


def _rate(value: float | None) -> str:
    return "…" if value is None else f"{value:,.1f}/s"


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


@contextlib.contextmanager
def keys() -> Iterator[int | None]:
    """stdin's descriptor in cbreak mode (each key read as it is typed), restored after; None if not a tty."""
    if not sys.stdin.isatty():
        yield None
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def quit_pressed(fd: int | None, timeout_s: float) -> bool:
    """Waits up to `timeout_s` for a key; True when it was q (or Q)."""
    if fd is None:
        time.sleep(timeout_s)
        return False
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready and os.read(fd, 1) in (b"q", b"Q"):
            return True
    return False


def run(ingress: str) -> int:
    rates = Rates()
    client: Client | None = None
    with keys() as fd, Live(console=Console(), screen=True, auto_refresh=False) as live:
        while True:
            try:
                if client is None:
                    client = Client(ingress, timeout_ms=2000, device_id="top")
                    client.hello(engine="cli", role="tool")
                reply = client.request({"type": "stats"})
                view = render(reply, rates, ingress) if reply["type"] == "stats" else \
                    render(None, rates, ingress, f"{reply.get('code')}: {reply.get('message')}")
            except NoReply as exc:
                if client is not None:
                    client.close()
                client = None
                view = render(None, rates, ingress, str(exc))
            live.update(view, refresh=True)
            if quit_pressed(fd, REFRESH_S):
                break
    if client is not None:
        client.close()
    return 0
