"""`/metrics`: the daemon's figures in Prometheus' exposition format, through `prometheus_client`.

They are built at each scrape from the very reply `stats` sends (`engine-bridge status` shows it), so the two
never disagree (its `categories` too, as counters labelled `category`), plus the figures only the feed sees
(invalid events per provider and category, retries, each provider's last success) and the ingress's ack latency
histogram. Nothing is counted twice and nothing here runs on the ingress's thread. Names follow Prometheus'
conventions: `engine_bridge_` first, `_total` on counters, base units (seconds, bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..stats import COUNTED_CATEGORIES, Counters
from .feed import Feed

PREFIX = "engine_bridge_"
# stats field -> (metric name, help): counters of the daemon's run (the `stats` reply's own words)
RUN_COUNTERS = {
    "received": ("events_received", "Events received since start, duplicates and rejected ones included."),
    "stored": ("events_stored", "Events stored since start."),
    "duplicates": ("events_duplicates", "Events acknowledged as duplicates since start (not stored again)."),
    "rejected": ("events_rejected", "Events refused by the daemon's checks since start (not stored)."),
    "errors": ("error_replies", "Error replies sent and store commits that failed, since start."),
    "replies_dropped": ("replies_dropped", "Replies not sent: the peer did not read them, or had left."),
    "requests_dropped": ("requests_dropped", "Requests dropped unread from a peer that did not read its replies."),
}
# `stats`' `categories` figure -> (metric name, help): counters labelled `category`, every category present
# from the start (0 until its first event); `unknown` holds refused events that name none of the categories.
CATEGORY_COUNTERS = {
    "received": ("category_events_received", "Events received since start per category, duplicates and "
                 "rejected ones included."),
    "stored": ("category_events_stored", "Events stored since start per category."),
    "duplicates": ("category_events_duplicates", "Events acknowledged as duplicates since start per category."),
    "rejected": ("category_events_rejected", "Events refused by the daemon's checks since start per category "
                 "(unknown: naming none of the categories)."),
    "invalid": ("category_events_invalid", "Events an ack listed as breaking a provider's rule (stored all the "
                "same) since start per category."),
}
# provider figure -> (metric name, help, counter or not)
PROVIDER_FIGURES = {
    "queued": ("provider_queued_events", "Stored events past the provider's delivery cursor.", False),
    "in_flight": ("provider_in_flight_events", "Events in the provider's batches out now.", False),
    "waiting": ("provider_waiting_events", "Events read ahead into the provider's players' batches.", False),
    "delivered": ("provider_delivered_events", "Events the provider accepted (kept across restarts).", True),
    "dead_lettered": ("provider_dead_letters", "The provider's dead letters not re-queued.", False),
    "requests": ("provider_requests", "HTTP requests sent to the provider since start.", True),
}

# A relay's figures (issue 15: `stats` has a `relay` map on a daemon with a [relay] table): field -> (metric
# name, help, counter or not)
RELAY_FIGURES = {
    "client_keys": ("relay_client_keys", "Relay client keys seen since start.", False),
    "handshakes_refused": ("relay_handshakes_refused", "CURVE handshakes the relay refused.", True),
    "keys_refused": ("relay_keys_refused", "Of those, keys off the allow-list.", True),
    "subscriptions_refused": ("relay_subscriptions_refused", "Subscriptions outside the subscriber's devices.", True),
    "rate_limited": ("relay_requests_rate_limited", "Requests refused for a key over its rate.", True),
    "quota_exceeded": ("relay_requests_over_quota", "Requests refused for a key over its day's quota.", True),
}


class BridgeCollector(Collector):
    """Collects on every scrape; `stats` is the `stats` reply's builder, `store_bytes` the store's size."""

    def __init__(self, stats: Callable[[], dict[str, Any]], counters: Counters, feed: Feed,
                 store_bytes: Callable[[], int]) -> None:
        self.stats = stats
        self.counters = counters
        self.feed = feed
        self.store_bytes = store_bytes

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        for field, (name, doc) in RUN_COUNTERS.items():
            yield CounterMetricFamily(PREFIX + name, doc, value=stats[field])
        yield GaugeMetricFamily(PREFIX + "clients", "Connections open to the ingress now.", value=stats["clients"])
        yield GaugeMetricFamily(PREFIX + "uptime_seconds", "Seconds since the daemon started.",
                                value=stats["uptime_s"])
        yield GaugeMetricFamily(PREFIX + "stored_rate_events_per_second", "Events stored per second, last 10 s.",
                                value=stats["rate_10s"])
        yield from self._latency()
        yield from self._store(stats["store"])
        yield from self._categories(stats["categories"])
        yield from self._providers(stats["providers"])
        for field, (name, doc, counter) in RELAY_FIGURES.items():
            if field in stats.get("relay", {}):
                kind = CounterMetricFamily if counter else GaugeMetricFamily
                yield kind(PREFIX + name, doc, value=stats["relay"][field])

    def _latency(self) -> Iterator[Metric]:
        cumulative, _count, total = self.counters.ack_latency.snapshot()
        buckets = [("+Inf" if bound == float("inf") else repr(bound), float(n)) for bound, n in cumulative]
        yield HistogramMetricFamily(PREFIX + "ack_latency_seconds", "From the start of the ingress's burst that "
                                    "held a request to its ack sent, one observation per burst.",
                                    buckets=buckets, sum_value=total)

    def _store(self, store: dict[str, Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily(PREFIX + "store_events", "Event rows in the store.", value=store["events"])
        yield GaugeMetricFamily(PREFIX + "store_undelivered_events", "Event rows not yet delivered everywhere.",
                                value=store["undelivered"])
        yield CounterMetricFamily(PREFIX + "store_trimmed_events", "Events dropped by the store cap since the "
                                  "store was made.", value=store["trimmed"])
        yield GaugeMetricFamily(PREFIX + "store_size_bytes", "Bytes the store uses (SQLite: its pages in use).",
                                value=self.store_bytes())

    def _categories(self, categories: dict[str, dict[str, int]]) -> Iterator[Metric]:
        for figure, (name, doc) in CATEGORY_COUNTERS.items():
            family = CounterMetricFamily(PREFIX + name, doc, labels=["category"])
            for category in COUNTED_CATEGORIES:
                family.add_metric([category], categories.get(category, {}).get(figure, 0))
            yield family
        invalid = CounterMetricFamily(PREFIX + "events_invalid", "Events a provider refused by its own rules "
                                      "(dead-lettered as invalid) since start.", labels=["provider", "category"])
        for (provider, category), count in sorted(self.feed.invalid.items()):
            invalid.add_metric([provider, category], count)
        yield invalid

    def _providers(self, providers: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for figure, (name, doc, counter) in PROVIDER_FIGURES.items():
            kind = CounterMetricFamily if counter else GaugeMetricFamily
            families[figure] = kind(PREFIX + name, doc, labels=["provider"])
        paused = GaugeMetricFamily(PREFIX + "provider_paused", "1 while the provider has stopped sending (keys "
                                   "refused, disabled), else 0.", labels=["provider"])
        retries = CounterMetricFamily(PREFIX + "provider_retries", "Exchanges with the provider that failed and are "
                                      "retried (no answer, a later status, paused), since start.",
                                      labels=["provider"])
        success = GaugeMetricFamily(PREFIX + "provider_last_success_timestamp_seconds", "When the provider last "
                                    "accepted events (s since the epoch); absent before the first time.",
                                    labels=["provider"])
        error = GaugeMetricFamily(PREFIX + "provider_last_error_timestamp_seconds", "When the provider's latest "
                                  "delivery error happened (s since the epoch).", labels=["provider"])
        for provider, figures in sorted(providers.items()):
            for figure, family in families.items():
                if figure in figures:
                    family.add_metric([provider], figures[figure])
            paused.add_metric([provider], 1 if figures.get("paused") else 0)
            retries.add_metric([provider], self.feed.retries.get(provider, 0))
            if provider in self.feed.last_success:
                success.add_metric([provider], self.feed.last_success[provider])
            if figures.get("last_error_at"):
                error.add_metric([provider], figures["last_error_at"] / 1000)
        yield from families.values()
        yield from (paused, retries, success, error)


def registry(collector: BridgeCollector) -> CollectorRegistry:
    """The daemon's own registry: its figures and the process's (CPU, memory, open files)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(collector)
    ProcessCollector(registry=found)
    return found
