"""The staq provider: device authorization, custom events, and purchase verification (Apple, Google Play).

Each device that talks to the daemon is authorized on its own (`uid`, `sid`, `token`, kept in the store); a
new session authorizes it again, which is how staq starts a session. Custom events go in one request per
device with `\\/Date(ms+hhmm)\\/` timestamps, and the event ids staq returns are kept against ours. A Google
Play purchase can be checked locally first against the app's public key, so a forged receipt is refused
without a network call.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..outbox import Purchase, PurchaseResult, StoredEvent
from ..protocol import SESSION_START
from .base import Outcome, Provider, ProviderContext
from .http import TRANSIENT, json_object, json_or_none, json_text, request_id

DEFAULT_ENDPOINT = "https://api.staq.io/v1"
REFUSED = (400, 404, 422)  # statuses that refuse the purchase itself (bad receipt, unknown route)
DEFAULT_SECRET_HEADER = "AppSecret"


def ms_date(ms: int, offset_minutes: int = 0) -> str:
    """staq's (Microsoft JSON) date: `/Date(<ms since epoch UTC>±hhmm)/`; the offset names the writer's zone."""
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"/Date({ms}{sign}{hours:02d}{minutes:02d})/"


def staq_json(value: Any) -> bytes:
    """JSON with every '/' written '\\/', as staq's documents show dates (equal JSON, faithful bytes)."""
    return json_text(value).replace("/", "\\/").encode()


def load_public_key(b64_der: str) -> rsa.RSAPublicKey:
    """The app's Google Play licensing key: base64 of a DER SubjectPublicKeyInfo, as the Play console shows it."""
    key = serialization.load_der_public_key(base64.b64decode(b64_der))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("google_play_public_key is not an RSA public key")
    return key


