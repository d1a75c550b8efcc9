"""The sandbox server's standing latency (`SandboxServer(latency_s=...)`, `engine-bridge sandbox --latency-ms N`):
each request on a collector route is answered that much later, concurrent requests side by side.

The concurrency checks rest on the sandbox's own figures (its peak of requests answered at once, the times it
stored the events at), not on how long the test took: a loaded machine makes a test slow, never a sleep short.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.sandbox import GameAnalyticsSandbox, SandboxServer
from bridge.sandbox.faults import MAX_DELAY_S
from bridge.sandbox.run import main as sandbox_main

REPO = Path(__file__).resolve().parents[2]
GAME_KEY = "5c6bcb5402204249437fb5a7a80a4959"
SECRET = "16813a12f718bc5c620f56944e1abc3ea13ccbac"
LATE_S = 0.3


def design(event_id: str) -> dict[str, Any]:
    return {"category": "design", "event_id": event_id, "v": 2, "user_id": "u-1", "client_ts": int(time.time()),
            "sdk_version": "rest api v2", "os_version": "linux 6", "manufacturer": "unknown", "device": "unknown",
            "platform": "linux", "session_id": str(uuid.uuid4()), "session_num": 1}


def post_events(url: str, events: list[dict[str, Any]], timeout: float = 10) -> httpx.Response:
    body = json.dumps(events).encode()
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return httpx.post(f"{url}/v2/{GAME_KEY}/events", content=body, timeout=timeout,
                      headers={"Content-Type": "application/json", "Authorization": signature})


@pytest.fixture
def late() -> Iterator[tuple[GameAnalyticsSandbox, SandboxServer]]:
    sandbox = GameAnalyticsSandbox()
    with SandboxServer(sandbox, latency_s=LATE_S) as server:
        yield sandbox, server


def test_concurrent_requests_each_wait_the_latency_side_by_side(
        late: tuple[GameAnalyticsSandbox, SandboxServer]) -> None:
    sandbox, server = late
    start = threading.Barrier(2)
    answers: list[int] = []

    def post(name: str) -> None:
        start.wait(10)
        answers.append(post_events(server.url, [design(name)]).status_code)

    began = time.time()
    threads = [threading.Thread(target=post, args=(name,)) for name in ("a:1", "b:1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == [200, 200]
    stored_at = [record["received_at"] for record in sandbox.accepted()]
    assert len(stored_at) == 2
    assert server.peak_concurrency == 2  # both were in the server at once...
    assert min(stored_at) - began >= LATE_S  # ...each waited the latency before it was handled...
    assert max(stored_at) - min(stored_at) < LATE_S  # ...side by side: one after the other, LATE_S apart or more


def test_admin_routes_answer_at_once_and_faults_fire_late(late: tuple[GameAnalyticsSandbox, SandboxServer]) -> None:
    sandbox, server = late
    server.latency_s = 60.0  # changed while it runs; the admin route must not wait it (timeout 5 s)
    assert httpx.get(f"{server.url}/_sandbox/counts", timeout=5).status_code == 200
    server.latency_s = LATE_S
    sandbox.faults.fail("events", status=503)
    began = time.monotonic()
    assert post_events(server.url, [design("f:1")]).status_code == 503  # a fault queued meanwhile still fires
    assert time.monotonic() - began >= LATE_S
    sandbox.reset()  # forgets faults and events, not the server's latency
    began = time.monotonic()
    assert post_events(server.url, [design("f:2")]).status_code == 200
    assert time.monotonic() - began >= LATE_S
    sandbox.faults.slow("events", delay_s=0.2)  # a delay fault adds to the latency
    began = time.monotonic()
    assert post_events(server.url, [design("f:3")]).status_code == 200
    assert time.monotonic() - began >= LATE_S + 0.2
    assert [e["event_id"] for e in sandbox.accepted_events()] == ["f:2", "f:3"]


def test_a_latency_out_of_range_is_refused() -> None:
    sandbox = GameAnalyticsSandbox()
    for bad in (-0.1, MAX_DELAY_S + 1, "0.3", True, float("nan")):
        with pytest.raises(ValueError, match="latency_s"):
            SandboxServer(sandbox, latency_s=bad)  # type: ignore[arg-type]
    server = SandboxServer(sandbox)
    assert server.latency_s == 0.0
    with pytest.raises(ValueError, match="latency_s"):
        server.latency_s = -1
    for bad in ("-5", "soon", "inf", str(MAX_DELAY_S * 1000 + 1)):
        with pytest.raises(SystemExit) as exited:
            sandbox_main(["--latency-ms", bad])
        assert exited.value.code == 2


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 20) -> list[str]:
    """The process's stdout lines up to and including the first holding `marker`."""
    lines: list[str] = []
    stdout = proc.stdout
    assert stdout is not None

    def read() -> None:
        for line in stdout:
            lines.append(line)
            if marker in line:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return lines


def test_the_sandbox_command_takes_latency_ms() -> None:
    """`engine-bridge sandbox --latency-ms 300`: the GameAnalytics collector answers 300 ms late, its admin
    routes at once."""
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "sandbox", "--quiet", "--latency-ms", "300"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        lines = read_until(proc, "staq sandbox listening on")
        ga = next((line for line in lines if line.startswith("GameAnalytics sandbox listening on ")), None)
        assert ga is not None, lines
        assert any("answers every collector request 300 ms late" in line for line in lines), lines
        url = ga.split(" listening on ")[1].strip()
        began = time.monotonic()
        assert post_events(url, [design("cli:1")]).status_code == 200
        assert time.monotonic() - began >= LATE_S
        counts = httpx.get(f"{url}/_sandbox/counts", timeout=5).json()
        assert counts["accepted"] == 1 and counts["faults_fired"] == {}  # a latency, not a standing fault
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


def test_many_clients_connecting_at_once_are_all_answered() -> None:
    """A client with many requests in flight opens as many connections at once: each is accepted and answered
    (with socketserver's listen backlog of 5, some were reset before the server took them)."""
    sandbox = GameAnalyticsSandbox()
    clients = 64

    async def post_all(url: str) -> list[int]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as http:
            async def post(i: int) -> int:
                body = json.dumps([design(f"many:{i}")]).encode()
                signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
                answer = await http.post(f"{url}/v2/{GAME_KEY}/events", content=body,
                                         headers={"Authorization": signature})
                return answer.status_code

            return list(await asyncio.gather(*(post(i) for i in range(clients))))

    with SandboxServer(sandbox, latency_s=LATE_S) as server:
        statuses = asyncio.run(post_all(server.url))
    assert statuses == [200] * clients
    assert sandbox.counts()["accepted"] == clients
