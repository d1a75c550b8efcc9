"""`engine-bridge validate`: good files pass with exit 0, broken ones list every problem with its line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.ops.validate import validate
from tests.harness import REPO

BROKEN = """\
[daemon]
ingres = "tcp://127.0.0.1:5555"
session_timeout = "soon"
http = "0.0.0.0:5557"

[store]
durability = "normal"

[providers.gameanalytics]
endpoint = "ftp://collector"
game_key = "5c6bcb5402204249437fb5a7a80a4959"
secret_kye = "16813a12f718bc5c620f56944e1abc3ea13ccbac"

[providers.staq]
app_id = "my-app"
app_secret_env = "EB_TEST_UNSET_STAQ_SECRET"

[providers.mystery]
type = "nosuchprovider"

[tables_we_do_not_have]
x = 1
"""


def run_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge", "validate", str(path)], capture_output=True, text=True,
                          timeout=30, cwd=REPO)


def test_the_example_configuration_is_valid() -> None:
    assert validate(REPO / "bridge.example.toml") == []
    done = run_validate(REPO / "bridge.example.toml")
    assert (done.returncode, done.stdout.strip()) == (0, f"{REPO / 'bridge.example.toml'}: ok")


def test_a_good_file_with_its_secret_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text('[daemon]\nhttp = "127.0.0.1:5557"\n[providers.staq]\nendpoint = "http://127.0.0.1:9/v1"\n'
                    'app_id = "a"\napp_secret_env = "EB_TEST_STAQ_SECRET"\n')
    monkeypatch.setenv("EB_TEST_STAQ_SECRET", "s3cret")
    assert validate(path) == []
    monkeypatch.delenv("EB_TEST_STAQ_SECRET")
    [problem] = validate(path)
    assert (problem.line, problem.message) == (
        6, "providers.staq.app_secret_env: environment variable EB_TEST_STAQ_SECRET is not set")


def test_every_problem_of_a_broken_file_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    found = {(p.line, p.message.split(":")[0]): p.message for p in validate(path)}
    assert set(found) == {
        (2, "daemon.ingres"), (3, "daemon.session_timeout"), (10, "providers.gameanalytics.endpoint"),
        (12, "providers.gameanalytics.secret_kye"), (16, "providers.staq.app_secret_env"),
        (19, "providers.mystery.type"), (21, "tables_we_do_not_have")}, found
    assert "did you mean 'ingress'?" in found[(2, "daemon.ingres")]
    assert "must be a number, not str" in found[(3, "daemon.session_timeout")]
    assert "did you mean 'secret_key'?" in found[(12, "providers.gameanalytics.secret_kye")]
    assert "not an http:// or https:// URL" in found[(10, "providers.gameanalytics.endpoint")]
    assert "no provider type 'nosuchprovider'" in found[(19, "providers.mystery.type")]
    assert "16813a12f718bc5c620f56944e1abc3ea13ccbac" not in " ".join(found.values())  # a value is never shown
    done = run_validate(path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[-1] == f"{path}: 7 problem(s)"
    assert f"{path}:2: daemon.ingres: not a setting" in done.stdout


def test_what_start_up_checks_after_the_keys_is_reported_too(tmp_path: Path) -> None:
    """Once every key is known and typed: the endpoints, the HTTP address, the store URL."""
    path = tmp_path / "bridge.toml"
    path.write_text('[daemon]\nlog_level = "info"\nhttp = "0.0.0.0:5557"\n[providers]\n')
    [problem] = validate(path)
    assert problem.line == 3 and problem.message.startswith("daemon.http '0.0.0.0:5557' must be on loopback")
    path.write_text('[providers]\n[daemon]\ningress = "udp://127.0.0.1:1"\n')
    [problem] = validate(path)
    assert problem.line == 3 and "must start with tcp:// or ipc://" in problem.message


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text('[daemon]\ningress = "tcp://127.0.0.1:5555"\npublish = \n')
    [problem] = validate(path)
    assert problem.line == 3 and problem.message.startswith("not valid TOML")
    assert run_validate(tmp_path / "absent.toml").returncode == 1
