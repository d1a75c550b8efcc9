"""`Store`: one database, opened, checked, upgraded and tuned; the errors it raises and the clock it keeps.

SQLite (WAL) by default, any SQLAlchemy URL otherwise, PostgreSQL included. The store's concerns (ingest,
delivery, purchases, provider state, housekeeping) are views built on a `Store`, each in its own module.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Table,
    Text,
    and_,
    cast,
    create_engine,
    event,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, SQLAlchemyError

from . import schema

# The unique index on random event ids touches pages all over: the writer's larger page cache keeps its
# commits small (p99 ack latency at 10k events/s: ~10 ms with SQLite's default 2 MB, ~4 ms with this).
WRITER_CACHE_KIB = 24 * 1024

DEFAULT_LEASE_S = 30.0  # how long a PostgreSQL claim is a daemon's own before another may take it over
# PostgreSQL advisory lock keys (one namespace per purpose): the schema's upgrade, the fleet's housekeeping,
# and the ingest's enqueue against a provider's first registration.
SCHEMA_LOCK, HOUSEKEEPING_LOCK, ENQUEUE_LOCK = 0x6562_0001, 0x6562_0002, 0x6562_0003
PURGES_KEY = "purges"  # in `meta`: see `count_purge`


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
    """Milliseconds since the epoch: the unit of every time the store keeps."""
    return int(time.time() * 1000)


def upsert(conn: Connection, table: Table, key: dict[str, Any], values: dict[str, Any],
           created: dict[str, Any] | None = None) -> None:
    """Update the row with this key, or insert it (with `created`'s columns too). On PostgreSQL one statement:
    daemons of a fleet inserting the same key at once (two seeing the same device) both succeed."""
    if conn.dialect.name == "postgresql":
        conn.execute(pg_insert(table).values({**key, **values, **(created or {})})
                     .on_conflict_do_update(index_elements=list(key), set_=values))
        return
    where = [table.c[name] == value for name, value in key.items()]
    if not conn.execute(update(table).where(*where).values(values)).rowcount:
        conn.execute(insert(table).values({**key, **values, **(created or {})}))


def count_purge(conn: Connection) -> None:
    """Claimable events were deleted, or a player's IP address withheld, in this transaction: one more purge
    counted (one statement, so concurrent purges of a fleet each count), and claimed events are read again
    before their send (`Delivery.recheck`)."""
    meta = schema.meta
    upsert(conn, meta, {"key": PURGES_KEY}, {"value": cast(cast(meta.c.value, BigInteger) + 1, Text)}, {"value": "1"})


def purge_count(conn: Connection) -> int:
    """The purges counted so far (`count_purge`)."""
    return int(conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == PURGES_KEY)).scalar() or 0)


def consented(device_id: ColumnElement[Any], user_id: ColumnElement[Any], required: bool,
              purpose: str = "analytics") -> ColumnElement[bool]:
    """The player (these columns) may have this purpose's data leave the machine: granted, or under
    `consent = "not_required"` anything but denied (no row is unknown)."""
    column = schema.consent.c[purpose]
    match = and_(schema.consent.c.device_id == device_id, schema.consent.c.user_id == user_id)
    if required:
        return exists().where(match, column == schema.GRANTED)
    return ~exists().where(match, column == schema.DENIED)


class Store:
    """One database: opened, upgraded, then written by the ingress and read by the rest. `consent_required`
    is the `[privacy] consent` policy: a player's events go nowhere until they granted analytics."""

    def __init__(self, url: str, durability: str = "normal", consent_required: bool = False,
                 lease_s: float = DEFAULT_LEASE_S) -> None:
        self.consent_required = consent_required
        self.lease_s = lease_s
        # This daemon among the fleet: the `claimed_by` of its leases, unique even for a pid reused on a host.
        self.daemon_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
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

    @property
    def leased(self) -> bool:
        """Delivery is claimed with leases in `delivery_queue` (PostgreSQL: several daemons may share it), else
        with one cursor per provider (SQLite: one daemon)."""
        return self.dialect == "postgresql"

    @contextmanager
    def try_exclusive(self, key: int) -> Iterator[bool]:
        """Whether this daemon alone holds `key` across the fleet, for the block's length (PostgreSQL's session
        advisory lock, not waited for); always true on SQLite, which one daemon uses."""
        if not self.leased:
            yield True
            return
        with self.engine.connect() as conn:
            got = bool(conn.execute(select(func.pg_try_advisory_lock(key))).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(select(func.pg_advisory_unlock(key)))
                    conn.commit()

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
        meta, version_now = schema.meta, schema.SCHEMA_VERSION
        with self.engine.connect() as conn:
            present = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'" if self.dialect == "sqlite"
                else "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_name = 'meta'").first()
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first() if present \
                else None
        if row is not None and int(row[0]) == version_now:
            return version_now
        with self.engine.begin() as conn:
            if self.leased:  # daemons starting at once: one creates or migrates, the others wait, then see it done
                conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
            schema.metadata.create_all(conn, tables=[meta])
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
            version = int(row[0]) if row else None
            if version is None:
                schema.metadata.create_all(conn)
                conn.execute(insert(meta).values(key="schema_version", value=str(version_now)))
                return version_now
            if version > version_now:
                raise StoreError(f"the store has schema version {version}; this engine-bridge knows up to "
                                 f"{version_now}: upgrade engine-bridge")
            while version < version_now:
                schema.MIGRATIONS[version](conn)
                version += 1
            schema.metadata.create_all(conn)
            conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(version)))
            return version

    # --- figures ------------------------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        """Rows in the store, rows not yet delivered to every provider that has a cursor (PostgreSQL: rows in
        the queue), rows held for their player's consent, and this daemon's id."""
        events, cursors, queue = schema.events, schema.delivery_cursors, schema.delivery_queue
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(events)).scalar_one()
            if self.leased:
                undelivered = conn.execute(select(func.count(func.distinct(queue.c.event_pk)))).scalar_one()
            else:
                low = conn.execute(select(func.min(cursors.c.last_pk))).scalar()
                undelivered = 0 if low is None else conn.execute(
                    select(func.count()).select_from(events).where(events.c.pk > low)).scalar_one()
            held = 0 if not self.consent_required else conn.execute(select(func.count()).select_from(events).where(
                ~consented(events.c.device_id, events.c.user_id, True))).scalar_one()
        return {"events": int(total), "undelivered": int(undelivered), "held": int(held), "daemon": self.daemon_id}

    def dispose(self) -> None:
        self.engine.dispose()
