"""The durable store: a versioned SQLAlchemy Core schema and the writes the daemon makes to it.

SQLite (WAL) by default, any SQLAlchemy URL otherwise, PostgreSQL included. The ingress commits one
`Burst` per transaction: every event, session change and device seen since the last commit, so that many
acknowledgements share one commit. Events are deduplicated on (device_id, client_ts, uid): a resent event
repeats both its id and its time, and a key that starts with the time keeps index inserts near the end of
the index instead of scattered over it (random ids alone made commits grow with the store).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, SQLAlchemyError

SCHEMA_VERSION = 4
# The unique index on random event ids touches pages all over: the writer's larger page cache keeps its
# commits small (p99 ack latency at 10k events/s: ~10 ms with SQLite's default 2 MB, ~4 ms with this).
WRITER_CACHE_KIB = 24 * 1024

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

devices = Table(
    "devices", metadata,
    Column("device_id", String(128), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("engine", String(64), nullable=False),
    Column("engine_version", String(64)),
    Column("binding", String(64), nullable=False),
    Column("binding_version", String(32), nullable=False),
    Column("game_build", String(32), nullable=False),
    Column("platform", String(32)),
    Column("os_version", String(64)),
    Column("device", String(64)),
    Column("manufacturer", String(64)),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
)

sessions = Table(
    "sessions", metadata,
    Column("session_id", String(36), primary_key=True),
    Column("device_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("session_num", Integer, nullable=False),
    Column("user_ip", String(45)),
    Column("started_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger),
    Column("length", Integer),
    Index("ix_sessions_user", "user_id", "session_num"),
)

events = Table(
    "events", metadata,
    Column("pk", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("device_id", String(128), nullable=False),
    Column("uid", String(80), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("session_id", String(36)),
    Column("category", String(32), nullable=False),
    Column("client_ts", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("game_build", String(32), nullable=False),
    Column("fields", LargeBinary, nullable=False),  # msgpack map
    UniqueConstraint("device_id", "client_ts", "uid", name="uq_events_device_ts_uid"),
    sqlite_autoincrement=True,  # pks never reused: delivery cursors rely on a growing pk
)

# Per provider, how far along the event stream it has delivered (events are claimed in pk order).
delivery_cursors = Table(
    "delivery_cursors", metadata,
    Column("provider", String(64), primary_key=True),
    Column("last_pk", BigInteger, nullable=False, default=0),
    Column("delivered", BigInteger, nullable=False, default=0),
    Column("updated_at", BigInteger, nullable=False),
)

# Tokens, config hashes, clock offsets: whatever a provider must remember across restarts.
provider_state = Table(
    "provider_state", metadata,
    Column("provider", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

configs = Table(
    "configs", metadata,
    Column("topic", String(200), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("source", String(32), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # the msgpack publication map
    Column("updated_at", BigInteger, nullable=False),
)

dead_letters = Table(
    "dead_letters", metadata,
    Column("pk", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("event_pk", BigInteger, nullable=False),
    Column("code", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("requeued_at", BigInteger),
    sqlite_autoincrement=True,
)

# Purchases to verify (staq): stored when the engine sends them, verified by the dispatcher, their result
# published to the device and kept here.
purchases = Table(
    "purchases", metadata,
    Column("pk", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("device_id", String(128), nullable=False),
    Column("purchase_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("session_id", String(36)),
    Column("store", String(16), nullable=False),
    Column("receipt", Text, nullable=False),
    Column("signature", Text),
    Column("price_usd", Float, nullable=False),
    Column("status", String(32), nullable=False),
    Column("comment", Text, nullable=False),
    Column("metadata", LargeBinary, nullable=False),  # msgpack map
    Column("created_at", BigInteger, nullable=False),
    Column("verified_at", BigInteger),
    Column("is_valid", Boolean),
    Column("is_duplicate", Boolean),
    Column("reason", Text),
    # Schema 4: when a verification request last went out (a retry of it may meet the receipt as already
    # spent, by ourselves), how many tries ended without a verdict, and when the next one is due.
    Column("sent_at", BigInteger),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("next_try_at", BigInteger),
    UniqueConstraint("device_id", "purchase_id", name="uq_purchases_device_id"),
    Index("ix_purchases_unverified", "verified_at"),
    sqlite_autoincrement=True,
)

# What a provider called our events (staq's event ids), for tracing one event across systems.
provider_refs = Table(
    "provider_refs", metadata,
    Column("provider", String(64), primary_key=True),
    Column("event_pk", BigInteger, primary_key=True),
    Column("ref", String(200), nullable=False),
)

EVENT_COLUMNS = ("device_id", "uid", "user_id", "session_id", "category", "client_ts", "received_at",
                 "game_build", "fields")

# Compiled once per dialect (placeholders differ); the hot path hands rows straight to executemany.
INSERT_EVENTS_SQL = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({{marks}}) "
                     "ON CONFLICT (device_id, client_ts, uid) DO NOTHING")

# Upgrades in place: MIGRATIONS[n] takes a store from schema version n to n + 1.
def _rekey_events(conn: Connection) -> None:
    """Schema 3: events deduplicated on (device_id, client_ts, uid) instead of (device_id, uid)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE events DROP CONSTRAINT uq_events_device_uid")
        conn.exec_driver_sql("ALTER TABLE events ADD CONSTRAINT uq_events_device_ts_uid "
                             "UNIQUE (device_id, client_ts, uid)")
        return
    # SQLite cannot drop a table constraint: rebuild the table, keeping its rows and its pk sequence.
    seq = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'events'").scalar() or 0
    conn.exec_driver_sql("ALTER TABLE events RENAME TO events_v2")
    events.create(conn)
    columns = ", ".join(c.name for c in events.c)
    conn.exec_driver_sql(f"INSERT INTO events ({columns}) SELECT {columns} FROM events_v2")
    conn.exec_driver_sql("DROP TABLE events_v2")
    conn.exec_driver_sql("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'events'", (seq,))


