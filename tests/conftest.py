"""Shared fixtures: a real daemon in its own process on free ports, and a client that has said hello.

Also the run's order and its background builds: the longest tests go first, each followed by a quick one, so that
pytest-xdist (`--dist load --maxschedchunk 1`, which hands each worker its next tests as it frees up) starts each
of them on a worker of its own at once instead of leaving one for the end; and the C++ binding's build starts as
soon as the run knows it holds C++ tests, while the other tests run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.sandbox.gameanalytics import GameAnalyticsSandbox  # noqa: E402
from bridge.sandbox.server import SandboxServer  # noqa: E402
from bridge.sandbox.staq import StaqSandbox  # noqa: E402
from tests import bundle_build, shared  # noqa: E402
from tests.bindings import cpp_build  # noqa: E402
from tests.harness import Client, Daemon, priority  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402
from tests.sandboxes import start_sandbox  # noqa: E402

# The longest tests (seconds, under coverage, on 2 cores), longest first; a test missing here is only run later.
LONGEST = [
    "tests/bindings/test_cpp.py::test_cpp_binding_against_the_daemon",  # waits for the build, then ~40 s
    "tests/bindings/test_unity.py::test_unity_binding_against_real_daemon",  # ~45
    "tests/bindings/test_godot.py::test_godot_binding_headless",  # ~45
    "tests/bindings/test_godot.py::test_gdscript_parses_and_lints",  # ~14
    "tests/test_bundle.py::test_bundle_smoke_from_a_clean_environment",  # waits for the bundle (~60 s), then ~2
    "tests/test_bundle.py::test_bundled_daemon_forwards_nothing_unless_configured",  # ~5 after the bundle
    "tests/bindings/test_cpp.py::test_cpp_game_with_the_bundled_daemon[killed]",  # the build and the bundle, ~5
    "tests/bindings/test_cpp.py::test_cpp_game_with_the_bundled_daemon[quits]",  # the same
    "tests/bindings/test_cpp.py::test_cpp_bundled_daemon_missing_and_another_games_daemon",  # the same, then ~3
    "tests/bindings/test_unity.py::test_unity_game_with_the_bundled_daemon[killed]",  # the bundle, then ~8 (mcs)
    "tests/bindings/test_unity.py::test_unity_game_with_the_bundled_daemon[quits]",  # the same
    "tests/bindings/test_unity.py::test_unity_bundled_daemon_missing_and_another_games_daemon",  # the same
    "tests/bindings/test_godot.py::test_godot_game_with_the_bundled_daemon[killed]",  # the bundle, then ~4
    "tests/bindings/test_godot.py::test_godot_game_with_the_bundled_daemon[quits]",  # the same
    "tests/bindings/test_godot.py::test_godot_bundled_daemon_missing_and_another_games_daemon",  # the bundle, then ~2
    "tests/bindings/test_cpp.py::test_cpp_game_killed_stops_the_daemon_its_own_command_launched",  # the build, ~5
    "tests/bindings/test_cpp.py::test_c_abi_against_the_daemon",  # ~10
    "tests/bindings/test_godot.py::test_godot_says_once_when_the_daemon_is_absent",  # ~9
    "tests/bindings/test_cpp.py::test_installed_package_in_a_consumer_built_without_exceptions",  # ~30
    "tests/test_relay.py::test_kill_9_of_the_edge_then_of_the_relay_mid_stream_loses_nothing_acknowledged",  # ~33
    "tests/test_dispatcher.py::test_dead_letters_can_be_requeued_after_a_fix",  # ~22
    "tests/test_cli.py::test_secrets_never_reach_the_log",  # ~21
    "tests/test_demo.py::test_demo_runs_to_a_correct_summary",  # ~21
    "tests/ops/test_inspector.py::test_the_inspector_shows_verdicts_requeues_dead_letters_and_configs_live",  # ~17
    "tests/ops/test_tap.py::test_a_tap_that_stops_reading_loses_its_own_lines_and_is_told_how_many",  # ~10
    "tests/test_publisher.py::test_every_peer_is_pinged_and_a_silent_one_dropped_15_to_20_s_after_it_last_spoke",  # ~20
    "tests/test_lane.py::test_kill_9_with_batches_in_flight_loses_and_skips_nothing",  # ~18
    "tests/test_daemon.py::test_kill_9_mid_stream_loses_no_acknowledged_event",  # ~18
    "tests/providers/test_staq.py::test_purchase_made_offline_is_verified_later_and_reaches_the_returning_client",
    "tests/store/test_database.py::test_daemon_on_postgresql",
    "tests/providers/test_staq.py::test_an_event_staq_refuses_is_bisected_out_and_stays_alone_when_requeued",
    "tests/test_dispatcher.py::test_store_cap_trims_the_oldest_sessions",
    "tests/providers/test_gameramp.py::test_token_expiry_mid_stream_is_refreshed_ahead",
    "tests/providers/test_gameanalytics.py::test_session_timeout_sends_session_end",
]
# Quick tests of no module-scoped fixture, to follow each of the longest.
QUICK = "tests/test_protocol.py::"
# Tests whose checks hold the binding and the daemon to real-time budgets (1,000 events/s through a 6 s outage,
# a flush within a game's quit, acks within 2 s): they run, and the processes they start (daemons, engines,
# sandboxes' threads) inherit, a higher CPU priority than the tests running beside them, so that those
# others (and whatever else shares the machine) take their CPU time from the tests with no such budget.
# Only root may raise a priority; for anyone else they run as they always did.
REALTIME = (
    "tests/bindings/test_cpp.py::test_cpp_binding_against_the_daemon",
    "tests/bindings/test_cpp.py::test_c_abi_against_the_daemon",
    "tests/bindings/test_unity.py::test_unity_binding_against_real_daemon",
    "tests/bindings/test_godot.py::test_godot_binding_headless",
    "tests/bindings/test_godot.py::test_godot_provider_refusal_reaches_the_game",
    "tests/bindings/test_godot.py::test_godot_says_once_when_the_daemon_is_absent",
    "tests/bindings/test_godot.py::test_godot_every_way_of_quitting_stores_the_queue_and_ends_the_session",
    "tests/test_daemon.py::test_clean_shutdown_within_two_seconds_keeps_everything",
    "tests/test_dispatcher.py::test_a_provider_down_does_not_slow_another",
)
REALTIME_NICE = -10


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {nodeid: i for i, nodeid in enumerate(LONGEST)}
    longest = sorted((item for item in items if item.nodeid in rank), key=lambda item: rank[item.nodeid])
    quick = [item for item in items if item.nodeid.startswith(QUICK)][:len(longest)]
    front: list[pytest.Item] = []
    for i, item in enumerate(longest):
        front.append(item)
        if i < len(quick):
            front.append(quick[i])
    chosen = {id(item) for item in front}
    items[:] = front + [item for item in items if id(item) not in chosen]


def _start_builds(config: pytest.Config, nodeids: Sequence[str]) -> None:
    if any(nodeid.startswith(cpp_build.TESTS) for nodeid in nodeids):
        cpp_build.start(shared.shared_dir(config._tmp_path_factory))  # type: ignore[attr-defined]
    if any(bundle_build.uses_bundle(nodeid) for nodeid in nodeids):
        bundle_build.start(shared.shared_dir(config._tmp_path_factory))  # type: ignore[attr-defined]


def pytest_collection_finish(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # a run without xdist; under xdist the controller starts them
        _start_builds(session.config, [item.nodeid for item in session.items])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: Sequence[str]) -> None:
    _start_builds(node.config, ids)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's `load` scheduling, except that while the C++ build (or the bundle's) runs, a worker is handed the
    tests that need it only when nothing else is left (they would only wait for the build)."""
    from xdist.scheduler import LoadScheduling

    if config.getoption("dist") != "load":
        return None
    root = shared.shared_dir(config._tmp_path_factory)  # type: ignore[attr-defined]
    cpp_rc, bundle_rc = root / cpp_build.NAME / "rc", root / bundle_build.NAME / "rc"

    def waits(nodeid: str) -> bool:
        return ((nodeid.startswith(cpp_build.TESTS) and not cpp_rc.exists())
                or (bundle_build.uses_bundle(nodeid) and not bundle_rc.exists()))

    class BuildAwareScheduling(LoadScheduling):  # type: ignore[misc]
        def _send_tests(self, node: Any, num: int) -> None:
            chosen = self.pending[:num]
            ready = [i for i in self.pending if not waits(self.collection[i])]
            chosen = ready[:num] or chosen
            for index in chosen:
                self.pending.remove(index)
            if chosen:
                self.node2pending[node].extend(chosen)
                node.send_runtest_some(chosen)

    return BuildAwareScheduling(config, log)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The bundled daemon's figures (size, time to the first welcome), as the bundle's tests measured them."""
    if hasattr(config, "workerinput"):
        return
    figures = bundle_build.figures(shared.shared_dir(config._tmp_path_factory))  # type: ignore[attr-defined]
    if figures:
        terminalreporter.write_sep("-", "bundled daemon")
        terminalreporter.write(figures)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # a worker leaves the builds to the process that started them
        shared.stop_builds()


@pytest.fixture(autouse=True)
def _realtime_priority(request: pytest.FixtureRequest) -> Iterator[None]:
    """REALTIME tests at a higher priority (autouse fixtures come first: the test's other fixtures inherit it)."""
    if not request.node.nodeid.startswith(REALTIME):
        yield
        return
    with priority(REALTIME_NICE):
        yield


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with Daemon(tmp_path, config='[configs]\ndifficulty = "normal"\nmax_lives = 3\n') as d:
        yield d


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    with Client(daemon.ingress, device_id="dev-1") as c:
        assert c.hello()["type"] == "welcome"
        yield c


@pytest.fixture
def ga_sandbox() -> Iterator[tuple[GameAnalyticsSandbox, SandboxServer]]:
    """A GameAnalytics sandbox on a free loopback port."""
    sb, server = start_sandbox()
    yield sb, server
    server.stop()


@pytest.fixture
def staq_sandbox() -> Iterator[tuple[StaqSandbox, SandboxServer]]:
    """A staq sandbox on a free loopback port, for the staq provider's and the purchase lane's tests."""
    sb, server = start_sandbox("staq")
    yield sb, server
    server.stop()


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for a module's tests; each test that needs a fleet of its own asks `pg_database`."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> str:
    """The store URL of an empty database of its own on the module's server."""
    return pg_server.new_database()
