"""The edge's side of a relay: its stored events, sessions included, sent on as protocol v1 requests.

The edge holds no provider secret: it acks the engine after its own commit, as any daemon does, and moves its
cursor past an event only once the relay acknowledged it (after the relay's own commit), so an event is
forgotten at the edge only when the relay holds it. A resend after a lost reply is safe: the relay dedupes
events by (device, ts, id), and sessions by the `session_id` the edge sends with them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack
import zmq
import zmq.asyncio

from ...keys import EDGE, BadKey, KeyPair, key_pair, public_key
from ...protocol import CATEGORIES, MAX_BATCH_EVENTS, PLAYER_DEVICE_MAX_CHARS, PROTOCOL_VERSION, SESSION_END, \
    PURCHASE_PREFIX, SESSION_START, V1_MIRRORS, Code, topic_device
from ... import __version__
from ...store import Erasure, Purchase, PurchaseResult, StoredEvent
from ..base import Built, Call, Erased, Outcome, Provider, TryLater
from ..settings import LaneSettings, SettingsError
from .transport import EXTENSION, PIPELINED, Exchange, RelayTransport

MAX_MESSAGE_BYTES = 192 * 1024  # under the relay's max_message_bytes (256 KiB), with room for the envelope
HELLO_FIELDS = ("engine", "engine_version", "binding", "binding_version", "game_build", "user_id", "platform",
                "os_version", "device", "manufacturer")


@dataclass(frozen=True, kw_only=True)
class RelayProviderSettings(LaneSettings):
    endpoint: str  # the relay's CURVE ingress, e.g. tcp://relay.example.com:5560
    relay_key: str  # the relay's public key (Z85), as `engine-bridge keys` prints it on the relay
    publish: str | None = None  # the relay's CURVE configs socket: its configs for our devices
    purchases: bool = True  # purchases are verified at the relay (its staq); false: `purchase` is not_configured
    interval: float = 1.0  # a relay is ours: send soon
    client_key_name: str = field(default=EDGE)  # the key pair's file name in the data directory

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.endpoint.startswith("tcp://"):
            raise SettingsError("endpoint: a tcp:// endpoint of the relay's CURVE ingress")
        if self.publish is not None and not self.publish.startswith("tcp://"):
            raise SettingsError("publish: a tcp:// endpoint of the relay's CURVE configs socket")
        try:
            public_key(self.relay_key, "relay_key")
        except BadKey as exc:
            raise SettingsError(str(exc)) from None


class Relay(Provider):
    kind = "relay"
    Settings = RelayProviderSettings
    categories = frozenset({*CATEGORIES, SESSION_START, SESSION_END})
    batch_size = PIPELINED * MAX_BATCH_EVENTS  # protocol batches sent side by side on the device's connection

    @classmethod
    def transport(cls, settings: Any, data_dir: Path) -> httpx.AsyncBaseTransport:
        """Requests go over CURVE, with the edge's own key pair (made on first start in its data directory)."""
        return RelayTransport(settings.endpoint, settings.relay_key.encode("ascii"),
                              key_pair(data_dir, settings.client_key_name), settings.timeout)

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.verifies_purchases = ctx.settings.purchases
        self.following: asyncio.Task[None] | None = None
        self.republished = 0

    async def tick(self) -> None:
        """Follow the relay's configs socket (from the first tick on, again if the task ended); tell the relay
        every consent changed here since the last tick."""
        settings: RelayProviderSettings = self.ctx.settings
        if settings.publish is not None and (self.following is None or self.following.done()):
            self.following = asyncio.get_running_loop().create_task(self._follow(settings.publish))
        await self._send_consents()

    async def _send_consents(self) -> None:
        """Each player's consent, as it changed here, sent on to the relay in the order it changed (the point
        reached kept in the store: a restart sends on from there, a resend is harmless). No answer: the rest
        waits for the next tick."""
        saved = await self.ctx.store.get("consent_sent")
        after = (int(saved[0]), str(saved[1]), str(saved[2])) if isinstance(saved, list) else (0, "", "")
        for at, device_id, user_id, analytics, ip_ads in await self.ctx.store.consents_after(after):
            states = {k: v for k, v in (("analytics", analytics), ("ip_ads", ip_ads)) if v != "unknown"}
            if states:
                reply = await self._as_tool(device_id, {"type": "consent", "device_id": device_id,
                                                        "user_id": user_id, **states})
                if reply.get("type") != "consent":
                    self.ctx.log.warning("%s: the relay took no consent: %s", self.name, reply.get("message"))
                    return
            await self.ctx.store.set("consent_sent", [at, device_id, user_id])

    async def _as_tool(self, device_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """One request about a player of `device_id`, on a connection of its own as a tool of that device (this
        edge's key owns it at the relay); its reply, or TryLater when none came."""
        hello = {"protocol": PROTOCOL_VERSION, "device_id": device_id, "role": "tool", "engine": "edge",
                 "binding": "engine-bridge-edge", "binding_version": __version__, "game_build": "-"}
        exchange = Exchange(f"{device_id}\0player", hello, [message])
        answer = await self.ctx.send(httpx.Request("POST", self.ctx.settings.endpoint,
                                                   extensions={EXTENSION: exchange}))
        replies = msgpack.unpackb(answer.content, raw=False) if answer.status_code == 200 else []
        if not replies:
            raise TryLater(f"the relay did not answer: {answer.headers.get('X-Stopped', answer.status_code)}")
        reply: dict[str, Any] = replies[0]
        return reply

    async def _follow(self, endpoint: str) -> None:
        """Everything the relay publishes for this edge's devices (it sends only those, behind our key),
        published again here as it came, so that a binding reads what it would read beside a relay."""
        assert self.ctx.data_dir is not None, "the dispatcher lends a data directory"
        keys: KeyPair = key_pair(self.ctx.data_dir, self.ctx.settings.client_key_name)
        zctx = zmq.asyncio.Context()
        sock = zctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.ctx.settings.relay_key.encode("ascii"))
        sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
        sock.setsockopt(zmq.SUBSCRIBE, keys.public)
        sock.connect(endpoint)
        try:
            while True:
                topic, payload = await sock.recv_multipart()
                publication = msgpack.unpackb(payload, raw=False)
                await asyncio.to_thread(self._republish, topic[len(keys.public):].decode(), publication)
        finally:
            sock.close(0)
            zctx.term()

    def _republish(self, topic: str, publication: dict[str, Any]) -> None:
        if topic.startswith(PURCHASE_PREFIX):  # this edge's own purchase lane publishes its verdicts
            return
        values, source, meta = publication["values"], publication["source"], publication.get("meta") or {}
        self.ctx.publish(topic, values, source, meta)
        device = topic_device(topic)
        for mirror in V1_MIRRORS:  # the device's own player's, as v1 clients read it
            if device is not None and topic == f"{mirror}/{device}":
                self.ctx.publish(mirror, values, source, meta)
        self.republished += 1

    def status(self) -> dict[str, Any]:
        return {"republished": self.republished} if self.ctx.settings.publish is not None else {}

    async def build(self, batch: list[StoredEvent]) -> Built:
        """Per device one call: its session boundaries and events as requests, in the order they were stored."""
        built = Built()
        by_device: dict[str, list[StoredEvent]] = {}
        for ev in batch:
            by_device.setdefault(ev.device_id, []).append(ev)
        for device_id, evs in by_device.items():
            hello = await self._hello(device_id)
            if hello is None:  # no hello was ever stored for it: a relay needs one
                built.settled.dead.extend((ev.pk, "no_device", "the device never said hello") for ev in evs)
                continue
            exchange = Exchange(device_id, hello)
            parts = _messages(evs, exchange.messages)
            request = httpx.Request("POST", self.ctx.settings.endpoint, extensions={EXTENSION: exchange})
            built.calls.append(Call(request, key=device_id, context=parts))
        return built

    async def _hello(self, device_id: str) -> dict[str, Any] | None:
        """The hello the device said here, to say at the relay as its own."""
        row = await self.ctx.store.device(device_id)
        if row is None:
            return None
        return {"protocol": PROTOCOL_VERSION, "device_id": device_id,
                **{name: row[name] for name in HELLO_FIELDS if row.get(name) is not None}}

    async def verify_purchase(self, purchase: Purchase) -> PurchaseResult | None:
        """The relay's verdict (its staq holds the secret); None while it has none yet (asked again later:
        the relay keeps the purchase, so asking again is answered with its verdict once it has one)."""
        hello = await self._hello(purchase.device_id)
        if hello is None:
            raise TryLater(f"purchase {purchase.purchase_id}: its device never said hello")
        message: dict[str, Any] = {"type": "purchase", "id": purchase.purchase_id, "store": purchase.store,
                                   "receipt": purchase.receipt, "price_usd": purchase.price_usd,
                                   "status": purchase.status, "comment": purchase.comment,
                                   "metadata": purchase.metadata, "user_id": purchase.user_id}
        if purchase.signature is not None:
            message["signature"] = purchase.signature
        exchange = Exchange(purchase.device_id, hello, [message])
        answer = await self.ctx.send(httpx.Request("POST", self.ctx.settings.endpoint,
                                                   extensions={EXTENSION: exchange}))
        replies = msgpack.unpackb(answer.content, raw=False) if answer.status_code == 200 else []
        if not replies:
            raise TryLater(answer.headers.get("X-Stopped", f"the relay answered {answer.status_code}"))
        reply = replies[0]
        if reply.get("type") == "purchase":
            if reply.get("state") != "verified":
                return None
            return PurchaseResult(bool(reply["is_valid"]), bool(reply["is_duplicate"]), f"relay: {reply['reason']}")
        if reply.get("code") == Code.NOT_CONFIGURED:
            raise TryLater("the relay verifies no purchases (no staq there): kept until it does")
        return PurchaseResult(False, False, f"refused by the relay: {reply.get('code')}: {reply.get('message')}")

    async def erase(self, erasure: Erasure) -> Erased:
        """The relay is this edge's deletion API: a `forget` of the player there (on a connection of its own,
        as a tool of the device, which this edge's key owns), whose reply names the relay's providers, each
        with its own entry in the relay's ledger. No answer: TryLater, and the entry is asked again."""
        reply = await self._as_tool(erasure.device_id, {"type": "forget", "device_id": erasure.device_id,
                                                        "user_id": erasure.user_id})
        if reply.get("type") != "forgotten":
            raise TryLater(f"the relay did not forget the player: {reply.get('message')}")
        providers = reply.get("providers") or []
        return Erased("requested", {"device_id": erasure.device_id, "user_id": erasure.user_id,
                                    "relay_providers": providers},
                      f"forgotten at the relay, whose erasure ledger has an entry for {', '.join(providers) or 'none'}")

    def classify(self, call: Call, answer: httpx.Response) -> Outcome:
        """Each message's reply: acked events and sessions delivered, refused events dead; after a stop the
        rest is retried."""
        parts: list[list[StoredEvent]] = call.context
        replies = msgpack.unpackb(answer.content, raw=False)
        outcome = Outcome()
        for evs, reply in zip(parts, replies, strict=False):
            _settle(evs, reply, outcome)
        if len(replies) < len(parts):
            outcome.error = answer.headers.get("X-Stopped", "the relay stopped answering")
            if "Retry-After" in answer.headers:
                outcome.retry_after = float(answer.headers["Retry-After"])
            if "refused the hello" in outcome.error:  # (wrong_game, forbidden: another key owns the device)
                outcome.paused = outcome.error
        return outcome


