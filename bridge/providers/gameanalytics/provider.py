"""The GameAnalytics provider: init and clock offset, signed gzipped event batches, remote configs.

One request per user (with the user's IP in X-Forwarded-For when a dedicated server gave it), bodies kept
under 1 MB and split on 413, a 400's listed events dead-lettered while the rest count as delivered (the
collector stored them), 401 answered by a fresh init, `enabled: false` and wrong keys pause sending while
the store keeps everything.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from ...store import StoredEvent
from ...protocol import SESSION_START
from ..base import Outcome, Provider, ProviderContext
from ..http import TRANSIENT, json_or_none, jsonable, request_id
from . import events as ga_events
from .remote_configs import RemoteConfigs
from .signing import MAX_BODY_BYTES, encode_body, headers

REINIT_EVERY_S = 300.0


class GameAnalytics(Provider):
    kind = "gameanalytics"
    categories = ga_events.CATEGORIES
    batch_size = 500

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        s = ctx.settings
        self.endpoint = str(s["endpoint"]).rstrip("/")
        self.game_key = str(s["game_key"])
        self.secret_key = str(s["secret_key"])
        self.defaults = ga_events.host_defaults()
        self.offset_s = 0
        self.enabled: bool | None = None  # None until the first init answered
        self.paused: str | None = None
        self.last_init = 0.0
        self.auth_failures = 0
        self.requests = 0
        self.transactions: dict[str, int] = {}
        self._transaction_of: dict[int, int] = {}
        self.remote = RemoteConfigs(self) if s.get("remote_configs", True) else None

    # --- init ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.init()
        if self.remote:
            await self.remote.refresh()

    async def init(self) -> bool:
        """POST /v2/<game_key>/init: enabled flag and server time; returns whether sending may go on."""
        self.last_init = time.monotonic()
        device = self.ctx.store.state.latest_device() or {}
        body = encode_body({"platform": device.get("platform") or self.defaults["platform"],
                            "os_version": device.get("os_version") or self.defaults["os_version"],
                            "sdk_version": ga_events.SDK_VERSION})
        try:
            answer = await self.post(f"/v2/{self.game_key}/init", body)
        except TRANSIENT as exc:
            self.ctx.log.warning("%s: init failed: %s", self.name, type(exc).__name__)
            return self.paused is None
        if answer.status_code == 401:
            self.auth_failures += 1
            self.paused = "init refused with 401: wrong game key or secret key; events are kept"
            self.ctx.log.error("%s: %s", self.name, self.paused)
            return False
        if answer.status_code != 200:
            self.ctx.log.warning("%s: init answered %d", self.name, answer.status_code)
            return self.paused is None
        data = json_or_none(answer) or {}
        if isinstance(data.get("server_ts"), int):
            self.offset_s = data["server_ts"] - int(time.time())
        self.enabled = data.get("enabled", True) is not False
        self.paused = None if self.enabled else "GameAnalytics init answered enabled: false; events are kept"
        if self.paused:
            self.ctx.log.warning("%s: %s", self.name, self.paused)
        return self.paused is None

    async def tick(self) -> None:
        if self.paused and time.monotonic() - self.last_init > REINIT_EVERY_S:
            await self.init()
        if self.remote:
            await self.remote.tick()

    # --- events -------------------------------------------------------------------------------------

    def check(self, category: str, fields: dict[str, Any]) -> str | None:
        event = ga_events.category_fields(category, fields)
        if category == "business":
            event.setdefault("transaction_num", 0)  # counted by the provider when the engine leaves it out
        return ga_events.check_category(event)

    def _annotations(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.remote and self.remote.ab_id:
            extra["ab_id"] = self.remote.ab_id
            if self.remote.ab_variant_id:
                extra["ab_variant_id"] = self.remote.ab_variant_id
        return extra

    def _collector_event(self, ev: StoredEvent, extra: dict[str, Any]) -> dict[str, Any]:
        body = ga_events.to_collector(ev, self.offset_s, self.defaults, extra)
        if body["category"] == "business" and "transaction_num" not in body:
            body["transaction_num"] = self._transaction_num(ev)
        return body

    def _transaction_num(self, ev: StoredEvent) -> int:
        """The user's running count of purchases, fixed per event so that a resend carries the same number."""
        if ev.pk in self._transaction_of:
            return self._transaction_of[ev.pk]
        user_id = ev.user_id
        if user_id not in self.transactions:
            self.transactions[user_id] = int(self.ctx.store.state.get(self.name, f"transactions:{user_id}") or 0)
        self.transactions[user_id] += 1
        self.ctx.store.state.set(self.name, f"transactions:{user_id}", self.transactions[user_id])
        if len(self._transaction_of) > 10_000:
            self._transaction_of.clear()
        self._transaction_of[ev.pk] = self.transactions[user_id]
        return self.transactions[user_id]

    async def send(self, batch: list[StoredEvent]) -> Outcome:
        outcome = Outcome()
        if self.paused and not await self.init():
            outcome.paused = self.paused
            return outcome
        if any(ev.category == SESSION_START for ev in batch):
            await self.init()  # per new session, as the docs ask
            if self.remote:
                await self.remote.refresh()
        extra = self._annotations()
        by_user: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        ips: dict[str, str | None] = {}
        for ev in batch:
            body = self._collector_event(ev, extra)
            rule = ga_events.check(body)
            if rule:
                outcome.dead.append((ev.pk, "invalid", rule))
                continue
            by_user.setdefault(ev.user_id, []).append((ev.pk, body))
            ips[ev.user_id] = ev.user_ip or ips.get(ev.user_id)
        for user_id, items in by_user.items():
            await self._send_items(items, ips.get(user_id), outcome)
            if outcome.paused:
                break
        return outcome

    async def _send_items(self, items: list[tuple[int, dict[str, Any]]], user_ip: str | None,
                          outcome: Outcome, reauthed: bool = False) -> None:
        """POST one user's events; split when too large; classify the answer into the outcome."""
        body = encode_body([event for _, event in items])
        if len(body) > MAX_BODY_BYTES and len(items) > 1:
            half = len(items) // 2
            await self._send_items(items[:half], user_ip, outcome)
            await self._send_items(items[half:], user_ip, outcome)
            return
        extra_headers = {"X-Forwarded-For": user_ip} if user_ip else {}
        try:
            answer = await self.post(f"/v2/{self.game_key}/events", body, extra_headers)
        except TRANSIENT as exc:
            outcome.error = f"{type(exc).__name__} talking to {self.endpoint}"
            return
        status = answer.status_code
        if status == 200:
            outcome.delivered.update(pk for pk, _ in items)
        elif status == 400:
            self._on_rejected(items, answer, outcome)
        elif status == 413 and len(items) > 1:
            half = len(items) // 2
            await self._send_items(items[:half], user_ip, outcome)
            await self._send_items(items[half:], user_ip, outcome)
        elif status == 413:
            outcome.dead.append((items[0][0], "too_large", "a single event over the collector's 1 MB limit"))
        elif status == 401:
            self.auth_failures += 1
            outcome.error = "401 from the events route: signature or keys refused"
            if not reauthed and await self.init():
                await self._send_items(items, user_ip, outcome, reauthed=True)
            elif self.paused:
                outcome.paused = self.paused
        else:
            outcome.error = f"HTTP {status} from the events route"
            if status == 429:
                outcome.retry_after = _retry_after(answer)

    def _on_rejected(self, items: list[tuple[int, dict[str, Any]]], answer: httpx.Response,
                     outcome: Outcome) -> None:
        """400: the listed events are invalid, the others were stored by the collector."""
        listed = json_or_none(answer)
        if not isinstance(listed, list):
            reason = "400 with a body that is not the collector's list of invalid events"
            self.ctx.log.error("%s: %s (request %s)", self.name, reason, request_id(answer))
            outcome.dead.extend((pk, "rejected", reason) for pk, _ in items)
            return
        by_body = {_canonical(event): pk for pk, event in items}
        rejected: dict[int, str] = {}
        for entry in listed:
            if not isinstance(entry, dict):
                continue
            pk = by_body.get(_canonical(entry.get("event")))
            if pk is not None:
                errors = entry.get("errors") or []
                rejected[pk] = "; ".join(f"{e.get('error_type')} at {e.get('path')}" for e in errors
                                         if isinstance(e, dict)) or "rejected by the collector"
        for pk, _ in items:
            if pk in rejected:
                outcome.dead.append((pk, "rejected", rejected[pk]))
            else:
                outcome.delivered.add(pk)

    async def post(self, path: str, body: bytes, extra_headers: dict[str, str] | None = None,
                   params: dict[str, Any] | None = None) -> httpx.Response:
        self.requests += 1
        hdrs = headers(body, self.secret_key)
        if extra_headers:
            hdrs.update(extra_headers)
        return await self.ctx.http.post(self.endpoint + path, content=body, headers=hdrs, params=params)

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"clock_offset_s": self.offset_s, "requests": self.requests,
                                   "auth_failures": self.auth_failures}
        if self.paused:
            figures["paused"] = self.paused
        if self.remote:
            figures.update(self.remote.status())
        return figures


def _canonical(event: Any) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=jsonable)


def _retry_after(answer: httpx.Response) -> float | None:
    try:
        return float(answer.headers.get("Retry-After", ""))
    except ValueError:
        return None

