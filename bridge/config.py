"""Settings: a TOML file plus environment variables, turned into one typed `Settings`.

Every setting has its home here, and so does the embedded default the daemon runs on when there is no
file at all: loopback endpoints (a game's own with a `game` id, bridge/game.py), SQLite in the per-user data
directory, and no provider: nothing leaves the machine unless the configuration says where (`--sandbox` adds
the GameAnalytics sandbox game, for development). See `bridge.example.toml` for the annotated file.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from .keys import BadKey, public_key
from .secure import RelaySettings
from .game import check_game, default_endpoints

DEFAULT_INGRESS = "tcp://127.0.0.1:5555"
DEFAULT_PUBLISH = "tcp://127.0.0.1:5556"
DEFAULT_HTTP = "127.0.0.1:5557"  # where `tap` looks; the daemon serves HTTP only when [daemon] http is set
DB_FILENAME = "bridge.sqlite3"
DURABILITY_LEVELS = ("normal", "full")
ON_CORRUPT = ("stop", "move_aside")  # what start-up does with a damaged SQLite file
CONSENT_POLICIES = ("not_required", "required")  # [privacy] consent

LOG_FILENAME = "engine-bridge.log"

# The GameAnalytics sandbox game: public keys from GameAnalytics' own documentation, refused in production.
# For development only: `engine-bridge run --sandbox` (and `make demo`, against its local sandboxes) use them.
GA_SANDBOX = {
    "endpoint": "https://sandbox-api.gameanalytics.com",
    "game_key": "5c6bcb5402204249437fb5a7a80a4959",
    "secret_key": "16813a12f718bc5c620f56944e1abc3ea13ccbac",
}
SANDBOX_PROVIDERS: dict[str, dict[str, Any]] = {"gameanalytics": dict(GA_SANDBOX)}

ENV_PREFIX = "ENGINE_BRIDGE_"

# The keys of the daemon's own tables and their TOML types: an unknown or misspelt key, or a value of another
# type, stops start-up (and `engine-bridge validate`) naming it, as the providers' typed settings do.
NUMBER = (int, float)
TABLE_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "daemon": {"ingress": str, "publish": str, "data_dir": str, "session_timeout": NUMBER, "log_level": str,
               "http": str, "game": str, "log_file": str},
    "store": {"url": str, "durability": str, "on_corrupt": str, "cap_mb": NUMBER, "keep_delivered_hours": NUMBER,
              "lease_s": NUMBER},
    "privacy": {"consent": str, "hold_hours": NUMBER},
}
TABLES = (*TABLE_KEYS, "configs", "providers", "relay")  # [relay]'s own keys are checked where it is read


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
    lease_s: float = 30.0  # PostgreSQL: how long a daemon's claim on a batch holds before another may take it
    log_level: str = "info"
    http: str | None = None  # host:port of the operator's HTTP endpoints (health, metrics, inspector); None: off
    local_configs: dict[str, Any] = field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_path: Path | None = None
    relay: RelaySettings | None = None  # the `[relay]` table: this daemon is a relay, with a CURVE ingress
    game: str | None = None  # the game this daemon serves: a hello naming another gets `wrong_game`
    log_file: Path | None = None  # besides standard error; a game's daemon logs into its data directory
    parent_pipe: bool = False  # stop when standard input reaches its end: the game that launched it is gone
    parent_pid: int | None = None  # stop when this process (the game) is gone
    consent: str = "not_required"  # [privacy] consent: "required" holds a player's events until they consent
    hold_s: float = 30 * 24 * 3600.0  # [privacy] hold_hours: held events of a player who never answered go

    @property
    def consent_required(self) -> bool:
        return self.consent == "required"

    @property
    def resolved_store_url(self) -> str:
        """The store URL in force: the configured one, else SQLite in the data directory."""
        return self.store_url or f"sqlite:///{self.data_dir / DB_FILENAME}"


def default_data_dir(game: str | None = None) -> Path:
    """The per-user data directory of this platform's conventions; a game's own folder in it (unless
    ENGINE_BRIDGE_DATA_DIR names one)."""
    env = os.environ.get(ENV_PREFIX + "DATA_DIR")
    if env:
        return Path(env)
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "engine-bridge"
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support" / "engine-bridge"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share")) / "engine-bridge"
    return base / "games" / game if game else base


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def key_problems(doc: dict[str, Any]) -> list[str]:
    """Unknown tables, unknown keys and mistyped values of the daemon's own tables, each as `table.key: why`
    (the providers' tables are checked by their typed settings)."""
    found = []
    for name in doc:
        if name not in TABLES:
            found.append(f"{name}: not a table of the configuration{_close(name, TABLES)}; it takes: "
                         f"{', '.join(TABLES)}")
    for name, spec in TABLE_KEYS.items():
        table = doc.get(name, {})
        if not isinstance(table, dict):
            found.append(f"{name}: must be a table ([{name}])")
            continue
        for key, value in table.items():
            if key not in spec:
                found.append(f"{name}.{key}: not a setting{_close(key, spec)}; [{name}] takes: {', '.join(spec)}")
            elif isinstance(value, bool) or not isinstance(value, spec[key]):
                wanted = "a number" if spec[key] == NUMBER else "a string"
                found.append(f"{name}.{key}: must be {wanted}, not {type(value).__name__}")
    return found


def _close(word: str, known: Any) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


def _providers(doc: dict[str, Any], sandbox: bool) -> dict[str, dict[str, Any]]:
    """Provider tables: none unless the file names some; `sandbox` adds the GameAnalytics sandbox game (a
    `[providers.gameanalytics]` table then only needs what it changes)."""
    defaults = SANDBOX_PROVIDERS if sandbox else {}
    tables = {name: {} for name in defaults} | _table(doc, "providers")
    providers = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"[providers.{name}] must be a table")
        base = dict(defaults.get(name, {}))
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
        raise ConfigError("relay.bind: a tcp:// endpoint for the CURVE ingress is required, e.g. tcp://0.0.0.0:5560")
    publish = table.get("publish")
    if publish is not None and (not isinstance(publish, str) or not publish.startswith("tcp://")):
        raise ConfigError("relay.publish: a tcp:// endpoint for the CURVE configs socket, e.g. tcp://0.0.0.0:5561")
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


