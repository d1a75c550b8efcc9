"""The GameAnalytics provider: init and clock offset, signed gzipped event batches, remote configs.

One request per user (with the user's IP in X-Forwarded-For when a dedicated server gave it), bodies kept
under 1 MB and split on 413, any 2xx taken as success, a 400's listed events (found by their `event_uuid`)
dead-lettered while the rest count as delivered (the collector stored them), 401 answered by a fresh init,
`enabled: false` and wrong keys pause sending while the store keeps everything.

Per player it counts purchases (`transaction_num`) and progression attempts, kept in the store. On SQLite (one
daemon) memory is their authority; on a fleet's shared store a batch's players' counts and remote configs are
read from the store (one query) as the batch is built and written (one transaction) before it is sent: the
daemon that claims the player's next events goes on counting from there.
"""

from __future__ import annotations

from typing import Any

import httpx

from ...store import Erasure, StoredEvent
from ...protocol import SESSION_START
from ..base import Built, Call, Erased, Outcome, Paused, Provider, ProviderContext
from ..http import json_object, json_or_none, json_text, request_id
from . import events as ga_events
from .remote_configs import RemoteConfigs
from .settings import GameAnalyticsSettings
from .signing import MAX_BODY_BYTES, Signature, encode_body, gzipped_json

REINIT_EVERY_S = 300.0
MAX_LOGGED_ENTRIES = 5  # of a 400's entries that match no event sent, logged one by one
MAX_REMEMBERED_COMPLETES = 64  # per player: the attempt numbers Complete events were sent with, for resends
Items = list[tuple[int, dict[str, Any]]]  # (event pk, the collector's event)


