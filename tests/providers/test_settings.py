"""Provider settings are typed: a misspelt key, a wrong type or a missing key stops start-up, naming it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bridge.providers.registry import provider_class
from bridge.providers.settings import LaneSettings, SettingsError, parse_settings
from tests.harness import REPO, Daemon

TABLES: dict[str, dict[str, Any]] = {
    "gameanalytics": {"game_key": "g" * 32, "secret_key": "s" * 40},
    "gameramp": {"api_key": "key", "api_secret": "GR-S3CR3T"},
    "staq": {"app_id": "app", "app_secret": "STAQ-S3CR3T"},
}
TYPOS = {"gameanalytics": ("secret_key", "secret_kye"), "gameramp": ("api_secret", "api_secert"),
         "staq": ("app_secret", "app_secrte")}


def settings(kind: str, **table: Any) -> LaneSettings:
    return parse_settings(kind, provider_class(kind).Settings, table)


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_a_good_table_is_taken_with_its_defaults(kind: str) -> None:
    got = settings(kind, **TABLES[kind], interval=5, max_in_flight=2)
    assert (got.interval, got.max_in_flight, got.retry_cap) == (5.0, 2, 300.0)
    assert isinstance(got.interval, float)


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_a_misspelt_key_names_the_provider_the_key_and_the_valid_keys(kind: str) -> None:
    right, wrong = TYPOS[kind]
    table = dict(TABLES[kind])
    table[wrong] = table.pop(right)
    with pytest.raises(SettingsError) as refused:
        settings(kind, **table)
    message = str(refused.value)
    assert f"providers.{kind}.{wrong}" in message and f"did you mean {right!r}" in message
    assert "max_in_flight" in message and right in message  # the keys it takes
    assert table[wrong] not in message  # never the value: it may be a secret


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_a_missing_required_key_is_named(kind: str) -> None:
    right, _ = TYPOS[kind]
    table = {k: v for k, v in TABLES[kind].items() if k != right}
    with pytest.raises(SettingsError, match=f"providers.{kind}: missing {right}"):
        settings(kind, **table)


@pytest.mark.parametrize("key,value,says", [
    ("interval", "2", "must be a number"), ("max_in_flight", 2.5, "must be an integer"),
    ("max_in_flight", True, "must be an integer"), ("max_in_flight", 0, "max_in_flight: must be 1 or more"),
    ("retry_base", 0, "retry_base: must be a number of seconds above 0"),
    ("categories", "design", "must be a list of strings"), ("remote_configs", 1, "must be true or false"),
    ("secret_key", 1234, "must be a string, not int"),
])
def test_a_wrong_type_or_range_is_named(key: str, value: Any, says: str) -> None:
    with pytest.raises(SettingsError) as refused:
        settings("gameanalytics", **{**TABLES["gameanalytics"], key: value})
    assert f"providers.gameanalytics.{key}" in str(refused.value) and says in str(refused.value)


def test_gameramp_event_field_names_are_checked() -> None:
    with pytest.raises(SettingsError, match="event_fields: no field tipe"):
        settings("gameramp", **TABLES["gameramp"], event_fields={"tipe": "kind"})
    assert settings("gameramp", **TABLES["gameramp"], event_fields={"type": "kind"}).event_fields == {"type": "kind"}


def test_secrets_stay_out_of_the_settings_repr() -> None:
    for kind, (right, _) in TYPOS.items():
        assert TABLES[kind][right] not in repr(settings(kind, **TABLES[kind]))


def test_the_daemon_refuses_to_start_on_a_typo(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, config='[providers.gameanalytics]\nendpoint = "http://127.0.0.1:9"\n'
                                     f'game_key = "{"g" * 32}"\nsecret_kye = "TOPSECRET-1"\n')
    out = subprocess.run(daemon.command(), capture_output=True, text=True, timeout=20, cwd=REPO)
    assert out.returncode == 2, out.stderr
    assert "providers.gameanalytics.secret_kye" in out.stderr and "did you mean 'secret_key'" in out.stderr
    assert "TOPSECRET-1" not in out.stderr