def load(path: Path | None = None, sandbox: bool = False, **overrides: Any) -> Settings:
    """File (if any), then environment, then command-line overrides (those that are not None). A game id
    chooses the defaults of the endpoints, the data directory and the log file."""
    doc = _parse(path) if path is not None else {}
    problems = key_problems(doc)
    if problems:
        raise ConfigError(problems[0])
    daemon = _table(doc, "daemon")
    store = _table(doc, "store")
    privacy = _table(doc, "privacy")
    env = os.environ
    game = overrides.get("game") or env.get(ENV_PREFIX + "GAME", daemon.get("game"))
    try:
        game = None if game is None else check_game(game)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"daemon.game: {exc}") from None
    ingress, publish = default_endpoints(game) if game else (DEFAULT_INGRESS, DEFAULT_PUBLISH)
    data_dir = overrides.get("data_dir") or (Path(daemon["data_dir"]).expanduser() if "data_dir" in daemon
                                             else default_data_dir(game))
    log_file = daemon.get("log_file", str(data_dir / LOG_FILENAME) if game else None)
    settings = Settings(
        data_dir=data_dir,
        ingress=env.get(ENV_PREFIX + "INGRESS", daemon.get("ingress", ingress)),
        publish=env.get(ENV_PREFIX + "PUBLISH", daemon.get("publish", publish)),
        store_url=env.get(ENV_PREFIX + "STORE_URL", store.get("url")),
        durability=store.get("durability", "normal"),
        on_corrupt_store=store.get("on_corrupt", "stop"),
        session_timeout_s=float(daemon.get("session_timeout", 900)),
        store_cap_mb=float(store.get("cap_mb", 256)),
        keep_delivered_s=float(store.get("keep_delivered_hours", 24)) * 3600,
        lease_s=float(store.get("lease_s", 30)),
        log_level=daemon.get("log_level", "info"),
        http=env.get(ENV_PREFIX + "HTTP", daemon.get("http")),
        local_configs=dict(_table(doc, "configs")),
        providers=_providers(doc, sandbox),
        config_path=path,
        relay=_relay(doc),
        game=game,
        log_file=None if log_file is None else Path(log_file).expanduser(),
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
    if settings.lease_s <= 0:
        raise ConfigError("store.lease_s must be a positive number of seconds")
    if settings.session_timeout_s <= 0:
        raise ConfigError("daemon.session_timeout must be a positive number of seconds")
    if settings.http is not None:
        check_http(settings.http)
    try:
        make_url(settings.resolved_store_url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError with the reason
        raise ConfigError(f"store.url is not a database URL: {exc}") from None


def check_http(address: str) -> tuple[str, int]:
    """`host:port` of the HTTP endpoints, on loopback only: the inspector re-queues dead letters and shows
    every event, and it has no login (bind a tunnel, `ssh -L`, to reach it from elsewhere)."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"daemon.http {address!r} must be host:port, e.g. 127.0.0.1:5557")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"daemon.http {address!r} must be on loopback (127.0.0.1, ::1 or localhost): the "
                          "inspector has no login; reach it from elsewhere through an SSH tunnel")
    return host, int(port)
