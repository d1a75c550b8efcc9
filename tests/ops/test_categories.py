"""The counters per category, in-process: a real ingress (its socket, its store, its reporter) in this process,
sent a mix of good, duplicate, invalid and rejected events; `/metrics` as the collector renders it, parsed by
prometheus_client, against the `stats` reply and against the numbers the mix must give."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge.client import Client
from bridge.ingress import Ingress, IngressHooks
from bridge.ops.feed import Feed
from bridge.ops.metrics import CATEGORY_COUNTERS, BridgeCollector, registry
from bridge.stats import COUNTED_CATEGORIES, Counters, Reporter
from bridge.store import Store
from tests.harness import free_port, make_event

NEGATIVE = "value: must not be negative"


class NoNegativeDesign:
    """A provider's early word, as a test sets it: a `design` event with a negative `value` breaks its rule."""

    name = "strict"

    def check(self, category: str, fields: dict[str, Any]) -> str | None:
        return NEGATIVE if category == "design" and fields.get("value", 0) < 0 else None

    def check_user(self, user_id: str) -> str | None:
        return None


@dataclass
class Running:
    ingress: Ingress
    endpoint: str
    store: Store

    def collector(self) -> BridgeCollector:
        feed = Feed(self.store, [], self.ingress.counters, lambda prefix: ({}, 0))
        return BridgeCollector(self.ingress.stats_reply, self.ingress.counters, feed, lambda: 0)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    """An ingress and its reporter on threads of this process, stopped and closed after the test."""
    store = Store(f"sqlite:///{tmp_path / 'bridge.sqlite3'}")
    store.open()
    ctx: zmq.Context[Any] = zmq.Context()
    hooks = IngressHooks(checkers={"design": [NoNegativeDesign()]}, flush=lambda: None,
                         figures=lambda: {"store": {**store.counts(), "trimmed": 0}, "providers": {}},
                         configs=lambda prefix: ({}, 0))
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    reporter = Reporter(ctx)
    ingress = Ingress(ctx, endpoint, store, hooks, Counters(), 1800.0, reporter)
    stop = threading.Event()
    threads = [threading.Thread(target=ingress.run, args=(stop,)), threading.Thread(target=reporter.run, args=(stop,))]
    for thread in threads:
        thread.start()
    try:
        yield Running(ingress, endpoint, store)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        ctx.term()
        store.dispose()


def send_the_mix(endpoint: str) -> dict[str, Any]:
    """Per category: design 3 stored + 1 stored invalid, 1 resent (a duplicate), 1 rejected; progression 2
    stored and the same event twice in one batch (a duplicate in the burst); resource 1 rejected; ads 1 rejected
    alone (an `event` request); unknown: 3 refused naming no category of the protocol. Returns `stats`."""
    design = [make_event("design") for _ in range(3)]
    negative = make_event("design", value=-1)
    no_ts = {k: v for k, v in make_event("design").items() if k != "ts"}
    progression = make_event("progression")
    no_amount = make_event("resource")
    del no_amount["fields"]["amount"]
    ads = make_event("ads")
    del ads["fields"]["ad_type"]
    unknown = [{**make_event(), "category": "bogus"}, {k: v for k, v in make_event().items() if k != "category"},
               {**make_event(), "category": 42}]
    with Client(endpoint, device_id="dev-categories") as game:
        assert game.hello()["type"] == "welcome"
        ack = game.request({"type": "events", "events": [*design, negative, no_ts, no_amount, *unknown]})
        assert (ack["stored"], len(ack["rejected"]), len(ack["invalid"])) == (4, 5, 1)
        assert game.request({"type": "event", "event": design[0]})["duplicates"] == 1
        ack = game.request({"type": "events", "events": [progression, progression, make_event("progression")]})
        assert (ack["stored"], ack["duplicates"]) == (2, 1)
        assert len(game.request({"type": "event", "event": ads})["rejected"]) == 1
        stats = game.request({"type": "stats"})
    assert stats["type"] == "stats"
    return stats


EXPECTED = {  # (received, stored, duplicates, rejected, invalid)
    "design": (6, 4, 1, 1, 1), "progression": (3, 2, 1, 0, 0), "resource": (1, 0, 0, 1, 0), "ads": (1, 0, 0, 1, 0),
    "unknown": (3, 0, 0, 3, 0),
}


def test_each_categorys_counters_are_its_events_in_stats_and_metrics(running: Running) -> None:
    stats = send_the_mix(running.endpoint)
    assert {category: tuple(figures.values()) for category, figures in stats["categories"].items()} == EXPECTED
    for figure in ("received", "stored", "duplicates", "rejected"):  # the daemon-wide figures are their sums
        assert stats[figure] == sum(f[figure] for f in stats["categories"].values()), figure

    text = generate_latest(registry(running.collector())).decode()
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "category" in sample.labels and "provider" not in sample.labels:
                found[(sample.name, sample.labels["category"])] = sample.value
    for index, (figure, (name, _)) in enumerate(CATEGORY_COUNTERS.items()):
        for category in COUNTED_CATEGORIES:  # every category is there, 0 until its first event
            want = EXPECTED.get(category, (0, 0, 0, 0, 0))[index]
            assert found.pop((f"engine_bridge_{name}_total", category)) == want, (figure, category)
    assert not found


def test_a_new_daemon_shows_no_category_in_stats_and_zeros_in_metrics(running: Running) -> None:
    assert running.ingress.stats_reply()["categories"] == {}
    text = generate_latest(registry(running.collector())).decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "engine_bridge_category_events_received_total"]
    assert sorted(s.labels["category"] for s in samples) == sorted(COUNTED_CATEGORIES)
    assert {s.value for s in samples} == {0}
