"""The durable store, by concern: schema and migrations, the `Store` itself, and a small view per concern.

Every view is built on one `Store` (one engine): the ingress writes through `Ingest`, the dispatcher and the
providers use `StoreViews` (delivery, purchases, provider state, housekeeping), the publisher keeps its
topics through `SavedConfigs`. Other modules import what they use from here, not from the parts.
"""

from .database import HOUSEKEEPING_LOCK, Store, StoreCorrupt, StoreError, error_text, now_ms
from .delivery import Claims, Delivery
from .ingest import Burst, EventKey, Ingest
from .privacy import Ledger
from .purchases import Purchases
from .rows import Erasure, OpenSession, Player, Purchase, PurchaseResult, SavedConfig, StoredEvent
from .state import SavedConfigs
from .views import StoreViews

__all__ = [
    "HOUSEKEEPING_LOCK", "Burst", "Claims", "Delivery", "Erasure", "EventKey", "Ingest", "Ledger", "OpenSession",
    "Player", "Purchase", "PurchaseResult", "Purchases",
    "SavedConfig", "SavedConfigs", "Store", "StoreCorrupt", "StoreError", "StoreViews", "StoredEvent",
    "error_text", "now_ms",
]
