"""The health's reasons in-process, from real inputs: a nearly full disk (a real 16 MB tmpfs), a failed commit
in the ingress's counters, the store unreadable, a provider paused or failing. The daemon-level test of a
provider failing and recovering is in test_server.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.ops.health import check, disk_reasons
from bridge.stats import Counters
from tests.oracle.disk import mount_tmpfs, unmount


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "small"
    where.mkdir()
    why = mount_tmpfs(where)
    assert not why, why
    try:
        yield where
    finally:
        unmount(where)


def test_a_nearly_full_disk_is_a_reason(small_disk: Path, tmp_path: Path) -> None:
    [reason] = disk_reasons(small_disk)
    assert reason.startswith("disk: ") and "MiB free of 16 MiB" in reason and str(small_disk) in reason
    assert disk_reasons(tmp_path) == []  # the machine's own disk has room
    assert disk_reasons(tmp_path / "absent")[0].startswith("disk: the data directory")


def test_each_kind_of_trouble_gives_its_reason(tmp_path: Path) -> None:
    counters = Counters()
    providers = {"gameanalytics": {"queued": 3, "paused": "init refused with 401"}, "staq": {"queued": 0},
                 "gameramp": {"queued": 1}}
    healthy = check(lambda: providers, None, {}, counters, tmp_path)
    assert healthy.status == "degraded" and healthy.reasons == ["provider gameanalytics: paused (init refused with 401)"]
    counters.note_error("unavailable", "store commit failed: database or disk is full")
    found = check(lambda: providers, "database is locked", {"gameramp": "HTTP 503 from /v1/events"}, counters,
                  tmp_path)
    assert found.reasons == [
        "store: cannot be read (database is locked)",
        "store: a commit failed 0 s ago (store commit failed: database or disk is full)",
        "provider gameanalytics: paused (init refused with 401)",
        "provider gameramp: failing, retried (HTTP 503 from /v1/events)"]
    assert found.providers == providers
    assert check(lambda: {}, None, {}, Counters(), tmp_path).to_json() == {"status": "ok", "reasons": []}
