"""The configs socket: late subscribers get the current value, changes are pushed, versions persist."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from bridge.client import recv_publication, subscribe
from tests.harness import Daemon
from tests.sandboxes import wait_until


def wait_for(sock, predicate, timeout_s: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pub = recv_publication(sock, 100)
        if pub is not None and predicate(pub):
            return pub
    raise AssertionError("no matching publication")


def test_late_subscriber_gets_the_current_value_at_once(daemon: Daemon) -> None:
    # The daemon published config/local at start, before its publisher thread ran; that thread sends it out in
    # its first turn, the earliest turn that can answer a subscription. So once a first subscriber got anything,
    # config/local has gone out (a new connection takes far longer than the rest of that turn), and a second
    # subscriber is late: only the cache can give it the value.
    first = subscribe(daemon.publish, "config/")
    try:
        assert wait_for(first, lambda p: True)["topic"] == "config/local"
    finally:
        first.close(0)
    sock = subscribe(daemon.publish, "config/")
    try:
        pub = recv_publication(sock, 3000)
        assert pub is not None
        assert pub["topic"] == "config/local" and pub["source"] == "local"
        assert pub["values"] == {"difficulty": "normal", "max_lives": 3}
        assert pub["version"] >= 1
    finally:
        sock.close(0)


def test_prefix_filters_the_snapshot(daemon: Daemon) -> None:
    """A subscription to purchase/ is answered with nothing: the one to config/local, made after it on the same
    connection, is answered after it, so the first publication to arrive is config/local's."""
    sock = subscribe(daemon.publish, "purchase/", "config/local")
    try:
        pub = recv_publication(sock, 3000)
        assert pub is not None and pub["topic"] == "config/local", pub
    finally:
        sock.close(0)


def test_file_change_reaches_subscribers_with_a_new_version(daemon: Daemon) -> None:
    sock = subscribe(daemon.publish, "config/local")
    try:
        first = wait_for(sock, lambda p: True)
        assert daemon.config_path is not None and daemon.proc is not None
        daemon.config_path.write_text('[configs]\ndifficulty = "hard"\nmax_lives = 3\n')
        daemon.proc.send_signal(signal.SIGHUP)
        pub = wait_for(sock, lambda p: p["version"] > first["version"], 3)
        assert pub["values"]["difficulty"] == "hard" and pub["version"] == first["version"] + 1
        # without a signal the watcher notices the file within about a second; it compares modification times,
        # which the kernel takes from a clock that moves by ticks (at most 10 ms): wait for the next tick
        written = daemon.config_path.stat().st_mtime
        wait_until(lambda: time.time() > written + 0.01, what="a new modification time")
        daemon.config_path.write_text('[configs]\ndifficulty = "nightmare"\n')
        pub = wait_for(sock, lambda p: p["values"].get("difficulty") == "nightmare", 5)
        assert pub["values"] == {"difficulty": "nightmare"}
    finally:
        sock.close(0)


def test_broken_file_keeps_last_good_values(daemon: Daemon) -> None:
    assert daemon.config_path is not None and daemon.proc is not None
    daemon.config_path.write_text("[configs\nthis is not toml")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "keeping the previous local configs" in daemon.log(), what="the reload refused")
    assert daemon.proc.poll() is None
    sock = subscribe(daemon.publish, "config/local")
    try:
        assert wait_for(sock, lambda p: True)["values"]["difficulty"] == "normal"
    finally:
        sock.close(0)
    assert "keeping the previous local configs" in daemon.log()


def test_versions_survive_a_restart(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, config='[configs]\na = 1\n').start()
    assert daemon.config_path is not None
    daemon.stop()
    daemon.config_path.write_text('[configs]\na = 2\n')
    daemon.start()
    sock = subscribe(daemon.publish, "config/local")
    try:
        pub = wait_for(sock, lambda p: True)
        assert pub["values"] == {"a": 2} and pub["version"] == 2
    finally:
        sock.close(0)
        daemon.stop()
