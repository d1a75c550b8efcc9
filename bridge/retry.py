"""Retry timing shared by the dispatcher's lanes: capped exponential backoff with jitter."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): doubling from base, capped, jittered into its upper
    half so that a fleet of daemons does not retry in step."""
    ceiling = min(cap_s, base_s * 2 ** min(attempt - 1, 30))
    return random.uniform(ceiling / 2, ceiling)