def _messages(evs: list[StoredEvent], out: list[dict[str, Any]]) -> list[list[StoredEvent]]:
    """`evs` as protocol messages appended to `out`; returns the events each message carries, in step."""
    parts: list[list[StoredEvent]] = []
    batch: list[StoredEvent] = []
    wire: list[dict[str, Any]] = []
    size = 0

    def close_batch() -> None:
        nonlocal batch, wire, size
        if batch:
            out.append({"type": "events", "events": wire})
            parts.append(batch)
            batch, wire, size = [], [], 0

    for ev in evs:
        if ev.category in (SESSION_START, SESSION_END):
            close_batch()
            out.append(_session_message(ev))
            parts.append([ev])
            continue
        event = {"id": ev.uid, "ts": ev.client_ts, "category": ev.category, "user_id": ev.user_id,
                 "fields": ev.fields}
        length = len(msgpack.packb(event, use_bin_type=True))
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + length > MAX_MESSAGE_BYTES):
            close_batch()
        batch.append(ev)
        wire.append(event)
        size += length
    close_batch()
    return parts


def _session_message(ev: StoredEvent) -> dict[str, Any]:
    """A stored session boundary as the request that makes it at the relay, naming the session."""
    message: dict[str, Any] = {"type": ev.category, "user_id": ev.user_id, "session_id": ev.session_id,
                               "ts": ev.client_ts}
    if ev.category == SESSION_START:
        if ev.user_ip:
            message["user_ip"] = ev.user_ip
        for name in PLAYER_DEVICE_MAX_CHARS:
            value = getattr(ev, name)
            if value is not None:
                message[name] = value
    return message


def _settle(evs: list[StoredEvent], reply: dict[str, Any], outcome: Outcome) -> None:
    kind = reply.get("type")
    if kind == "ack":
        refused = {entry["index"]: entry for entry in reply.get("rejected") or []}
        for index, ev in enumerate(evs):
            if index in refused:
                outcome.dead.append((ev.pk, str(refused[index]["code"]), f"the relay refused it: "
                                     f"{refused[index]['message']}"))
            else:
                outcome.delivered.add(ev.pk)
    elif kind == "session" or (kind == "error" and reply.get("code") == Code.NO_SESSION):
        outcome.delivered.update(ev.pk for ev in evs)  # no_session: nothing was open there to end
    else:
        why = f"the relay refused it: {reply.get('code')}: {reply.get('message')}"
        outcome.dead.extend((ev.pk, str(reply.get("code", "relay_error")), why) for ev in evs)
