"""The collector in-process, on `stats` replies as the daemon builds them: a relay's figures (a daemon with a
[relay] table has them) and no provider at all. The daemon-level test (its counters against `stats`) is in
test_server.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge.ops.feed import Feed
from bridge.ops.metrics import BridgeCollector, registry
from bridge.stats import Counters
from bridge.store import Store

STATS: dict[str, Any] = {
    "type": "stats", "daemon_version": "0.1.0", "uptime_s": 12.5, "clients": 3, "received": 10, "stored": 8,
    "duplicates": 1, "rejected": 1, "errors": 1, "replies_dropped": 0, "requests_dropped": 0, "rate_10s": 0.8,
    "categories": {"design": {"received": 10, "stored": 8, "duplicates": 1, "rejected": 1, "invalid": 0}},
    "store": {"url": "sqlite:///x", "events": 9, "undelivered": 0, "trimmed": 0}, "providers": {},
    "last_errors": [],
    "relay": {"client_keys": 2, "handshakes_refused": 4, "keys_refused": 1, "subscriptions_refused": 0,
              "rate_limited": 5, "quota_exceeded": 6}}


def samples(stats: dict[str, Any], tmp_path: Path) -> dict[str, float]:
    store = Store(f"sqlite:///{tmp_path / 'b.sqlite3'}")
    store.open()
    try:
        feed = Feed(store, [], Counters(), lambda prefix: ({}, 0))
        text = generate_latest(registry(BridgeCollector(lambda: stats, Counters(), feed, lambda: 4096))).decode()
    finally:
        store.dispose()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if not s.labels}


def test_a_relays_figures_are_exported(tmp_path: Path) -> None:
    found = samples(STATS, tmp_path)
    assert found["engine_bridge_relay_client_keys"] == 2
    assert found["engine_bridge_relay_handshakes_refused_total"] == 4
    assert found["engine_bridge_relay_keys_refused_total"] == 1
    assert found["engine_bridge_relay_requests_rate_limited_total"] == 5
    assert found["engine_bridge_relay_requests_over_quota_total"] == 6
    assert (found["engine_bridge_events_received_total"], found["engine_bridge_clients"]) == (10, 3)
    assert found["engine_bridge_store_size_bytes"] == 4096


def test_a_daemon_without_relay_or_providers_has_neither(tmp_path: Path) -> None:
    found = samples({k: v for k, v in STATS.items() if k != "relay"}, tmp_path)
    assert not [name for name in found if "relay" in name]
    assert found["engine_bridge_ack_latency_seconds_count"] == 0
