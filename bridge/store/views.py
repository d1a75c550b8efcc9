"""`StoreViews`: the store by concern, as the dispatcher and the providers (through their context) use it."""

from __future__ import annotations

from .database import Store
from .delivery import Delivery
from .housekeeping import Housekeeping
from .privacy import Ledger
from .purchases import Purchases
from .state import ProviderState


class StoreViews:
    """One view per concern, all on one `Store` (one engine): a provider reaches only what it needs by name."""

    def __init__(self, store: Store) -> None:
        self.delivery = Delivery(store)
        self.purchases = Purchases(store)
        self.state = ProviderState(store)
        self.housekeeping = Housekeeping(store)
        self.ledger = Ledger(store)
