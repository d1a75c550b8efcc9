"""What must survive a restart beside the events: the publisher's config topics."""

from __future__ import annotations

from sqlalchemy import select

from .database import Store, upsert
from .rows import SavedConfig
from .schema import configs


class SavedConfigs:
    """Every config topic's latest publication, so that its version goes on counting after a restart."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def load(self) -> list[SavedConfig]:
        with self.engine.connect() as conn:
            return [SavedConfig(**r) for r in conn.execute(select(configs)).mappings().all()]

    def save(self, config: SavedConfig) -> None:
        with self.engine.begin() as conn:
            upsert(conn, configs, {"topic": config.topic}, {"version": config.version, "source": config.source,
                                                             "payload": config.payload,
                                                             "updated_at": config.updated_at})
