"""Purchase verification: the lane that takes stored purchases to a verifying provider and back to the engine.

A purchase is durable before the engine hears anything. This lane verifies it (oldest first, those never
refused before the rest; a purchase that gets no verdict waits on its own backoff, kept in the store, so it
never holds up another), records the verdict, publishes the device's recent verdicts on
`purchase/<device_id>` (so a client that was away gets them from the last-value cache when it comes back)
and tells the ingress, which answers a client still waiting on its `purchase` request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from .protocol import PURCHASE_PREFIX
from .providers.base import Provider, TryLater
from .providers.settings import LaneSettings
from .retry import backoff_delay
from .store import Purchase, PurchaseResult, Purchases, now_ms

log = logging.getLogger(__name__)

BATCH = 20
IDLE_S = 0.2
RECENT_RESULTS = 50

Notify = Callable[[str, str, PurchaseResult], None]


class PurchaseLane:
    def __init__(self, provider: Provider, purchases: Purchases, publish: Callable[..., bool], notify: Notify,
                 settings: LaneSettings) -> None:
        self.provider = provider
        self.purchases = purchases
        self.publish = publish
        self.notify = notify
        self.settings = settings
        self.nudge = asyncio.Event()
        self.verified = 0

    async def run(self) -> None:
        while True:
            self.nudge.clear()
            due = await asyncio.to_thread(self.purchases.due_purchases, BATCH, now_ms())
            if not due:
                await self._wait()
                continue
            for purchase in due:
                await self._verify(purchase)
                if self.nudge.is_set():
                    break  # a purchase was just stored: it goes before those retrying

    async def _wait(self) -> None:
        """Until a purchase is stored (nudge) or IDLE_S passed: backoffs end on the store's clock."""
        try:
            await asyncio.wait_for(self.nudge.wait(), IDLE_S)
        except TimeoutError:
            pass

    async def _verify(self, purchase: Purchase) -> None:
        try:
            result = await self.provider.verify_purchase(purchase)
        except TryLater as exc:  # no answer, or staq's authorization failed: on its own backoff
            log.warning("%s: purchase %s: %s", self.provider.name, purchase.purchase_id, exc)
            result = None
        except SQLAlchemyError:
            raise  # the store failed, not the provider: the dispatcher pauses this lane and resumes it
        except Exception:  # a provider bug must not lose the purchase: it stays pending
            log.exception("%s: verifying purchase %s failed", self.provider.name, purchase.purchase_id)
            result = None
        if result is None:
            failures = purchase.failures + 1
            delay = backoff_delay(failures, self.settings.retry_base, self.settings.retry_cap)
            retry_at = now_ms() + int(delay * 1000)
            await asyncio.to_thread(self.purchases.retry_purchase_at, purchase.pk, failures, retry_at)
            return
        result = await asyncio.to_thread(self.purchases.record_purchase, purchase.pk, result)
        self.verified += 1
        recent = await asyncio.to_thread(self.purchases.recent_results, purchase.device_id, RECENT_RESULTS)
        self.publish(PURCHASE_PREFIX + purchase.device_id, recent, self.provider.kind, None)
        self.notify(purchase.device_id, purchase.purchase_id, result)
        if await asyncio.to_thread(self.purchases.erase_if_forgotten, purchase.pk):  # its player was forgotten
            recent = await asyncio.to_thread(self.purchases.recent_results, purchase.device_id, RECENT_RESULTS)
            self.publish(PURCHASE_PREFIX + purchase.device_id, recent, self.provider.kind, None)
