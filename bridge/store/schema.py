"""The schema: every table, its version, and the migrations that upgrade an older store in place.

A store records its SCHEMA_VERSION in `meta`; `Store.upgrade` walks MIGRATIONS from there to this one, so a
database written by any earlier release is upgraded where it is, its rows kept.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)

SCHEMA_VERSION = 10

metadata = MetaData()

# What a player's device is, in the devices table (from its hello) and per session (from its session_start).
PLAYER_DEVICE = ("platform", "os_version", "device", "manufacturer", "engine_version")

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
    Column("client_key", String(40)),  # at a relay: the CURVE key of the client that owns the device (Z85)
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
    # Schema 5: the player's own device, as its session_start gave it (a dedicated server's players each
    # play on their own device); None where it gave none, and the device's hello values stand.
    *(Column(name, String(32 if name == "platform" else 64)) for name in PLAYER_DEVICE),
    # Schema 9: the player's last activity as a daemon of a fleet last wrote it (at most every few seconds),
    # so that another daemon does not end a session its player is still playing elsewhere; None on SQLite.
    Column("last_seen", BigInteger),
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
    # Schema 8 (PostgreSQL fleets): batches whose lease another daemon took over before they were finished, the
    # events of theirs their daemon had delivered (sent again by the new holder: duplicates at the provider), and
    # events claimed again after a lease on them ended unfinished (a daemon died, stalled or stopped: maybe sent).
    Column("leases_lost", BigInteger, nullable=False, server_default="0"),
    Column("duplicates", BigInteger, nullable=False, server_default="0"),
    Column("taken_over", BigInteger, nullable=False, server_default="0"),
)

# Schema 8, PostgreSQL only: one row per event and provider until that provider finished with it (the row is then
# deleted: the table stays as small as the backlog). A daemon leases rows (`claimed_by`, `claimed_until`); a
# lease that ran out is anyone's again. The player's columns let a claim keep each player's events in order.
# Schema 10: a free row (`claimed_until` NULL: never claimed, given back, or its lease swept once it ran out) is
# found through its own partial index, oldest first, without stepping over the rows leased now (a fleet's whole
# waiting backlog); the leased ones through theirs, by when they run out.
_FREE = "claimed_until IS NULL"
_LEASED = "claimed_until IS NOT NULL"
delivery_queue = Table(
    "delivery_queue", metadata,
    Column("provider", String(64), primary_key=True),
    Column("event_pk", BigInteger, primary_key=True),
    Column("device_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("claimed_by", String(128)),
    Column("claimed_until", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Index("ix_delivery_queue_player", "provider", "device_id", "user_id", "event_pk"),
    Index("ix_delivery_queue_free", "provider", "event_pk", postgresql_where=text(_FREE), sqlite_where=text(_FREE)),
    Index("ix_delivery_queue_leased", "provider", "claimed_until", postgresql_where=text(_LEASED),
          sqlite_where=text(_LEASED)),
)

# Events a provider finished with past its cursor: one player's batch done while an older player's is still
# out. The cursor moves past them when every event before them is finished too; a restart skips them.
delivery_done = Table(
    "delivery_done", metadata,
    Column("provider", String(64), primary_key=True),
    Column("event_pk", BigInteger, primary_key=True),
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
    # Schema 7: the player was forgotten while this purchase awaited its verdict: erased once the verdict went out.
    Column("erase_after_verdict", Boolean),
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

UNKNOWN, GRANTED, DENIED = "unknown", "granted", "denied"  # a player's consent to one purpose

# Schema 7: each player's consent, per purpose: analytics (anything of theirs leaving the machine) and ip_ads
# (their IP address and advertising ids); "unknown", "granted" or "denied". No row: unknown.
consent = Table(
    "consent", metadata,
    Column("device_id", String(128), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("analytics", String(8), nullable=False),
    Column("ip_ads", String(8), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Schema 7: the erasure ledger, one entry per provider and forgotten player: what was asked and when, and what
# became of it ("pending" until the provider's lane took it; then "requested" through a deletion API, "manual"
# for a request the studio sends by hand, or "failed"). The only place a forgotten player is still named.
erasures = Table(
    "erasures", metadata,
    Column("pk", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("requested_at", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("done_at", BigInteger),
    Column("provider", String(64), nullable=False),
    Column("device_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("own", Boolean, nullable=False),  # the device's own (hello) player: its device-wide topics went too
    Column("ids", Text, nullable=False),  # JSON: what the provider knows the player as
    Column("detail", Text, nullable=False),  # the deletion API's answer, or what to ask for by hand
    Index("ix_erasures_provider_status", "provider", "status"),
    sqlite_autoincrement=True,
)


# Schema 9: each relay client key's events per UTC day, counted in the events' own transaction, so that the
# daily quota holds across restarts and across a fleet of relays.
client_quota = Table(
    "client_quota", metadata,
    Column("client_key", String(40), primary_key=True),
    Column("day", Integer, primary_key=True),  # days since the epoch, UTC
    Column("events", BigInteger, nullable=False),
)


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


def _add_missing_columns(conn: Connection, table: Table) -> None:
    """The table's nullable columns that an older schema lacks, added (ALTER TABLE keeps every row)."""
    present = {column["name"] for column in inspect(conn).get_columns(table.name)}
    for column in table.c:
        if column.name not in present:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} "
                                 f"{column.type.compile(conn.dialect)}")