def google_play_signature_ok(key: rsa.RSAPublicKey, receipt_b64: str, signature_b64: str) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-1 over the purchase data (the receipt, base64-decoded)."""
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), base64.b64decode(receipt_b64, validate=True),
                   padding.PKCS1v15(), hashes.SHA1())
        return True
    except (InvalidSignature, binascii.Error, ValueError):
        return False


class Staq(Provider):
    kind = "staq"
    categories = frozenset({"custom"})
    batch_size = 200
    verifies_purchases = True

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        s = ctx.settings
        self.base = str(s.get("endpoint", DEFAULT_ENDPOINT)).rstrip("/") + f"/apps/{s['app_id']}"
        self.app_secret = str(s["app_secret"])
        self.secret_header = str(s.get("app_secret_header", DEFAULT_SECRET_HEADER))
        key = s.get("google_play_public_key")
        self.play_key = load_public_key(str(key)) if key else None
        self.devices: dict[str, dict[str, Any]] = {}  # device_id -> {uid, sid, token}
        self.paused: str | None = None
        self.authorizations = 0
        self.forged = 0

    def accepts(self, event: StoredEvent) -> bool:
        """Its routed categories, and session starts (a new session means a new authorization)."""
        return event.category == SESSION_START or super().accepts(event)

    # --- authorization --------------------------------------------------------------------------

    async def authorize(self, device_id: str, device: dict[str, Any], renew: bool = False) -> dict[str, Any] | None:
        """The device's {uid, sid, token}: from memory, the store, or a new authorization (renew: always)."""
        if not renew:
            known = self.devices.get(device_id) or self.ctx.outbox.state(self.name, f"device:{device_id}")
            if known:
                self.devices[device_id] = known
                return known
        info = {k: device.get(k) for k in ("platform", "os_version", "device", "manufacturer", "engine",
                                           "engine_version", "game_build") if device.get(k) is not None}
        try:
            answer = await self.ctx.http.post(f"{self.base}/auth/device", content=staq_json(
                {"deviceId": device_id, "deviceInfo": info}), headers={
                self.secret_header: self.app_secret, "Content-Type": "application/json"})
        except TRANSIENT as exc:
            self.ctx.log.warning("%s: device authorization: %s", self.name, type(exc).__name__)
            return None
        if answer.status_code in (401, 403):
            self.paused = f"device authorization refused ({answer.status_code}): check app_id and app_secret"
            self.ctx.log.error("%s: %s", self.name, self.paused)
            return None
        data = json_object(answer)
        if answer.status_code != 200 or not all(isinstance(data.get(k), str) for k in ("uid", "sid", "token")):
            self.ctx.log.error("%s: device authorization answered %d without uid/sid/token (request %s)",
                               self.name, answer.status_code, request_id(answer))
            return None
        self.paused = None
        self.authorizations += 1
        auth = {"uid": data["uid"], "sid": data["sid"], "token": data["token"]}
        self.devices[device_id] = auth
        self.ctx.outbox.set_state(self.name, f"device:{device_id}", auth)
        return auth

    # --- events ---------------------------------------------------------------------------------

    async def send(self, batch: list[StoredEvent]) -> Outcome:
        outcome = Outcome()
        by_device: dict[str, list[StoredEvent]] = {}
        for ev in batch:
            by_device.setdefault(ev.device_id, []).append(ev)
        for device_id, evs in by_device.items():
            await self._send_device(device_id, evs, outcome)
        if self.paused:
            outcome.paused = self.paused
        return outcome

    async def _send_device(self, device_id: str, evs: list[StoredEvent], outcome: Outcome) -> None:
        device = _device_of(evs[0])
        renew = any(ev.category == SESSION_START for ev in evs)
        auth = await self.authorize(device_id, device, renew=renew)
        if auth is None:
            outcome.error = self.paused or "device authorization failed"
            return
        outcome.delivered.update(ev.pk for ev in evs if ev.category == SESSION_START)
        custom = [ev for ev in evs if ev.category != SESSION_START]
        if not custom:
            return
        for attempt in range(2):
            body = {"sid": auth["sid"], "events": [_staq_event(ev) for ev in custom]}
            try:
                answer = await self.ctx.http.post(f"{self.base}/users/{auth['uid']}/events", content=staq_json(body),
                                                  headers={"Auth-Token": auth["token"],
                                                           "Content-Type": "application/json"})
            except TRANSIENT as exc:
                outcome.error = f"{type(exc).__name__} talking to staq"
                return
            if answer.status_code == 401 and attempt == 0:
                renewed = await self.authorize(device_id, device, renew=True)
                if renewed is None:
                    outcome.error = "401 from the events route and authorization failed"
                    return
                auth = renewed
                continue
            break
        if answer.status_code == 200:
            ids = json_or_none(answer)
            outcome.delivered.update(ev.pk for ev in custom)
            if isinstance(ids, list) and len(ids) == len(custom):
                self.ctx.outbox.save_refs(self.name, [(ev.pk, str(i)) for ev, i in zip(custom, ids)])
            else:
                self.ctx.log.warning("%s: events accepted but the answer holds no id list of %d (request %s)",
                                     self.name, len(custom), request_id(answer))
        elif answer.status_code in (400, 422):
            reason = f"staq refused the events ({answer.status_code}): {answer.text[:300]}"
            outcome.dead.extend((ev.pk, "rejected", reason) for ev in custom)
        else:
            outcome.error = f"HTTP {answer.status_code} from the events route"

    # --- purchases ------------------------------------------------------------------------------

    async def verify_purchase(self, purchase: Purchase) -> PurchaseResult | None:
        if purchase.store == "googleplay" and self.play_key is not None and not google_play_signature_ok(
                self.play_key, purchase.receipt, purchase.signature or ""):
            self.forged += 1
            return PurchaseResult(False, False, "forged: the Google Play signature does not match the app's "
                                                "public key (checked locally)")
        auth = await self.authorize(purchase.device_id, purchase.device)
        if auth is None:
            return None
        for attempt in range(2):
            body: dict[str, Any] = {"sid": auth["sid"], "receipt": purchase.receipt, "priceUsd": purchase.price_usd,
                                    "status": purchase.status, "comment": purchase.comment,
                                    "metadata": purchase.metadata}
            if purchase.store == "googleplay":
                body["signature"] = purchase.signature
            try:
                answer = await self.ctx.http.post(f"{self.base}/users/{auth['uid']}/iap/{purchase.store}",
                                                  content=staq_json(body),
                                                  headers={"Auth-Token": auth["token"],
                                                           "Content-Type": "application/json"})
            except TRANSIENT as exc:
                self.ctx.log.warning("%s: purchase verification: %s", self.name, type(exc).__name__)
                return None
            if answer.status_code == 401 and attempt == 0:
                renewed = await self.authorize(purchase.device_id, purchase.device, renew=True)
                if renewed is None:
                    return None
                auth = renewed
                continue
            break
        data = json_object(answer)
        if answer.status_code in REFUSED:  # a receipt staq will never take: a verdict, not a retry
            return PurchaseResult(False, False, f"refused by staq ({answer.status_code}): "
                                                f"{data.get('error') or answer.text[:200]}")
        if answer.status_code != 200 or not isinstance(data.get("isValid"), bool):
            self.ctx.log.error("%s: purchase %s: answer %d without isValid (request %s); will retry", self.name,
                               purchase.purchase_id, answer.status_code, request_id(answer))
            return None
        duplicate = data.get("isDuplicate", data.get("isDuplicated", False))
        return PurchaseResult(data["isValid"], bool(duplicate), "verified by staq")

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"authorizations": self.authorizations, "forged_receipts": self.forged}
        if self.paused:
            figures["paused"] = self.paused
        return figures


def _device_of(ev: StoredEvent) -> dict[str, Any]:
    return {"platform": ev.platform, "os_version": ev.os_version, "device": ev.device,
            "manufacturer": ev.manufacturer, "engine_version": ev.engine_version, "game_build": ev.game_build}


def _staq_event(ev: StoredEvent) -> dict[str, Any]:
    fields = dict(ev.fields)
    name = fields.pop("name", ev.category)
    value = fields.pop("value", None)
    return {"timestamp": ms_date(ev.client_ts), "event": name, "value": value, "metadata": fields}


