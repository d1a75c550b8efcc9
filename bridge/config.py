"""Settings: a TOML file plus environment variables, turned into one typed `Settings`.

Every setting has its home here, and so does the embedded default the daemon runs on when there is no
file at all: loopback endpoints, SQLite in the per-user data directory, the GameAnalytics sandbox keys
published in its documentation. See `bridge.example.toml` for the annotated file.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .keys import BadKey, public_key
from .secure import RelaySettings

DEFAULT_INGRESS = "tcp://127.0.0.1:5555"
DEFAULT_PUBLISH = "tcp://127.0.0.1:5556"
DB_FILENAME = "bridge.sqlite3"
DURABILITY_LEVELS = ("normal", "full")
ON_CORRUPT = ("stop", "move_aside")  # what start-up does with a damaged SQLite file
CONSENT_POLICIES = ("not_required", "required")  # [privacy] consent

# The GameAnalytics sandbox game: public keys from GameAnalytics' own documentation, refused in production.
GA_SANDBOX = {
    "endpoint": "https://sandbox-api.gameanalytics.com",
    "game_key": "5c6bcb5402204249437fb5a7a80a4959",
    "secret_key": "16813a12f718bc5c620f56944e1abc3ea13ccbac",
}
DEFAULT_PROVIDERS: dict[str, dict[str, Any]] = {"gameanalytics": dict(GA_SANDBOX)}

ENV_PREFIX = "ENGINE_BRIDGE_"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


@dataclass(frozen=True)
class Settings:
    """Everything the daemon needs to start; built by `load()`."""

    data_dir: Path
    ingress: str = DEFAULT_INGRESS
    publish: str = DEFAULT_PUBLISH
    store_url: str | None = None
    durability: str = "normal"
    on_corrupt_store: str = "stop"
    session_timeout_s: float = 900.0
    store_cap_mb: float = 256.0
    keep_delivered_s: float = 24 * 3600.0
    log_level: str = "info"
    local_configs: dict[str, Any] = field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in
                                                                           DEFAULT_PROVIDERS.items()})
    config_path: Path | None = None
    relay: RelaySettings | None = None  # the `[relay]` table: this daemon is a relay, with a CURVE ingress
    consent: str = "not_required"  # [privacy] consent: "required" holds a player's events until they consent
    hold_s: float = 30 * 24 * 3600.0  # [privacy] hold_hours: held events of a player who never answered go

    @property
    def consent_required(self) -> bool:
        return self.consent == "required"

    @property
    def resolved_store_url(self) -> str:
        """The store URL in force: the configured one, else SQLite in the data directory."""
        return self.store_url or f"sqlite:///{self.data_dir / DB_FILENAME}"


def default_data_dir() -> Path:
    """The per-user data directory of this platform's conventions."""
    env = os.environ.get(ENV_PREFIX + "DATA_DIR")
    if env:
        return Path(env)
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "engine-bridge"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "engine-bridge"
    return Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share")) / "engine-bridge"


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _resolve_env_refs(table: dict[str, Any], where: str) -> dict[str, Any]:
    """`secret_key_env = "GA_SECRET"` becomes `secret_key = <that variable>`: secrets stay out of files."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key.endswith("_env") and isinstance(value, str):
            name = key[: -len("_env")]
            if value not in os.environ:
                raise ConfigError(f"{where}.{key}: environment variable {value} is not set")
            out[name] = os.environ[value]
        else:
            out[key] = value
    return out


def _providers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Provider tables; a file without `[providers]` keeps the embedded GameAnalytics sandbox."""
    if "providers" not in doc:
        return {k: dict(v) for k, v in DEFAULT_PROVIDERS.items()}
    providers = {}
    for name, table in _table(doc, "providers").items():
        if not isinstance(table, dict):
            raise ConfigError(f"[providers.{name}] must be a table")
        base = dict(DEFAULT_PROVIDERS.get(name, {}))
        base.update(_resolve_env_refs(table, f"providers.{name}"))
        for key, value in base.items():
            if isinstance(value, str) and value != value.strip():
                # a secret pasted with its newline would go out as an illegal header (and be printed in the error)
                raise ConfigError(f"providers.{name}.{key}: the value starts or ends with whitespace (a newline "
                                  "copied with a secret?); remove it")
        if base.pop("enabled", True):
            providers[name] = base
    return providers


