"""The operator's HTTP endpoints of a real daemon: /metrics as Prometheus parses it, /health, the guards."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.ops.server import STATIC
from bridge.sandbox.faults import Fault
from bridge.sandbox.gameanalytics import SANDBOX_GAME_KEY, SANDBOX_SECRET_KEY
from tests.harness import Daemon, make_event
from tests.ops.conftest import OpsDaemon, ops_config
from tests.sandboxes import GaSandbox, settled, wait_until


def scrape(ops: OpsDaemon) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of /metrics, parsed by prometheus_client: sample name -> {labels: value}."""
    answer = ops.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        assert family.name.startswith(("engine_bridge_", "process_")), family.name
        for sample in family.samples:
            if family.type == "counter" and not sample.name.endswith("_created"):
                assert sample.name.endswith("_total"), sample.name
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def one(samples: dict[str, dict[Any, float]], name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def test_metrics_parse_and_their_counters_match_stats(ops_daemon: OpsDaemon) -> None:
    good = [make_event("design"), make_event("progression"), make_event("resource")]
    invalid = make_event("design", event_id="not a valid id $")
    missing_ts = {k: v for k, v in make_event("design").items() if k != "ts"}
    with ops_daemon.game() as game:
        ack = game.request({"type": "events", "events": [*good, invalid, missing_ts]})
        assert (ack["stored"], len(ack["rejected"]), len(ack["invalid"])) == (4, 1, 1)
        assert game.request({"type": "event", "event": good[0]})["duplicates"] == 1
        wait_until(lambda: settled(game, "gameanalytics"), what="everything delivered")
        wait_until(lambda: game.request({"type": "stats"})["providers"]["gameanalytics"]["dead_lettered"] == 1,
                   what="the invalid event dead-lettered")
        stats = game.request({"type": "stats"})
        samples = scrape(ops_daemon)
    for field, name in (("received", "events_received"), ("stored", "events_stored"),
                        ("duplicates", "events_duplicates"), ("rejected", "events_rejected"),
                        ("errors", "error_replies")):
        assert one(samples, f"engine_bridge_{name}_total") == stats[field], field
    assert (stats["received"], stats["stored"], stats["duplicates"], stats["rejected"]) == (6, 4, 1, 1)
    assert stats["categories"] == {
        "design": {"received": 4, "stored": 2, "duplicates": 1, "rejected": 1, "invalid": 1},
        "progression": {"received": 1, "stored": 1, "duplicates": 0, "rejected": 0, "invalid": 0},
        "resource": {"received": 1, "stored": 1, "duplicates": 0, "rejected": 0, "invalid": 0}}
    for category, figures in stats["categories"].items():
        for figure, count in figures.items():
            assert one(samples, f"engine_bridge_category_events_{figure}_total", category=category) == count
    assert one(samples, "engine_bridge_category_events_received_total", category="unknown") == 0
    assert one(samples, "engine_bridge_clients") == stats["clients"] >= 1
    store = stats["store"]
    assert one(samples, "engine_bridge_store_events") == store["events"]
    assert one(samples, "engine_bridge_store_undelivered_events") == store["undelivered"]
    assert one(samples, "engine_bridge_store_trimmed_events_total") == store["trimmed"] == 0
    assert one(samples, "engine_bridge_store_size_bytes") > 0
    ga = stats["providers"]["gameanalytics"]
    for figure, name in (("queued", "provider_queued_events"), ("in_flight", "provider_in_flight_events"),
                         ("delivered", "provider_delivered_events_total"), ("dead_lettered", "provider_dead_letters")):
        assert one(samples, f"engine_bridge_{name}", provider="gameanalytics") == ga[figure], figure
    assert ga["delivered"] == 4  # three events and the session's start; the invalid one is dead
    assert one(samples, "engine_bridge_provider_paused", provider="gameanalytics") == 0
    assert one(samples, "engine_bridge_provider_requests_total", provider="gameanalytics") >= 1
    assert time.time() - one(samples, "engine_bridge_provider_last_success_timestamp_seconds",
                             provider="gameanalytics") < 60
    assert one(samples, "engine_bridge_events_invalid_total", provider="gameanalytics", category="design") == 1
    acks = one(samples, "engine_bridge_ack_latency_seconds_count")
    assert 1 <= acks <= 2  # one per burst that acknowledged events: the batch, the duplicate
    assert one(samples, "engine_bridge_ack_latency_seconds_bucket", le="+Inf") == acks
    assert 0 < one(samples, "engine_bridge_ack_latency_seconds_sum") < 10


def test_health_is_degraded_while_the_collector_answers_503_and_ok_again_after(ops_daemon: OpsDaemon) -> None:
    def health() -> tuple[int, dict[str, Any]]:
        answer = ops_daemon.get("/health")
        return answer.status_code, answer.json()

    assert health() == (200, {"status": "ok", "reasons": []})
    ops_daemon.sandbox.faults.add(Fault("status", "events", count=None, status=503))
    with ops_daemon.game() as game:
        game.request({"type": "event", "event": make_event("design")})
        code, body = wait_until(lambda: (h := health())[0] == 503 and h, what="health degraded")
        assert body["status"] == "degraded"
        [reason] = body["reasons"]
        assert reason.startswith("provider gameanalytics: failing, retried") and "HTTP 503" in reason
        ops_daemon.sandbox.faults.clear()
        wait_until(lambda: health() == (200, {"status": "ok", "reasons": []}), what="health ok again")
        wait_until(lambda: settled(game, "gameanalytics"), what="the event delivered after the outage")
    assert ops_daemon.sandbox.counts()["accepted"] == 2  # the event and its session's start


def test_only_loopback_hosts_are_answered_and_changes_need_the_header(ops_daemon: OpsDaemon) -> None:
    assert ops_daemon.get("/health", headers={"Host": "attacker.example:80"}).status_code == 403
    url = ops_daemon.url + "api/dead-letters/requeue"
    assert httpx.post(url, json={}).status_code == 403  # a cross-site form cannot send the header
    assert httpx.post(url, content=b"[1]", headers={"X-Engine-Bridge": "test"}).status_code == 400
    assert httpx.post(url, json={"pk": "1"}, headers={"X-Engine-Bridge": "test"}).status_code == 400
    answer = httpx.post(url, json={"pk": 12345}, headers={"X-Engine-Bridge": "test"})
    assert (answer.status_code, answer.json()) == (200, {"requeued": 0})
    assert ops_daemon.get("/nothing-here").status_code == 404
    assert ops_daemon.get("/api/events/999999").status_code == 404
    for path in ("/api/state", "/metrics", "/health"):  # the provider's state, never its keys
        text = ops_daemon.get(path).text
        assert SANDBOX_SECRET_KEY not in text and SANDBOX_GAME_KEY not in text, path
    page = ops_daemon.get("/")
    assert page.status_code == 200 and "<title>engine-bridge inspector</title>" in page.text
    assert ops_daemon.get("/inspector.js").headers["content-type"] == "text/javascript"


def test_a_taken_http_port_stops_start_up_with_exit_code_3(tmp_path: Path, ga_sandbox: GaSandbox) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = Daemon(tmp_path, config=ops_config(ga_sandbox[1].url, f"127.0.0.1:{port}"))
        with pytest.raises(RuntimeError, match="exited with 3") as failed:
            daemon.start()
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in str(failed.value)


def test_the_page_loads_nothing_from_the_network() -> None:
    """Plain HTML, CSS and JavaScript served by the daemon: no CDN, no font, no script from elsewhere."""
    for name in ("index.html", "inspector.js", "inspector.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
        assert "import(" not in text and "@import" not in text, name
