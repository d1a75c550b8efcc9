"""The ingest benchmark with the operator's endpoints on and in use, against the same benchmark without them.

Each round starts two fresh daemons side by side, alike but for `[daemon] http`: one without, one with the HTTP
endpoints, scraped for /metrics as each of its loads begins and every 5 s of it (Prometheus' default is
15 s), and with an inspector's feed connected all along (the page's own stream, `/events?all=1&recent=1`, read
as fast as it comes). Each takes the core benchmark's load (the shared load generator in its own process): 1 event per
message, then batches of 100, each load in the order A B B A (odd rounds B A A B), so that a machine getting
busier or quieter during a round weighs on both alike; a daemon's figure for the round is the mean of its two
runs. Prints every round (with the machine's load), the medians and their ratio, and the median of each round's
own ratio (steadier on a shared machine); the target is within 5 % (a ratio of 0.95 or more). Also the daemon's
CPU time per 100,000 events (its user and system time over each load): on a machine shared with other work the
rates move by tens of percent from run to run, and the CPU the endpoints cost shows there more steadily.

    python -m benchmarks.bench_ops [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks.bench_core import SETTLE_S, proc_cpu_seconds, run_loadgen
from benchmarks.support import Daemon, free_port

TARGET = 0.95
SCRAPE_EVERY_S = 5.0


class Watchers:
    """A Prometheus-like scraper and an inspector's feed on one daemon, each in a thread of this process. The
    scraper scrapes while `scraping` is set (its daemon takes a load: at once, then every 5 s), not while the
    other daemon does."""

    def __init__(self, http: str) -> None:
        self.base = f"http://{http}"
        self.stop = threading.Event()
        self.scraping = threading.Event()
        self.scrapes = self.lines = self.notices = 0
        self.threads = [threading.Thread(target=self._scrape, daemon=True),
                        threading.Thread(target=self._follow, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _scrape(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                if not self.scraping.wait(0.25):
                    continue
                answer = client.get(self.base + "/metrics")
                assert answer.status_code == 200 and "engine_bridge_category_events_stored_total" in answer.text
                self.scrapes += 1
                self.stop.wait(SCRAPE_EVERY_S)

    def _follow(self) -> None:
        try:
            with httpx.stream("GET", self.base + "/events?all=1&recent=1",
                              timeout=httpx.Timeout(10, read=None)) as feed:
                for line in feed.iter_lines():
                    if line.startswith("data:"):
                        self.lines += 1
                        self.notices += '"kind": "skipped"' in line or '"kind": "dropped"' in line
                    if self.stop.is_set():
                        return
        except httpx.HTTPError:
            if not self.stop.is_set():  # the daemon stopping ends the stream: only an earlier end is news
                raise

    def close(self) -> str:
        """Before the daemon stops (a scrape in flight then would be cut off, and fail); what they saw."""
        self.stop.set()
        self.threads[0].join(SCRAPE_EVERY_S * 2)
        note = f"{self.scrapes} scrapes, {self.lines} feed lines ({self.notices} skipped/dropped notices)"
        assert self.scrapes >= 1 and self.lines > 0, note
        return note


def one_round(work: Path, ops_first: bool, quick: bool) -> tuple[dict[bool, dict[str, float]], str]:
    """Both daemons' figures of one round (each the mean of its two runs per load), and what the watchers saw."""
    http = f"127.0.0.1:{free_port()}"
    single, batch = (20_000, 100_000) if quick else (60_000, 300_000)
    order = (ops_first, not ops_first, not ops_first, ops_first)
    runs: dict[bool, dict[str, list[float]]] = {False: {}, True: {}}
    with Daemon(work / "without", "") as plain, Daemon(work / "with", f'[daemon]\nhttp = "{http}"\n') as ops:
        watchers = Watchers(http)
        for key, count, window in (("single", single, 64), ("batch", batch, 16)):
            for with_ops in order:
                daemon = ops if with_ops else plain
                time.sleep(SETTLE_S)
                if with_ops:
                    watchers.scraping.set()
                cpu = proc_cpu_seconds(daemon.pid)
                rate = run_loadgen(daemon.ingress, key, count, window)["events_per_s"]
                runs[with_ops].setdefault(key, []).append(rate)
                runs[with_ops].setdefault(f"{key}_cpu", []).append(
                    (proc_cpu_seconds(daemon.pid) - cpu) * 100_000 / count)
                watchers.scraping.clear()
        note = watchers.close()
    return {side: {key: statistics.mean(values) for key, values in figures.items()}
            for side, figures in runs.items()}, note


def machine_load() -> str:
    """The 1-minute load average and the cores: other work on the machine moves the rates, so each run says."""
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def paired(runs: dict[bool, list[dict[str, float]]], key: str) -> list[float]:
    """Each round's with/without ratio: its runs alternated on one machine in one spell, where a ratio of the
    medians mixes spells of different rounds."""
    return [with_ops[key] / without[key] for without, with_ops in zip(runs[False], runs[True], strict=True)]


def summary(runs: dict[bool, list[dict[str, float]]]) -> None:
    """The medians of each side, their ratio, and the median (and range) of the rounds' own ratios; for the
    CPU figures a ratio of 1.05 or less is the target (more CPU per event is the cost)."""
    rounds = len(runs[False])
    print(f"{'medians of ' + str(rounds) + ' rounds':32}{'without':>12}{'with ops':>12}{'ratio':>9}"
          f"{'paired median (min-max)':>28}")
    for key, label in (("single", "1 event/message, events/s"), ("single_cpu", "  its daemon CPU s/100k events"),
                       ("batch", "100 events/message, events/s"), ("batch_cpu", "  its daemon CPU s/100k events")):
        without = statistics.median(r[key] for r in runs[False])
        with_ops = statistics.median(r[key] for r in runs[True])
        ratios = paired(runs, key)
        shown = ",.0f" if key in ("single", "batch") else ".2f"
        spread = f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
        print(f"{label:32}{without:>12{shown}}{with_ops:>12{shown}}{with_ops / without:>9.3f}{spread:>28}")
    print(f"target: an events/s ratio of {TARGET} or more (within 5 %), a CPU ratio of {2 - TARGET:.2f} or less")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller loads")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    print(f"ingest with the HTTP endpoints in use (/metrics scraped as each load begins and every {SCRAPE_EVERY_S:g} "
          f"s, an inspector's feed connected) against without them, loads in the order ABBA; {machine_load()} at the "
          "start")
    with tempfile.TemporaryDirectory(prefix="eb-bench-ops-") as tmp:
        for round_ in range(args.rounds):
            figures, note = one_round(Path(tmp) / f"r{round_}", round_ % 2 == 1, args.quick)
            for with_ops in (False, True):
                runs[with_ops].append(figures[with_ops])
            print(f"  round {round_ + 1}  {machine_load()}  {note}")
            for with_ops, label in ((False, "without "), (True, "with ops")):
                side = figures[with_ops]
                print(f"    {label}  1 event/msg {side['single']:>9,.0f}/s ({side['single_cpu']:.2f} s CPU/100k)   "
                      f"100/msg {side['batch']:>9,.0f}/s ({side['batch_cpu']:.2f} s CPU/100k)", flush=True)
    summary(runs)


if __name__ == "__main__":
    main()
