"""The load generator every benchmark shares: pre-encoded requests from a bare DEALER, a window in flight.

Frames are encoded before the clock starts, so the figure is the daemon's (or the ceiling's), not msgpack's.
`python -m benchmarks.loadgen ENDPOINT single|batch COUNT WINDOW RATE` runs it in its own process and prints
its figures as JSON: the core benchmark's load comes from a separate process.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import msgpack
import zmq

HELLO = {"type": "hello", "rid": 0, "protocol": 1, "engine": "bench", "binding": "bench", "binding_version": "1",
         "game_build": "1", "device_id": "bench-device"}
SILENCE_S = 30  # an unacknowledged request this old means the daemon dropped it: the run fails, it does not hang


def design_event(i: int) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "category": "design", "ts": 1795600000000 + i,
            "fields": {"event_id": "level:complete:boss", "value": float(i)}}


def frames(per_message: int, events: int) -> list[bytes]:
    """`event` requests when per_message is 1, else `events` batches of per_message."""
    if per_message == 1:
        return [msgpack.packb({"type": "event", "rid": i + 1, "event": design_event(i)}) for i in range(events)]
    return [msgpack.packb({"type": "events", "rid": n + 1,
                           "events": [design_event(n * per_message + i) for i in range(per_message)]})
            for n in range(events // per_message)]


def drive(endpoint: str, todo: list[bytes], per_message: int, window: int, rate: float = 0.0) -> dict[str, float]:
    """Send every frame (rid = position + 1), `window` in flight, paced to `rate` events/s if > 0; the figures."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    try:
        sock.send(msgpack.packb(HELLO))
        if not sock.poll(15_000):
            raise SystemExit(f"no welcome from {endpoint}")
        sock.recv()
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        sent = done = 0
        start = time.perf_counter()
        while done < len(todo):
            now = time.perf_counter()
            while (sent < len(todo) and len(sent_at) < window
                   and (rate <= 0 or sent * per_message < (now - start) * rate)):
                sent_at[sent + 1] = time.perf_counter()
                sock.send(todo[sent], copy=False)
                sent += 1
            if not sock.poll(1 if rate > 0 else SILENCE_S * 1000):
                # sent_at keeps the order of sending: its first entry is the oldest request not acknowledged.
                if rate <= 0 or (sent_at and now - next(iter(sent_at.values())) > SILENCE_S):
                    raise SystemExit(f"the daemon stopped answering: {len(sent_at)} requests unacknowledged "
                                     f"after {SILENCE_S:.0f} s ({done} of {len(todo)} acknowledged)")
                continue
            while True:
                try:
                    reply = msgpack.unpackb(sock.recv(zmq.NOBLOCK))
                except zmq.Again:
                    break
                if reply.get("type") != "ack":
                    raise SystemExit(f"unexpected reply: {reply}")
                latencies.append(time.perf_counter() - sent_at.pop(reply["rid"]))
                done += 1
        elapsed = time.perf_counter() - start
    finally:
        sock.close(0)
    latencies.sort()
    return {"events_per_s": done * per_message / elapsed, "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)], "events": done * per_message}


if __name__ == "__main__":
    endpoint, mode, count, window, rate = sys.argv[1:6]
    per = 1 if mode == "single" else 100
    print(json.dumps(drive(endpoint, frames(per, int(count)), per, int(window), float(rate))))