def _purchase_retries(conn: Connection) -> None:
    """Schema 4: purchases remember their verification in flight and retry each on its own backoff.
    (A store upgraded from schema 1 made its purchases table with these columns already.)"""
    present = {column["name"] for column in inspect(conn).get_columns("purchases")}
    for name, ddl in (("sent_at", "BIGINT"), ("failures", "INTEGER NOT NULL DEFAULT 0"), ("next_try_at", "BIGINT")):
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE purchases ADD COLUMN {name} {ddl}")


def _add_purchases(conn: Connection) -> None:
    """Schema 2: purchase verification."""
    purchases.create(conn)
    provider_refs.create(conn)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _add_purchases,  # 2: purchase verification
    2: _rekey_events,  # 3: time-led dedupe key
    3: _purchase_retries,  # 4: in-flight mark and a backoff per purchase
}


EventKey = tuple[str, int, str]  # (device_id, client_ts, uid): what makes an event the same event


class StoreError(Exception):
    """The store cannot be used as it is (a newer schema, an unreachable database)."""


class StoreCorrupt(StoreError):
    """The SQLite file is damaged (not a database, malformed pages, truncated): it can be moved aside."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"the store {path} is damaged ({reason}). Run with --on-corrupt-store=move-aside (or "
                         "[store] on_corrupt = \"move_aside\") to keep it aside for inspection and start afresh")
        self.path = path


SQLITE_MAGIC = b"SQLite format 3\x00"
CORRUPT_MARKS = ("not a database", "malformed", "encrypted", "corrupt")


def error_text(exc: BaseException) -> str:
    """A database error in one line, without the statement or its parameters (they may hold tokens)."""
    orig = getattr(exc, "orig", None)
    cause = orig if orig is not None else exc
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}".rstrip(": ")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Burst:
    """What one transaction writes: all the events, sessions and devices since the last commit.

    `stamp` is the `received_at` of every event row in it: ms since the epoch, strictly greater than the
    previous burst's, so a burst's rows can be told from older ones.
    """

    stamp: int
    events: list[tuple[Any, ...]] = field(default_factory=list)  # in EVENT_COLUMNS order
    purchases: list[dict[str, Any]] = field(default_factory=list)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_sessions: list[dict[str, Any]] = field(default_factory=list)
    ended_sessions: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.devices or self.new_sessions or self.ended_sessions or self.purchases)


class Store:
    """One database: opened, upgraded, then written by the ingress and read by the rest."""

    def __init__(self, url: str, durability: str = "normal") -> None:
        parsed = make_url(url)
        self.redacted_url = parsed.render_as_string(hide_password=True)  # the only form fit for logs
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"store dialect {self.dialect!r} is not supported; use sqlite or postgresql")
        self.path: Path | None = None
        if self.dialect == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self.path = Path(parsed.database)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot use {self.path.parent} as the data directory ({exc.strerror}): make it a "
                                 "writable directory, or choose another with --data-dir") from None
        self.engine: Engine = create_engine(url, future=True)
        if self.dialect == "sqlite":
            self._tune_sqlite(durability)
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql = INSERT_EVENTS_SQL.format(marks=",".join([mark] * len(EVENT_COLUMNS)))

    def _tune_sqlite(self, durability: str) -> None:
        """WAL lets readers run beside the writer; NORMAL survives a process crash, FULL a power loss.

        Automatic checkpoints are off: one would stall whichever commit crossed the threshold (an ack
        waiting on an fsync). The daemon calls `checkpoint()` from its own thread instead.
        """
        synchronous = "FULL" if durability == "full" else "NORMAL"

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

    def writer_connection(self) -> Connection:
        """The ingress's own connection, with the larger page cache the event insert wants."""
        conn = self.engine.connect()
        if self.dialect == "sqlite":
            conn.exec_driver_sql(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            conn.commit()
        return conn

    def checkpoint(self, final: bool = False) -> None:
        """Copy the SQLite WAL into the database without blocking the writer (TRUNCATE at shutdown)."""
        if self.dialect != "sqlite":
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"PRAGMA wal_checkpoint({'TRUNCATE' if final else 'PASSIVE'})")

    # --- schema -------------------------------------------------------------------------------------

    def open(self) -> int:
        """Check the store can be used, then create or upgrade its schema; StoreError says what is wrong.

        A current schema is only read, so that a daemon restarts on a disk too full to write."""
        try:
            self._check_sqlite_file()
            return self.upgrade()
        except DatabaseError as exc:
            text = error_text(exc)
            if self.path is not None and any(mark in text for mark in CORRUPT_MARKS):
                raise StoreCorrupt(self.path, text) from None
            raise StoreError(f"cannot open the store {self.redacted_url}: {text}") from None
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store {self.redacted_url}: {error_text(exc)}") from None

    def _check_sqlite_file(self) -> None:
        """Every page of the file is read once (SQLite's quick_check): damage shows now, not at the first ack."""
        size = self.path.stat().st_size if self.path is not None and self.path.exists() else 0
        if self.path is None or not size:
            return
        with open(self.path, "rb") as fh:
            header = fh.read(100)
        if not header.startswith(SQLITE_MAGIC):
            raise StoreCorrupt(self.path, "not a database: the file does not start with SQLite's header")
        page_size = int.from_bytes(header[16:18], "big") if len(header) >= 18 else 0
        page_size = 65536 if page_size == 1 else page_size
        if page_size < 512 or size % page_size:
            # SQLite reads a file cut inside its first page as an empty database: check before it does
            raise StoreCorrupt(self.path, "truncated: the file is not a whole number of pages")
        with self.engine.connect() as conn:
            verdict = conn.exec_driver_sql("PRAGMA quick_check").scalar()
        if verdict != "ok":
            lines = [line for line in str(verdict).splitlines() if line.strip() and not line.startswith("***")]
            raise StoreCorrupt(self.path, f"quick_check: {(lines or ['failed'])[0][:200]}")

    def move_aside(self) -> Path:
        """Rename a damaged SQLite file (and its -wal and -shm) out of the way; returns its new name."""
        assert self.path is not None
        self.engine.dispose()
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self.path}{suffix}")
            if part.exists():
                part.rename(Path(f"{aside}{suffix}"))
        return aside

    def upgrade(self) -> int:
        """Create or upgrade the schema in place; returns the version now in force."""
        with self.engine.connect() as conn:
            present = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'" if self.dialect == "sqlite"
                else "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_name = 'meta'").first()
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first() if present \
                else None
        if row is not None and int(row[0]) == SCHEMA_VERSION:
            return SCHEMA_VERSION
        with self.engine.begin() as conn:
            metadata.create_all(conn, tables=[meta])
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
            version = int(row[0]) if row else None
            if version is None:
                metadata.create_all(conn)
                conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
                return SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                raise StoreError(f"the store has schema version {version}; this engine-bridge knows up to "
                                 f"{SCHEMA_VERSION}: upgrade engine-bridge")
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
            metadata.create_all(conn)
            conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(version)))
            return version

    # --- the ingress's writes -----------------------------------------------------------------------

    def commit_burst(self, conn: Connection, burst: Burst) -> set[EventKey] | None:
        """Write a burst in one transaction; returns the keys (device_id, client_ts, uid) of the new events, or
        None when every event was new (the usual case, told by the row count alone).

        One executemany of INSERT ... ON CONFLICT DO NOTHING. Only when the row count says some were
        duplicates are this burst's keys read back: a row this burst wrote carries the burst's own
        `received_at` stamp, unique per burst.
        """
        with conn.begin():
            for device in burst.devices.values():
                self._upsert_device(conn, device)
            if burst.new_sessions:
                conn.execute(insert(sessions), burst.new_sessions)
            for ended in burst.ended_sessions:
                conn.execute(update(sessions).where(sessions.c.session_id == ended["session_id"])
                             .values(ended_at=ended["ended_at"], length=ended["length"]))
            for purchase in burst.purchases:
                self._insert_purchase(conn, purchase)
            if not burst.events:
                return None
            written = conn.exec_driver_sql(self._insert_sql, burst.events).rowcount
            if written == len(burst.events):
                return None
            return self._written_by(conn, {(row[0], row[5], row[1]) for row in burst.events}, burst.stamp)

    def _written_by(self, conn: Connection, keys: set[EventKey], stamp: int) -> set[EventKey]:
        """Which of these keys this burst inserted (the rest were already stored)."""
        by_device: dict[str, list[tuple[int, str]]] = {}
        for device_id, client_ts, uid in keys:
            by_device.setdefault(device_id, []).append((client_ts, uid))
        new: set[EventKey] = set()
        for device_id, pairs in by_device.items():
            for start in range(0, len(pairs), 500):
                rows = conn.execute(select(events.c.client_ts, events.c.uid).where(
                    events.c.device_id == device_id, tuple_(events.c.client_ts, events.c.uid).in_(
                        pairs[start:start + 500]), events.c.received_at == stamp))
                new.update((device_id, client_ts, uid) for client_ts, uid in rows)
        return new

    def _insert_purchase(self, conn: Connection, purchase: dict[str, Any]) -> None:
        """A purchase resent after a lost reply is the same purchase: stored once."""
        exists = conn.execute(select(purchases.c.pk).where(
            purchases.c.device_id == purchase["device_id"], purchases.c.purchase_id == purchase["purchase_id"])).first()
        if exists is None:
            conn.execute(insert(purchases).values(purchase))

    def _upsert_device(self, conn: Connection, device: dict[str, Any]) -> None:
        changed = conn.execute(update(devices).where(devices.c.device_id == device["device_id"])
                               .values({k: v for k, v in device.items() if k != "first_seen"})).rowcount
        if not changed:
            conn.execute(insert(devices).values(device))

    # --- sessions -----------------------------------------------------------------------------------

    def open_sessions(self) -> list[dict[str, Any]]:
        """Sessions not yet ended: the ingress resumes them after a restart."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(sessions).where(sessions.c.ended_at.is_(None))).mappings().all()
        return [dict(r) for r in rows]

    def last_session_nums(self) -> dict[str, int]:
        """Per user, the highest session number so far, so numbering continues after a restart."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(sessions.c.user_id, func.max(sessions.c.session_num))
                                .group_by(sessions.c.user_id)).all()
        return {user: int(num) for user, num in rows}

    # --- configs ------------------------------------------------------------------------------------

    def load_configs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(configs)).mappings().all()]

    def save_config(self, topic: str, version: int, source: str, payload: bytes, updated_at: int) -> None:
        with self.engine.begin() as conn:
            changed = conn.execute(update(configs).where(configs.c.topic == topic).values(
                version=version, source=source, payload=payload, updated_at=updated_at)).rowcount
            if not changed:
                conn.execute(insert(configs).values(topic=topic, version=version, source=source, payload=payload,
                                                    updated_at=updated_at))

    # --- figures ------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Rows in the store and rows not yet delivered to every provider that has a cursor."""
        with self.engine.connect() as conn:
            return self._counts(conn)

    @staticmethod
    def _counts(conn: Connection) -> dict[str, int]:
        total = conn.execute(select(func.count()).select_from(events)).scalar_one()
        low = conn.execute(select(func.min(delivery_cursors.c.last_pk))).scalar()
        undelivered = 0 if low is None else conn.execute(
            select(func.count()).select_from(events).where(events.c.pk > low)).scalar_one()
        return {"events": int(total), "undelivered": int(undelivered)}

    def queued_for_device(self, device_id: str) -> int:
        with self.engine.connect() as conn:
            low = conn.execute(select(func.min(delivery_cursors.c.last_pk))).scalar()
            if low is None:
                return 0
            return int(conn.execute(select(func.count()).select_from(events).where(
                events.c.device_id == device_id, events.c.pk > low)).scalar_one())

    def dispose(self) -> None:
        self.engine.dispose()
