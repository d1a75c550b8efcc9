"""`/health`: ok, or degraded with the reasons an operator acts on.

Degraded means the daemon still takes and keeps events, but something needs a look: a provider paused (its
keys refused, disabled) or failing (its latest exchange got no answer or a "later" status, and is retried),
the store failing (it cannot be read now, or a commit failed lately: those events were answered
`unavailable`), the disk of the data directory nearly full. Answered with 503 then, so that a plain HTTP check
alerts; the body says why.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..stats import Counters
from ..store import error_text

COMMIT_FAILED = "store commit failed"  # how the ingress words a failed commit in `last_errors`
COMMIT_FAILED_WITHIN_S = 30.0
DISK_LOW_BYTES = 256 * 2**20
DISK_LOW_FRACTION = 0.01


@dataclass
class Health:
    reasons: list[str] = field(default_factory=list)
    providers: dict[str, Any] = field(default_factory=dict)  # each provider's figures, as `stats` has them

    @property
    def status(self) -> str:
        return "degraded" if self.reasons else "ok"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": self.reasons}


def check(providers: Callable[[], dict[str, Any]], store_error: str | None, failing: Mapping[str, str],
          counters: Counters, data_dir: Path) -> Health:
    """Cheap enough to be asked every second: it counts no rows of the store (the providers' figures read each
    one's cursor and dead letters); `store_error` is the feed's latest failed read of the store, if any."""
    health = Health()
    try:
        health.providers = providers()
    except SQLAlchemyError as exc:
        store_error = error_text(exc)
    if store_error:
        health.reasons.append(f"store: cannot be read ({store_error})")
    now_ms = time.time() * 1000
    for err in counters.last_errors():
        if err["message"].startswith(COMMIT_FAILED) and now_ms - err["at"] < COMMIT_FAILED_WITHIN_S * 1000:
            health.reasons.append(f"store: a commit failed {(now_ms - err['at']) / 1000:.0f} s ago "
                                  f"({err['message']})")
            break
    for name, figures in sorted(health.providers.items()):
        if figures.get("paused"):
            health.reasons.append(f"provider {name}: paused ({figures['paused']})")
        elif name in failing:
            health.reasons.append(f"provider {name}: failing, retried ({failing[name]})")
    health.reasons.extend(disk_reasons(data_dir))
    return health


def disk_reasons(data_dir: Path) -> list[str]:
    """The data directory's disk nearly full: under 256 MiB or 1% free."""
    try:
        usage = shutil.disk_usage(data_dir)
    except OSError as exc:
        return [f"disk: the data directory {data_dir} cannot be read ({exc.strerror})"]
    if usage.free < DISK_LOW_BYTES or usage.free < DISK_LOW_FRACTION * usage.total:
        return [f"disk: {usage.free / 2**20:.0f} MiB free of {usage.total / 2**20:,.0f} MiB where the store lives "
                f"({data_dir})"]
    return []