class GameAnalytics(Provider):
    kind = "gameanalytics"
    Settings = GameAnalyticsSettings
    categories = ga_events.CATEGORIES
    batch_size = 500

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        settings: GameAnalyticsSettings = ctx.settings
        self.endpoint = settings.endpoint.rstrip("/")
        self.game_key = settings.game_key
        self.signature = Signature(settings.secret_key)
        self.lists = ga_events.Lists.of(settings)
        self.defaults = ga_events.host_defaults()
        self.offset_s = 0
        self.enabled: bool | None = None  # None until the first init answered
        self.paused: str | None = None
        self.stale = False  # the events route answered 401: init again before the next batch
        self.last_init = 0.0
        self.auth_failures = 0
        self.transactions: dict[str, int] = {}
        self._transaction_of: dict[int, int] = {}
        self._transactions_dirty: set[str] = set()
        self._progress_of: dict[str, dict[str, Any]] = {}  # per player: see _count_attempt
        self._progress_dirty: set[str] = set()
        self._sdk_errors: dict[tuple[str, str], int] = {}  # (session, area) -> sdk_error events sent
        self.sdk_errors_sent = 0
        self.remote = RemoteConfigs(ctx, self.post, settings, self.defaults, self.server_now, self.set_server_ts) \
            if settings.remote_configs else None

    def server_now(self) -> int:
        """Now by the collector's clock (learnt at init), in seconds."""
        return int(self.ctx.clock.time()) + self.offset_s

    def set_server_ts(self, server_ts: int) -> None:
        """The collector's clock as either init answered it: the offset added to every event's client_ts."""
        self.offset_s = server_ts - int(self.ctx.clock.time())

    # --- init ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.init()
        if self.remote:
            await self.remote.refresh()

    async def init(self) -> bool:
        """POST /v2/<game_key>/init: enabled flag and server time; returns whether sending may go on."""
        self.last_init = self.ctx.clock.monotonic()
        self.stale = False
        device = await self.ctx.store.latest_device() or {}
        body = encode_body({"platform": device.get("platform") or self.defaults["platform"],
                            "os_version": device.get("os_version") or self.defaults["os_version"],
                            "sdk_version": ga_events.SDK_VERSION})
        answer = await self.post(f"/v2/{self.game_key}/init", body)
        if answer.status_code == 401:
            self.auth_failures += 1
            self.paused = "init refused with 401: wrong game key or secret key; events are kept"
            self.ctx.log.error("%s: %s", self.name, self.paused)
            return False
        if answer.status_code != 200:
            self.ctx.log.warning("%s: init answered %d", self.name, answer.status_code)
            return self.paused is None
        data = json_object(answer)
        if type(data.get("server_ts")) is int and data["server_ts"] > 0:
            self.set_server_ts(data["server_ts"])
        self.enabled = data.get("enabled", True) is not False
        self.paused = None if self.enabled else "GameAnalytics init answered enabled: false; events are kept"
        if self.paused:
            self.ctx.log.warning("%s: %s", self.name, self.paused)
        return self.paused is None

    async def tick(self) -> None:
        if self.paused and self.ctx.clock.monotonic() - self.last_init > REINIT_EVERY_S:
            await self.init()
        if self.remote:
            await self.remote.tick()

    async def post(self, path: str, body: bytes, params: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        """A signed POST of an `encode_body` body, for init and remote configs."""
        return await self.ctx.send(gzipped_json("POST", self.endpoint + path, body, headers, params), self.signature)

    # --- events -------------------------------------------------------------------------------------

    def check(self, category: str, fields: dict[str, Any]) -> str | None:
        event = ga_events.category_fields(category, fields)
        if category == "business":
            event.setdefault("transaction_num", 0)  # counted by the provider when the engine leaves it out
        if category == "progression":
            event.setdefault("attempt_num", 1)  # counted by the provider on Complete, as the SDKs count it
        return ga_events.check_category(event) or ga_events.check_lists(event, self.lists)

    def check_user(self, user_id: str) -> str | None:
        if len(user_id) > ga_events.MAX_USER_ID:
            return f"user_id: at most {ga_events.MAX_USER_ID} characters (the SDKs refuse longer ones)"
        return None

    def claimed(self, events: list[StoredEvent]) -> None:
        """A player whose session starts is asked for their remote configs now, so that the session's events,
        built up to `interval` later, carry the player's A/B ids."""
        if self.remote:
            for ev in events:
                if ev.category == SESSION_START:
                    self.remote.starting(ev)

    async def ready(self, batch: list[StoredEvent]) -> None:
        """The batch's players' remote configs asks answered, so its events carry their A/B ids."""
        if self.remote:
            await self.remote.answered({ev.user_id for ev in batch})

    async def _annotations(self, user_id: str) -> dict[str, Any]:
        """The player's own A/B ids and live configs."""
        return self.remote.annotations(await self.remote.of(user_id)) if self.remote else {}

    async def _collector_event(self, ev: StoredEvent, annotations: dict[str, Any]) -> dict[str, Any]:
        dropped: list[str] = []
        body = ga_events.collector_event(ev, self.offset_s, annotations, dropped)
        if dropped:
            self.ctx.log.info("%s: event %s: custom fields left out as the SDKs leave them out (keys of word "
                              "characters up to 64, values a number, boolean or 1 to 256 characters, at most "
                              "%d): %s", self.name, ev.uid, ga_events.MAX_CUSTOM_FIELDS, ", ".join(dropped[:10]))
        if body["category"] == "business" and "transaction_num" not in body:
            body["transaction_num"] = await self._transaction_num(ev)
        elif body["category"] == "progression":
            await self._count_attempt(ev, body)
        return body

    async def _count_attempt(self, ev: StoredEvent, body: dict[str, Any]) -> None:
        """Attempts per player and progression, as the SDKs count them (GAEvents::addProgressionEvent in
        gameanalytics-sdk-cpp, Events.lua in GA-SDK-ROBLOX, per player): every Fail and Complete is a try, a
        Complete carries `attempt_num` (the tries so far, this one included) and starts the count again; a
        Fail is sent without it. The engine's own `attempt_num` wins where it gave one.

        Kept in the store per player, with the last event counted: an event rebuilt for a resend (a retry, a
        restart) is not counted again, and a Complete carries the number it had the first time."""
        status, _, progression = str(body.get("event_id", "")).partition(":")
        if status not in ("Fail", "Complete") or ga_events.check({"attempt_num": 1, **body}, self.lists):
            return  # a Start, or an event refused for another rule: the SDKs count neither
        state = await self._progress(ev.user_id)
        completes: dict[str, int] = state["completes"]
        if ev.pk <= state["upto"]:  # counted before: a resend
            if status == "Complete" and "attempt_num" not in body:
                body["attempt_num"] = completes.get(str(ev.pk), state["tries"].get(progression, 0) + 1)
            return
        state["upto"] = ev.pk
        tries = state["tries"].get(progression, 0) + 1
        if status == "Fail":
            state["tries"][progression] = tries
        else:
            given = body.get("attempt_num")
            body.setdefault("attempt_num", tries)
            completes[str(ev.pk)] = given if type(given) is int else tries
            for old in sorted(completes, key=int)[:-MAX_REMEMBERED_COMPLETES]:
                del completes[old]
            state["tries"].pop(progression, None)
        self._progress_dirty.add(ev.user_id)

    async def _progress(self, user_id: str) -> dict[str, Any]:
        if user_id not in self._progress_of:
            if len(self._progress_of) > 10_000:
                await self._save_progress()
                self._progress_of.clear()
            self._progress_of[user_id] = _progress(await self.ctx.store.get(f"progression:{user_id}"))
        return self._progress_of[user_id]

    async def _save_progress(self) -> None:
        """The counted attempts and purchases, written in one transaction before the events that carry them are
        sent (so before their batch is finished, and the player's next events are claimed by any daemon)."""
        counts: dict[str, Any] = {f"progression:{u}": self._progress_of[u] for u in self._progress_dirty}
        counts.update({f"transactions:{user_id}": self.transactions[user_id] for user_id in self._transactions_dirty})
        if counts:
            await self.ctx.store.set_many(counts)
        self._progress_dirty.clear()
        self._transactions_dirty.clear()

    async def _read_players(self, users: set[str]) -> None:
        """On a shared store, the batch's players' counts and remote configs as the store has them, in one
        query: another daemon may have sent their last events (a player's events are claimed by one daemon at a
        time, in order, but may move from one batch to the next)."""
        saved = await self.ctx.store.get_many([key for user in sorted(users) for key in self.player_keys(user)])
        if len(self.transactions) + len(self._progress_of) > 10_000:  # memory is no authority here: it is let go
            self.transactions = {u: n for u, n in self.transactions.items() if u in self._transactions_dirty}
            self._progress_of = {u: p for u, p in self._progress_of.items() if u in self._progress_dirty}
        for user_id in users:
            # Counts only grow, and attempts are counted up to an event: the later of memory (counts a build
            # that failed did not write) and the store (counts another daemon wrote since) goes on.
            stored = int(saved.get(f"transactions:{user_id}") or 0)
            self.transactions[user_id] = max(stored, self.transactions.get(user_id, 0))
            progress, held = _progress(saved.get(f"progression:{user_id}")), self._progress_of.get(user_id)
            self._progress_of[user_id] = held if held is not None and held["upto"] > progress["upto"] else progress
            if self.remote:
                self.remote.adopt(user_id, saved.get(f"remote_configs:{user_id}"))

    async def _transaction_num(self, ev: StoredEvent) -> int:
        """The user's running count of purchases, fixed per event so that a resend carries the same number."""
        if ev.pk in self._transaction_of:
            return self._transaction_of[ev.pk]
        user_id = ev.user_id
        if user_id not in self.transactions:
            self.transactions[user_id] = int(await self.ctx.store.get(f"transactions:{user_id}") or 0)
        self.transactions[user_id] += 1
        self._transactions_dirty.add(user_id)
        if len(self._transaction_of) > 10_000:
            self._transaction_of.clear()
        self._transaction_of[ev.pk] = self.transactions[user_id]
        return self.transactions[user_id]

    async def build(self, batch: list[StoredEvent]) -> Built:
        """One signed request per user (the user's IP in X-Forwarded-For when a dedicated server gave it),
        each body under the collector's 1 MB."""
        built = Built()
        if (self.paused or self.stale) and not await self.init():
            raise Paused(self.paused or "GameAnalytics refused our keys")
        if any(ev.category == SESSION_START for ev in batch) and \
                self.ctx.clock.monotonic() - self.last_init >= REINIT_EVERY_S:
            # The docs ask an init per new session; current SDKs ask only the remote-configs init per player
            # (the fact sheet), which `claimed` does. This init's enabled flag is the game's, not a player's.
            await self.init()
        if self.ctx.store.shared:
            await self._read_players({ev.user_id for ev in batch})
        extra: dict[str, dict[str, Any]] = {}
        players: dict[tuple[Any, ...], tuple[dict[str, Any], str | None]] = {}  # see ga_events.ANNOTATED_BY
        by_user: dict[str, Items] = {}
        ips: dict[str, str | None] = {}
        for ev in batch:
            key = ga_events.ANNOTATED_BY(ev)
            if key not in players:
                if ev.user_id not in extra:
                    extra[ev.user_id] = await self._annotations(ev.user_id)
                annotations = ga_events.player_annotations(ev, self.defaults, extra[ev.user_id])
                players[key] = annotations, ga_events.check_player(annotations)
            annotations, player_rule = players[key]
            body = await self._collector_event(ev, annotations)
            rule = ga_events.check_event(body, self.lists) or player_rule
            ips[ev.user_id] = ev.user_ip or ips.get(ev.user_id)
            if rule:
                built.settled.dead.append((ev.pk, "invalid", rule))
                report = self._sdk_error(ev, body, rule)
                if report is not None:  # sent with the player's events, under no event of the store
                    by_user.setdefault(ev.user_id, []).append((-ev.pk, report))
                continue
            by_user.setdefault(ev.user_id, []).append((ev.pk, body))
        await self._save_progress()
        for user_id, items in by_user.items():
            built.calls.extend(self._calls(user_id, items, ips.get(user_id)))
        return built

    def _sdk_error(self, ev: StoredEvent, body: dict[str, Any], rule: str) -> dict[str, Any] | None:
        """An `sdk_error` for an event refused by a rule, as the SDKs report theirs: at most 10 of a type
        (its area) per session of the player (the SDKs: 10 per type and hour of their process)."""
        report = ga_events.sdk_error(ev, body, rule)
        if report is None:
            return None
        key = (ev.session_id or ev.user_id, report["error_area"])
        if self._sdk_errors.get(key, 0) >= ga_events.MAX_SDK_ERRORS:
            return None
        if len(self._sdk_errors) > 10_000:
            self._sdk_errors.clear()
        self._sdk_errors[key] = self._sdk_errors.get(key, 0) + 1
        self.sdk_errors_sent += 1
        return report

    def _calls(self, user_id: str, items: Items, user_ip: str | None) -> list[Call]:
        """One user's events as requests, halved until each body is under the limit."""
        body = encode_body([event for _, event in items])
        if len(body) > MAX_BODY_BYTES and len(items) > 1:
            return self._halves(user_id, items, user_ip)
        headers = {"X-Forwarded-For": user_ip} if user_ip else {}
        request = gzipped_json("POST", f"{self.endpoint}/v2/{self.game_key}/events", body, headers)
        return [Call(request, key=user_id, auth=self.signature, context=(user_id, items, user_ip))]

    def _halves(self, user_id: str, items: Items, user_ip: str | None) -> list[Call]:
        half = len(items) // 2
        return self._calls(user_id, items[:half], user_ip) + self._calls(user_id, items[half:], user_ip)

    def classify(self, call: Call, answer: httpx.Response) -> Outcome:
        outcome = self._classify(call, answer)
        # Items under a negative pk are our own sdk_error reports, of no stored event: nothing to settle.
        for pk, _, reason in outcome.dead:
            if pk < 0:
                self.ctx.log.warning("%s: an sdk_error report was refused: %s", self.name, reason)
        outcome.delivered = {pk for pk in outcome.delivered if pk > 0}
        outcome.dead = [d for d in outcome.dead if d[0] > 0]
        return outcome

    def _classify(self, call: Call, answer: httpx.Response) -> Outcome:
        user_id, items, user_ip = call.context
        outcome = Outcome()
        status = answer.status_code
        if 200 <= status < 300:  # 200, 201 and 204 in the C++ SDK (GAHTTPApi.cpp): a 204 has no body to read
            outcome.delivered.update(pk for pk, _ in items)
        elif status == 400:
            self._on_rejected(items, answer, outcome)
        elif status == 413 and len(items) > 1:
            outcome.then = self._halves(user_id, items, user_ip)
        elif status == 413:
            outcome.dead.append((items[0][0], "too_large", "a single event over the collector's 1 MB limit"))
        elif status == 401:
            self.auth_failures += 1
            self.stale = True
            outcome.error = "401 from the events route: signature or keys refused; init again"
        else:
            outcome.error = f"HTTP {status} from the events route"
        return outcome

    def _on_rejected(self, items: Items, answer: httpx.Response,
                     outcome: Outcome) -> None:
        """400: the listed events are invalid, the others were stored by the collector. A listed event is
        found by its `event_uuid`, never by its echo being the very JSON sent (an echo may differ)."""
        listed = json_or_none(answer)
        if not isinstance(listed, list):
            reason = "400 with a body that is not the collector's list of invalid events"
            self.ctx.log.error("%s: %s (request %s)", self.name, reason, request_id(answer))
            outcome.dead.extend((pk, "rejected", reason) for pk, _ in items)
            return
        by_uuid = {event.get("event_uuid"): pk for pk, event in items}
        rejected: dict[int, str] = {}
        unmatched: list[Any] = []
        for entry in listed:
            echo = entry.get("event") if isinstance(entry, dict) else None
            pk = by_uuid.get(echo.get("event_uuid")) if isinstance(echo, dict) else None
            if pk is None:
                unmatched.append(entry)
                continue
            errors = entry.get("errors") or []
            rejected[pk] = "; ".join(f"{e.get('error_type')} at {e.get('path')}" for e in errors
                                     if isinstance(e, dict)) or "rejected by the collector"
        for entry in unmatched[:MAX_LOGGED_ENTRIES]:
            self.ctx.log.error("%s: a 400 lists an event that matches none sent by its event_uuid (request %s); "
                               "the events not found count as delivered: %.300s", self.name, request_id(answer),
                               json_text(entry))
        if len(unmatched) > MAX_LOGGED_ENTRIES:
            self.ctx.log.error("%s: ... and %d more such entries (request %s)", self.name,
                               len(unmatched) - MAX_LOGGED_ENTRIES, request_id(answer))
        for pk, _ in items:
            if pk in rejected:
                outcome.dead.append((pk, "rejected", rejected[pk]))
            else:
                outcome.delivered.add(pk)

    # --- erasure -----------------------------------------------------------------------------------

    def player_keys(self, user_id: str) -> list[str]:
        return [f"progression:{user_id}", f"transactions:{user_id}", f"remote_configs:{user_id}",
                f"remote_configs_asked:{user_id}"]

    async def erase(self, erasure: Erasure) -> Erased:
        """GameAnalytics has no public erasure API: a manual request naming the player as the collector knows
        them (its `user_id`), after their counts and remote configs are dropped here."""
        user_id = erasure.user_id
        self.transactions.pop(user_id, None)
        self._transactions_dirty.discard(user_id)
        self._progress_of.pop(user_id, None)
        self._progress_dirty.discard(user_id)
        if self.remote:
            self.remote.forget(user_id)
        return Erased("manual", {"user_id": user_id, "device_id": erasure.device_id},
                      f"GameAnalytics has no public deletion API: ask GameAnalytics support to erase user_id "
                      f"{user_id!r} of game {self.game_key}")

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"clock_offset_s": self.offset_s, "auth_failures": self.auth_failures,
                                   "sdk_errors_sent": self.sdk_errors_sent}
        if self.paused:
            figures["paused"] = self.paused
        if self.remote:
            figures.update(self.remote.status())
        return figures


def _progress(saved: Any) -> dict[str, Any]:
    """A player's attempt counts as kept in the store (see `_count_attempt`), or none yet."""
    return saved if isinstance(saved, dict) else {"upto": 0, "tries": {}, "completes": {}}
