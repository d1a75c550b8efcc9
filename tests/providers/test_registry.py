"""Providers by name: built-in ones, third-party ones through the `engine_bridge.providers` entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bridge.providers.base import Provider
from bridge.providers.gameanalytics.provider import GameAnalytics
from bridge.providers.registry import UnknownProvider, provider_class

PLUGIN = '''
from bridge.providers.base import Outcome, Provider

class EchoProvider(Provider):
    kind = "echo"
    categories = frozenset({"custom"})

    async def send(self, events):
        return Outcome(delivered={e.pk for e in events})

NotAProvider = object
'''


def install_plugin(root: Path) -> None:
    """A distribution as pip would leave it: a module and its dist-info with entry_points.txt."""
    (root / "echo_plugin.py").write_text(PLUGIN)
    info = root / "echo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[engine_bridge.providers]\necho = echo_plugin:EchoProvider\n"
                                           "broken = echo_plugin:NotAProvider\n")


def test_builtin_provider_by_name() -> None:
    assert provider_class("gameanalytics") is GameAnalytics


def test_third_party_provider_through_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = provider_class("echo")
    assert issubclass(cls, Provider) and cls.kind == "echo"
    with pytest.raises(UnknownProvider, match="is not a bridge.providers.base.Provider"):
        provider_class("broken")
    sys.modules.pop("echo_plugin", None)


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(UnknownProvider, match="known: .*gameanalytics"):
        provider_class("nosuch")