def _per_player(conn: Connection) -> None:
    """Schema 5: players' own devices on their sessions, and events finished past a cursor."""
    _add_missing_columns(conn, sessions)
    delivery_done.create(conn, checkfirst=True)


def _device_keys(conn: Connection) -> None:
    """Schema 6: at a relay, the client key that owns each device."""
    _add_missing_columns(conn, devices)


def _privacy(conn: Connection) -> None:
    """Schema 7: players' consent and the erasure ledger; purchases to erase after their verdict."""
    _add_missing_columns(conn, purchases)
    consent.create(conn, checkfirst=True)
    erasures.create(conn, checkfirst=True)


def _leases(conn: Connection) -> None:
    """Schema 8: the leased queue of PostgreSQL fleets, filled with every event past each cursor that its
    provider has not finished with; the lease figures on the cursors."""
    present = {column["name"] for column in inspect(conn).get_columns("delivery_cursors")}
    for name in ("leases_lost", "duplicates", "taken_over"):
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE delivery_cursors ADD COLUMN {name} BIGINT NOT NULL DEFAULT 0")
    delivery_queue.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "INSERT INTO delivery_queue (provider, event_pk, device_id, user_id) "
            "SELECT c.provider, e.pk, e.device_id, e.user_id FROM delivery_cursors c JOIN events e ON e.pk > c.last_pk "
            "WHERE NOT EXISTS (SELECT 1 FROM delivery_done d WHERE d.provider = c.provider AND d.event_pk = e.pk)")
        conn.exec_driver_sql("DELETE FROM delivery_done")


def _fleet_sessions(conn: Connection) -> None:
    """Schema 9: sessions' last activity across a fleet; relay clients' daily counts."""
    _add_missing_columns(conn, sessions)
    client_quota.create(conn, checkfirst=True)


def _claim_indexes(conn: Connection) -> None:
    """Schema 10: the queue's free and leased rows indexed apart, so that a claim reads only what it takes."""
    for index in delivery_queue.indexes:
        index.create(conn, checkfirst=True)


def _add_purchases(conn: Connection) -> None:
    """Schema 2: purchase verification."""
    purchases.create(conn)
    provider_refs.create(conn)


MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _add_purchases,  # 2: purchase verification
    2: _rekey_events,  # 3: time-led dedupe key
    3: _purchase_retries,  # 4: in-flight mark and a backoff per purchase
    4: _per_player,  # 5: per-player devices, events finished out of order
    5: _device_keys,  # 6: a relay's device owners
    6: _privacy,  # 7: consent and erasures
    7: _leases,  # 8: leased claims for fleets on PostgreSQL
    8: _fleet_sessions,  # 9: sessions' last activity, relay clients' daily counts
    9: _claim_indexes,  # 10: the leased queue's free and leased rows indexed apart
}
