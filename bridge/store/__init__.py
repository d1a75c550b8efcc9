"""The durable store, by concern: schema and migrations, the `Store` itself, ingest, saved state.

Every concern is a small view built on one `Store` (one engine): the ingress writes through `Ingest`, the
publisher keeps its topics through `SavedConfigs`. Other modules import from here, not from the parts.
"""

from .database import Store, StoreCorrupt, StoreError, error_text, now_ms
from .ingest import Burst, EventKey, Ingest
from .rows import OpenSession, SavedConfig
from .state import SavedConfigs

__all__ = [
    "Burst", "EventKey", "Ingest", "OpenSession", "SavedConfig", "SavedConfigs", "Store", "StoreCorrupt",
    "StoreError", "error_text", "now_ms",
]
