"""Settings: the embedded default, the TOML file, environment variables and overrides."""

from __future__ import annotations

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
    assert s.providers == {"gameanalytics": GA_SANDBOX}
    assert s.local_configs == {} and s.durability == "normal"


def test_annotated_example_loads() -> None:
    s = load(REPO / "bridge.example.toml")
    assert s.local_configs == {"difficulty": "normal", "max_lives": 3}
    assert s.providers["gameanalytics"]["game_key"] == GA_SANDBOX["game_key"]
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
])
def test_bad_files_are_explained(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "b.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(path)


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
