"""Settings: the embedded default, the TOML file, environment variables and overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.config import GA_SANDBOX, ConfigError, default_data_dir, load

REPO = Path(__file__).resolve().parent.parent


def test_embedded_default_needs_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("ENGINE_BRIDGE_DATA_DIR", raising=False)
    s = load()
    assert (s.ingress, s.publish) == ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556")
    assert s.data_dir == tmp_path / "engine-bridge" == default_data_dir()
    assert s.resolved_store_url == f"sqlite:///{tmp_path / 'engine-bridge' / 'bridge.sqlite3'}"
    assert s.providers == {}  # nothing leaves the machine unless the configuration says where
    assert s.local_configs == {} and s.durability == "normal"
    assert s.game is None and s.log_file is None


def test_sandbox_keys_only_when_asked(tmp_path: Path) -> None:
    assert load(sandbox=True).providers == {"gameanalytics": GA_SANDBOX}
    path = tmp_path / "b.toml"
    path.write_text('[providers.gameanalytics]\ninterval = 5\n')
    with_sandbox = load(path, sandbox=True).providers["gameanalytics"]
    assert with_sandbox == {**GA_SANDBOX, "interval": 5}
    assert load(path).providers["gameanalytics"] == {"interval": 5}  # no keys filled in: start-up says so


def test_a_game_id_chooses_endpoints_data_dir_and_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("ENGINE_BRIDGE_DATA_DIR", raising=False)
    s = load(game="space-duel")
    assert (s.ingress, s.publish) == (f"ipc://{tmp_path}/run/engine-bridge/space-duel/ingress",
                                      f"ipc://{tmp_path}/run/engine-bridge/space-duel/configs")
    assert s.data_dir == tmp_path / "data" / "engine-bridge" / "games" / "space-duel"
    assert s.log_file == s.data_dir / "engine-bridge.log"
    other = load(game="moon-golf")
    assert {other.ingress, other.publish, other.data_dir}.isdisjoint({s.ingress, s.publish, s.data_dir})
    path = tmp_path / "b.toml"
    path.write_text('[daemon]\ngame = "moon-golf"\ningress = "tcp://127.0.0.1:7000"\n')
    from_file = load(path)
    assert (from_file.game, from_file.ingress, from_file.publish) == ("moon-golf", "tcp://127.0.0.1:7000",
                                                                      other.publish)
    monkeypatch.setenv("ENGINE_BRIDGE_GAME", "Not A Game")
    with pytest.raises(ConfigError, match="daemon.game: game id 'Not A Game' must be"):
        load()


def test_annotated_example_loads() -> None:
    s = load(REPO / "bridge.example.toml")
    assert s.local_configs == {"difficulty": "normal", "max_lives": 3}
    assert s.providers == {}
    assert s.session_timeout_s == 900


def test_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[providers.gameanalytics]\ngame_key = "g"\nsecret_key_env = "MY_GA_SECRET"\n')
    with pytest.raises(ConfigError, match="MY_GA_SECRET is not set"):
        load(path)
    monkeypatch.setenv("MY_GA_SECRET", "s3cret")
    assert load(path).providers["gameanalytics"]["secret_key"] == "s3cret"


def test_environment_and_overrides_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[daemon]\ningress = "tcp://127.0.0.1:7000"\n[store]\nurl = "sqlite:///x.db"\n')
    monkeypatch.setenv("ENGINE_BRIDGE_STORE_URL", "postgresql+psycopg://u:pw@h/db")
    s = load(path, publish="ipc:///tmp/eb-configs")
    assert s.ingress == "tcp://127.0.0.1:7000" and s.publish == "ipc:///tmp/eb-configs"
    assert s.resolved_store_url == "postgresql+psycopg://u:pw@h/db"


def test_disabled_provider_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text("[providers.gameanalytics]\nenabled = false\n")
    assert load(path).providers == {}


@pytest.mark.parametrize("text,message", [
    ('[daemon]\ningress = "http://x"\n', "must start with tcp:// or ipc://"),
    ('[store]\ndurability = "paranoid"\n', "store.durability"),
    ("[daemon]\nsession_timeout = 0\n", "session_timeout"),
    ("configs = 3\n", "[configs] must be a table"),
    ("[daemon\n", "b.toml"),
    ('[daemon]\ningres = "tcp://127.0.0.1:1"\n', "daemon.ingres: not a setting (did you mean 'ingress'?)"),
    ('[store]\ncap_mb = "big"\n', "store.cap_mb: must be a number, not str"),
    ("[daemon]\nsession_timeout = true\n", "daemon.session_timeout: must be a number, not bool"),
    ("[provider.x]\n", "provider: not a table of the configuration (did you mean 'providers'?)"),
    ('[daemon]\nhttp = "10.0.0.5:5557"\n', "daemon.http '10.0.0.5:5557' must be on loopback"),
    ('[daemon]\nhttp = "127.0.0.1"\n', "must be host:port"),
])
def test_bad_files_are_explained(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(path)


def test_the_http_endpoints_are_off_unless_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text("[providers]\n")
    monkeypatch.delenv("ENGINE_BRIDGE_HTTP", raising=False)
    assert load(path).http is None
    path.write_text('[providers]\n[daemon]\nhttp = "[::1]:5557"\n')
    assert load(path).http == "[::1]:5557"
    monkeypatch.setenv("ENGINE_BRIDGE_HTTP", "localhost:6000")
    assert load(path).http == "localhost:6000"
    assert load(path, http="127.0.0.2:7000").http == "127.0.0.2:7000"


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")


@pytest.mark.parametrize("where", ["file", "environment"])
def test_a_secret_with_a_newline_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     where: str) -> None:
    """httpx once printed such a secret in its "illegal header value" error."""
    monkeypatch.setenv("STAQ_SECRET", "s3cr3t-value\n")
    line = 'app_secret_env = "STAQ_SECRET"' if where == "environment" else 'app_secret = """s3cr3t-value\n"""'
    path = tmp_path / "bridge.toml"
    path.write_text(f'[providers.staq]\ntype = "staq"\napp_id = "a"\n{line}\n')
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "providers.staq.app_secret" in str(err.value) and "whitespace" in str(err.value)
    assert "s3cr3t" not in str(err.value)


def test_the_log_never_prints_a_configured_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from bridge.logs import RedactSecrets, secrets_of

    path = tmp_path / "bridge.toml"
    path.write_text('[providers.ga]\ntype = "gameanalytics"\ngame_key = "gk-123456"\nsecret_key = "sk-abcdef"\n'
                    'endpoint = "http://127.0.0.1:1"\n')
    settings = load(path)
    assert sorted(secrets_of(settings)) == ["gk-123456", "sk-abcdef"]
    handler = logging.StreamHandler()
    handler.addFilter(RedactSecrets(secrets_of(settings)))
    log = logging.getLogger("test-redaction")
    log.addHandler(handler)
    try:
        log.error("header %s refused", "sk-abcdef")
        try:
            raise ValueError("Illegal header value b'sk-abcdef\\n'")
        except ValueError:
            log.exception("send failed for gk-123456")
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err
    assert "header *** refused" in err and "send failed for ***" in err and "Illegal header value b'***" in err
    assert "sk-abcdef" not in err and "gk-123456" not in err


def test_the_consent_policy_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    assert not load(None).consent_required  # the default keeps today's behaviour
    path.write_text('[privacy]\nconsent = "required"\nhold_hours = 2\n')
    settings = load(path)
    assert (settings.consent_required, settings.hold_s) == (True, 7200.0)
    path.write_text('[privacy]\nconsent = "ask"\n')
    with pytest.raises(ConfigError, match="privacy.consent"):
        load(path)
