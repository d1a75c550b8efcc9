"""What must survive a restart beside the events: providers' own state, and the publisher's config topics."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .database import Store, consented, now_ms, upsert
from .rows import Player, SavedConfig
from .schema import configs, consent, devices, provider_state, sessions


class ProviderState:
    """Tokens, config hashes, clock offsets, players: what providers keep, and the devices they act for."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine
        self.consent_required = store.consent_required

    @property
    def shared(self) -> bool:
        """Other daemons may read and write this state meanwhile (PostgreSQL's fleet): memory is no authority."""
        return self.store.leased

    def get(self, provider: str, key: str) -> Any:
        """A value the provider set (JSON), or None."""
        return self.get_many(provider, [key]).get(key)

    def get_many(self, provider: str, keys: list[str]) -> dict[str, Any]:
        """The values the provider set under these keys, in one query; keys never set are left out."""
        if not keys:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(provider_state.c.key, provider_state.c.value).where(
                provider_state.c.provider == provider, provider_state.c.key.in_(keys))).all()
        return {key: json.loads(value) for key, value in rows}

    def set(self, provider: str, key: str, value: Any) -> None:
        self.set_many(provider, {key: value})

    def set_many(self, provider: str, values: dict[str, Any]) -> None:
        """Set these keys' values in one transaction (sorted: two daemons writing the same keys cannot deadlock)."""
        if not values:
            return
        updated_at = now_ms()
        with self.engine.begin() as conn:
            for key in sorted(values):
                upsert(conn, provider_state, {"provider": provider, "key": key},
                       {"value": json.dumps(values[key]), "updated_at": updated_at})

    def take_due(self, provider: str, keys: list[str], now_ms: int, every_ms: int) -> list[str]:
        """Of these keys, those not taken within `every_ms` before `now_ms` (or never), marked taken at `now_ms`
        in one statement: of daemons taking the same keys at once, each key goes to one (a turn of work per
        period across the fleet, such as asking a player's configs)."""
        if not keys:
            return []
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stamp = json.dumps(now_ms)
        rows = insert(provider_state).values(
            [{"provider": provider, "key": key, "value": stamp, "updated_at": now_ms} for key in sorted(keys)])
        taken = rows.on_conflict_do_update(
            index_elements=[provider_state.c.provider, provider_state.c.key],
            set_={"value": rows.excluded.value, "updated_at": rows.excluded.updated_at},
            where=provider_state.c.updated_at <= now_ms - every_ms).returning(provider_state.c.key)
        with self.engine.begin() as conn:
            return sorted(conn.execute(taken).scalars())

    @contextmanager
    def try_exclusive(self, provider: str, key: str) -> Iterator[bool]:
        """Whether this daemon alone holds the provider's `key` across the fleet for the block (not waited for):
        a critical section around what one daemon at a time should do with the key's value."""
        digest = hashlib.blake2b(f"{provider}\0{key}".encode(), digest_size=8, person=b"provider-state").digest()
        with self.store.try_exclusive(int.from_bytes(digest, "big", signed=True)) as held:
            yield held

    def delete(self, provider: str, keys: list[str]) -> None:
        """Forget these keys of the provider's state (an erased player's tokens, ids and counts)."""
        if keys:
            with self.engine.begin() as conn:
                conn.execute(delete(provider_state).where(provider_state.c.provider == provider,
                                                          provider_state.c.key.in_(keys)))

    def consents_after(self, after: tuple[int, str, str], limit: int = 200) -> list[tuple[int, str, str, str, str]]:
        """Players' consent as changed after a point (updated_at, device_id, user_id), in that order: what an
        edge tells its relay. Rows of (updated_at, device_id, user_id, analytics, ip_ads)."""
        order = (consent.c.updated_at, consent.c.device_id, consent.c.user_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(*order, consent.c.analytics, consent.c.ip_ads)
                                .where(tuple_(*order) > tuple_(*after)).order_by(*order).limit(limit)).all()
        return [(int(t), d, u, a, i) for t, d, u, a, i in rows]

    def active_players(self, seen_since_s: float, playing: bool = False) -> list[Player]:
        """Players whose provider sessions are kept fresh: the user of each device that said hello since a
        time (own; left out when only those `playing` are asked for), and the users a device named in
        sessions since then or still open (a dedicated server's players; own when that user is the device's
        hello user). A player whose consent keeps their data on the machine is none of them."""
        since = int(seen_since_s * 1000)
        required = self.consent_required
        with self.engine.connect() as conn:
            own = [] if playing else conn.execute(
                select(devices.c.device_id, devices.c.user_id).where(
                    devices.c.last_seen >= since, consented(devices.c.device_id, devices.c.user_id, required))).all()
            named = conn.execute(
                select(sessions.c.device_id, sessions.c.user_id, sessions.c.user_id == devices.c.user_id)
                .select_from(sessions.outerjoin(devices, devices.c.device_id == sessions.c.device_id)).distinct()
                .where(or_(sessions.c.started_at >= since, sessions.c.ended_at.is_(None)),
                       consented(sessions.c.device_id, sessions.c.user_id, required))).all()
        players = {(device_id, user_id): True for device_id, user_id in own}
        for device_id, user_id, is_own in named:
            players.setdefault((device_id, user_id), bool(is_own))
        return [Player(device_id=device_id, user_id=user_id, own=is_own)
                for (device_id, user_id), is_own in sorted(players.items())]

    def device(self, device_id: str) -> dict[str, Any] | None:
        """A device as its last hello described it."""
        with self.engine.connect() as conn:
            row = conn.execute(select(devices).where(devices.c.device_id == device_id)).mappings().first()
        return dict(row) if row else None

    def latest_device(self) -> dict[str, Any] | None:
        """The device that said hello last: whose user remote configs are asked for."""
        with self.engine.connect() as conn:
            row = conn.execute(select(devices).order_by(devices.c.last_seen.desc()).limit(1)).mappings().first()
        return dict(row) if row else None


class SavedConfigs:
    """Every config topic's latest publication, so that its version goes on counting after a restart."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def load(self) -> list[SavedConfig]:
        with self.engine.connect() as conn:
            return [SavedConfig(**r) for r in conn.execute(select(configs)).mappings().all()]

    def delete(self, topics: list[str]) -> None:
        """Topics no one may read any more (an erased player's)."""
        if topics:
            with self.engine.begin() as conn:
                conn.execute(delete(configs).where(configs.c.topic.in_(topics)))

    def save(self, config: SavedConfig) -> None:
        with self.engine.begin() as conn:
            upsert(conn, configs, {"topic": config.topic}, {"version": config.version, "source": config.source,
                                                             "payload": config.payload,
                                                             "updated_at": config.updated_at})
