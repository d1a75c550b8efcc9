"""Purchase verification: the lane that takes stored purchases to a verifying provider and back to the engine.

A purchase is durable before the engine hears anything. This lane verifies it (oldest first, retried with
backoff while the provider is away), records the verdict, publishes the device's recent verdicts on
`purchase/<device_id>` (so a client that was away gets them from the last-value cache when it comes back)
and tells the ingress, which answers a client still waiting on its `purchase` request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from .outbox import Outbox, PurchaseResult
from .protocol import PURCHASE_PREFIX
from .providers.base import Provider
from .retry import backoff_delay

log = logging.getLogger(__name__)

BATCH = 20
IDLE_S = 0.2
RECENT_RESULTS = 50

Notify = Callable[[str, str, PurchaseResult], None]


class PurchaseLane:
    def __init__(self, provider: Provider, outbox: Outbox, publish: Callable[..., bool], notify: Notify,
                 retry_base_s: float, retry_cap_s: float) -> None:
        self.provider = provider
        self.outbox = outbox
        self.publish = publish
        self.notify = notify
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self.nudge = asyncio.Event()
        self.verified = 0
        self.attempt = 0

    async def run(self) -> None:
        while True:
            pending = self.outbox.pending_purchases(BATCH)
            if not pending:
                try:
                    await asyncio.wait_for(self.nudge.wait(), IDLE_S)
                except asyncio.TimeoutError:
                    pass
                self.nudge.clear()
                continue
            for purchase in pending:
                try:
                    result = await self.provider.verify_purchase(purchase)
                except Exception:  # a provider bug must not lose the purchase: it stays pending
                    log.exception("%s: verifying purchase %s failed", self.provider.name, purchase.purchase_id)
                    result = None
                if result is None:
                    await self._back_off()
                    break
                self.attempt = 0
                self.outbox.record_purchase(purchase.pk, result)
                self.verified += 1
                self.publish(PURCHASE_PREFIX + purchase.device_id,
                             self.outbox.recent_results(purchase.device_id, RECENT_RESULTS), self.provider.kind,
                             None)
                self.notify(purchase.device_id, purchase.purchase_id, result)

    async def _back_off(self) -> None:
        self.attempt += 1
        await asyncio.sleep(backoff_delay(self.attempt, self.retry_base_s, self.retry_cap_s))