def _relay(doc: dict[str, Any]) -> RelaySettings | None:
    """The `[relay]` table, typed and checked, or None when this daemon is no relay."""
    if "relay" not in doc:
        return None
    table = dict(_table(doc, "relay"))
    known = {"bind", "publish", "allow", "events_per_second", "burst_events", "events_per_day"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"relay: unknown setting {', '.join(unknown)}; the settings are {', '.join(sorted(known))}")
    bind = table.get("bind")
    if not isinstance(bind, str) or not bind.startswith("tcp://"):
        raise ConfigError("relay.bind: a tcp:// endpoint for the CURVE ingress is required, e.g. tcp://0.0.0.0:5557")
    publish = table.get("publish")
    if publish is not None and (not isinstance(publish, str) or not publish.startswith("tcp://")):
        raise ConfigError("relay.publish: a tcp:// endpoint for the CURVE configs socket, e.g. tcp://0.0.0.0:5558")
    allow = table.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(key, str) for key in allow):
        raise ConfigError("relay.allow: a list of client public keys (Z85 text)")
    try:
        for n, key in enumerate(allow):
            public_key(key, f"relay.allow[{n}]")
    except BadKey as exc:
        raise ConfigError(str(exc)) from None
    limits: dict[str, Any] = {}
    for name, kind in (("events_per_second", float), ("burst_events", int), ("events_per_day", int)):
        if name in table:
            value = table[name]
            if type(value) not in ((int, float) if kind is float else (int,)) or value <= 0:
                raise ConfigError(f"relay.{name}: a positive {'number' if kind is float else 'integer'}")
            limits[name] = kind(value)
    return RelaySettings(bind, publish, tuple(allow), **limits)


def read_local_configs(path: Path) -> dict[str, Any]:
    """Only the `[configs]` table: what a reload of a changed file republishes."""
    return dict(_table(_parse(path), "configs"))


def _parse(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load(path: Path | None = None, **overrides: Any) -> Settings:
    """File (if any), then environment, then command-line overrides (those that are not None)."""
    doc = _parse(path) if path is not None else {}
    daemon = _table(doc, "daemon")
    store = _table(doc, "store")
    privacy = _table(doc, "privacy")
    env = os.environ
    settings = Settings(
        data_dir=Path(daemon["data_dir"]).expanduser() if "data_dir" in daemon else default_data_dir(),
        ingress=env.get(ENV_PREFIX + "INGRESS", daemon.get("ingress", DEFAULT_INGRESS)),
        publish=env.get(ENV_PREFIX + "PUBLISH", daemon.get("publish", DEFAULT_PUBLISH)),
        store_url=env.get(ENV_PREFIX + "STORE_URL", store.get("url")),
        durability=store.get("durability", "normal"),
        on_corrupt_store=store.get("on_corrupt", "stop"),
        session_timeout_s=float(daemon.get("session_timeout", 900)),
        store_cap_mb=float(store.get("cap_mb", 256)),
        keep_delivered_s=float(store.get("keep_delivered_hours", 24)) * 3600,
        log_level=daemon.get("log_level", "info"),
        local_configs=dict(_table(doc, "configs")),
        providers=_providers(doc),
        config_path=path,
        relay=_relay(doc),
        consent=privacy.get("consent", "not_required"),
        hold_s=float(privacy.get("hold_hours", 720)) * 3600,
    )
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    for name in ("ingress", "publish"):
        endpoint = getattr(settings, name)
        if not endpoint.startswith(("tcp://", "ipc://")):
            raise ConfigError(f"{name} endpoint {endpoint!r} must start with tcp:// or ipc://")
    if settings.durability not in DURABILITY_LEVELS:
        raise ConfigError(f"store.durability must be one of {DURABILITY_LEVELS}, not {settings.durability!r}")
    if settings.on_corrupt_store not in ON_CORRUPT:
        raise ConfigError(f"store.on_corrupt must be one of {ON_CORRUPT}, not {settings.on_corrupt_store!r}")
    if settings.consent not in CONSENT_POLICIES:
        raise ConfigError(f"privacy.consent must be one of {CONSENT_POLICIES}, not {settings.consent!r}")
    if settings.hold_s <= 0:
        raise ConfigError("privacy.hold_hours must be a positive number of hours")
    if settings.store_cap_mb <= 0:
        raise ConfigError("store.cap_mb must be a positive number of megabytes")
    if settings.session_timeout_s <= 0:
        raise ConfigError("daemon.session_timeout must be a positive number of seconds")
    try:
        make_url(settings.resolved_store_url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError with the reason
        raise ConfigError(f"store.url is not a database URL: {exc}") from None
