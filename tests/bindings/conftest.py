"""The binding tests' shared fixture: a game's install folder with the bundled daemon (tests/bindings/shipping.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import bundle_build
from tests.bindings.shipping import Install, make_install


@pytest.fixture
def install(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    made = make_install(tmp_path, bundle_build.built(tmp_path_factory))
    yield made
    shutil.rmtree(made.home, ignore_errors=True)
