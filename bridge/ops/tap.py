"""`engine-bridge tap`: what becomes of events as it happens, from the daemon's HTTP feed (server-sent events).

Lines for people, or JSON lines for tools (`--json`: each the feed's line as it came). Filters go to the
daemon, so a tap of one category is sent that category only. The daemon gives each tap a bounded queue: a tap
that cannot keep up (a slow pipe, a paused terminal) loses its own lines and is told how many, in a `dropped`
line; the ingress and the lanes never wait for it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import httpx

from .feed import SHOW_PER_TURN, TURN_S

KIND_WIDTH = 14
SHOWN_PER_S = round(SHOW_PER_TURN / TURN_S)


def stream_url(http: str) -> str:
    return f"http://{http}/events"


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, its JSON data) per server-sent event; comments and `retry` lines are passed over."""
    kind, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def human(item: dict[str, Any]) -> str:
    """One line a person reads: when, what happened, to which event, and why when it went wrong."""
    at = time.strftime("%H:%M:%S", time.localtime(item["at"] / 1000)) + f".{item['at'] % 1000:03d}"
    kind = item["kind"]
    head = f"{at}  {kind.replace('_', '-'):<{KIND_WIDTH}}"
    if kind == "stored":
        verdicts = ", ".join(f"{p} {v}" for p, v in item["verdicts"].items()) or "no provider takes it"
        return f"{head} {item['category']:<12} {name(item):<28} user {item['user_id']}  -> {verdicts}"
    if kind in ("delivered", "dead_lettered"):
        line = f"{head} {item['provider']:<14} {item.get('category') or '?':<12} {item.get('id') or item['pk']}"
        if item.get("user_id"):
            line += f"  user {item['user_id']}"
        return line + (f"  {item['code']}: {item['reason']}" if kind == "dead_lettered" else "")
    if kind == "retry":
        state = "paused" if item["paused"] else "retried"
        return f"{head} {item['provider']:<14} {item['events']} event(s) {state}: {item['error']}"
    if kind == "duplicates":
        return f"{head} {item['count']} event(s) acknowledged again (already stored)"
    if kind == "skipped":
        return f"{head} {item['count']} stored event(s) not shown (the feed shows at most {SHOWN_PER_S}/s)"
    if kind == "dropped":
        return f"{head} {item['count']} line(s) lost: this tap could not keep up ({item['total']} in all)"
    return f"{head} {json.dumps(item)}"


def name(item: dict[str, Any]) -> str:
    """What a person calls the event: its event id, a custom event's name, else its id."""
    fields = item.get("fields") or {}
    return str(fields.get("event_id") or fields.get("name") or item.get("id"))


def run(http: str, categories: list[str], providers: list[str], users: list[str], json_lines: bool,
        out: TextIO = sys.stdout) -> int:
    params = {key: ",".join(values) for key, values in
              (("category", categories), ("provider", providers), ("user", users)) if values}
    url = stream_url(http)
    try:
        with httpx.stream("GET", url, params=params, timeout=httpx.Timeout(5.0, read=None)) as response:
            if response.status_code != 200:
                print(f"engine-bridge tap: {url} answered {response.status_code}", file=sys.stderr)
                return 1
            print(f"engine-bridge tap: connected to {url}" + (f" ({params})" if params else ""), file=sys.stderr,
                  flush=True)
            for _kind, item in parse_sse(response.iter_lines()):
                print(json.dumps(item) if json_lines else human(item), file=out, flush=True)
    except httpx.TransportError as exc:
        print(f"engine-bridge tap: nothing answers on {url} ({exc}): is the daemon running with [daemon] http "
              "set (or run --http)?", file=sys.stderr)
        return 1
    print("engine-bridge tap: the daemon closed the feed (it stopped)", file=sys.stderr)
    return 0
