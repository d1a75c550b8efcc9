"""GameAnalytics remote configs and A/B ids, per player.

The collector answers per user (its init takes `user_id` "to detect if the user should be enrolled"), so each
player is asked on its own: as soon as the lane reads a session_start of theirs (the answer is in before the
session's events are built), then on the refresh timer while the player plays, a few at a time beside the
lane's event requests. A 201 replaces the player's configs and A/B ids, a 200 keeps them. Each player's configs
hash, configs and ids are kept in the store, so a restarted daemon neither downloads unchanged configs again
nor forgets whose variant is whose, and each event is stamped with its own player's ids. On a fleet's shared
store a refresh asks each due player once across the fleet (the daemon that takes the player's turn in the
store), and the other daemons publish the configs it stored.

Each player's live values are published on the player's topic: `config/gameanalytics/<device_id>` for a
device's own (hello) player, `config/gameanalytics/<device_id>/<user_id>` for another player a device names
(a dedicated server's), and the own player's also on `config/gameanalytics`, what v1 clients read: a game with
one player reads its player's configs there as before.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import httpx

from ...store import Player, StoredEvent, now_ms
from ..base import ProviderContext, TryLater
from ..http import json_object, request_id
from .events import SDK_VERSION
from .settings import GameAnalyticsSettings
from .signing import encode_body


class Post(Protocol):
    """The provider's signed POST to the collector."""

    def __call__(self, path: str, body: bytes, params: dict[str, Any] | None = None) -> Awaitable[httpx.Response]: ...


TOPIC = "config/gameanalytics"
CONFIG_VSN_SUPPORTED = 3
MAX_KEPT = 10_000  # players held in memory; the others are read back from the store when they play
ACTIVE_PLAYER_S = 24 * 3600.0  # a player seen this recently (or in an open session) is kept fresh


@dataclass
class PlayerConfigs:
    """One player's configs as the collector last answered them, and the device it asks from."""

    device_id: str
    own: bool  # the device's hello player
    platform: str | None = None
    os_version: str | None = None
    build: str = ""
    configs_hash: str | None = None
    ab_id: str | None = None
    ab_variant_id: str | None = None
    configs: list[dict[str, Any]] = field(default_factory=list)

    def topics(self, user_id: str) -> tuple[str, ...]:
        if self.own:
            return f"{TOPIC}/{self.device_id}", TOPIC
        return (f"{TOPIC}/{self.device_id}/{user_id}",)


class RemoteConfigs:
    def __init__(self, ctx: ProviderContext, post: Post, settings: GameAnalyticsSettings, defaults: dict[str, str],
                 server_now: Callable[[], int], on_server_ts: Callable[[int], None]) -> None:
        self.ctx = ctx
        self.name = ctx.name
        self.post = post
        self.game_key = settings.game_key
        self.refresh_s = settings.remote_configs_refresh
        self.interval_seconds = settings.remote_configs_interval_seconds
        self.defaults = defaults
        self.server_now = server_now
        self.on_server_ts = on_server_ts
        self.players: dict[str, PlayerConfigs] = {}
        self._asked_at: dict[str, float] = {}  # per player, when last asked (the providers' clock, s)
        self._asked_ms: dict[str, int] = {}  # the same by the store's clock, against an event's received_at
        self._asking: dict[str, asyncio.Task[None]] = {}  # asks under way or waiting for a slot
        self._turns: dict[str, int] = {}  # per player, when a start_ts or end_ts next changes its live configs
        # Half the lane's requests at most, so that players starting by the thousand do not take every one.
        self._slots = asyncio.Semaphore(max(1, settings.max_in_flight // 2))
        self.last_refresh: float | None = None
        self.last_status: int | None = None
        self.asks = 0

    # --- when players are asked ---------------------------------------------------------------------

    def starting(self, ev: StoredEvent) -> None:
        """A player's session_start was read: ask that player's configs now, in a task of its own (unless
        they were asked since that session began: a refresh came first). On a shared store the ask is noted
        there, so that no other daemon's refresh asks again within the period."""
        if ev.user_id not in self._asking and self._asked_ms.get(ev.user_id, 0) < ev.received_at:
            self._schedule(ev.user_id, ev.device_id, bool(ev.own),
                           {"platform": ev.platform, "os_version": ev.os_version, "build": ev.game_build},
                           noted=not self.ctx.store.shared)

    def _schedule(self, user_id: str, device_id: str, own: bool, device: dict[str, Any],
                  noted: bool = True) -> asyncio.Task[None]:
        """The player's ask, in a task of its own; it goes once a slot is free (noted in the store first unless
        `noted` already)."""
        self._asked_ms[user_id] = now_ms()
        task = asyncio.get_running_loop().create_task(self._ask(user_id, device_id, own, device, noted))
        self._asking[user_id] = task
        task.add_done_callback(lambda _: self._asking.pop(user_id, None))
        return task

    def forget(self, user_id: str) -> None:
        """An erased player: never asked, stamped or published again (an ask under way is cancelled)."""
        task = self._asking.pop(user_id, None)
        if task is not None:
            task.cancel()
        self.players.pop(user_id, None)
        self._asked_ms.pop(user_id, None)
        self._asked_at.pop(user_id, None)
        self._turns.pop(user_id, None)

    async def answered(self, users: set[str]) -> None:
        """Once the asks started for these players are answered (or given up), so that a session's events
        carry the player's A/B ids (players starting by the thousand wait for their turn to be asked)."""
        asking = [task for user, task in list(self._asking.items()) if user in users]
        if asking:
            await asyncio.gather(*(asyncio.shield(task) for task in asking), return_exceptions=True)

    async def of(self, user_id: str) -> PlayerConfigs | None:
        """The player's configs as last answered, for stamping its events."""
        return self.players.get(user_id) or await self._load(user_id)

    async def tick(self) -> None:
        now = self.ctx.clock.monotonic()
        if self.last_refresh is None or now - self.last_refresh >= self.refresh_s:
            await self.refresh()
        now_ts = self.server_now()
        for user_id in [user for user, turn in self._turns.items() if turn <= now_ts]:
            player = await self.of(user_id)  # a config's start_ts or end_ts just passed: the live values changed
            if player is not None:
                await self._publish(user_id, player)

    async def refresh(self) -> None:
        """Ask again for every player who played lately and was not asked within `remote_configs_refresh` (a
        device that only said hello is not a player: a dedicated server is not enrolled in experiments). On a
        shared store each due player is asked by one daemon of the fleet: the others publish what it stored."""
        self.last_refresh = self.ctx.clock.monotonic()
        now = self.ctx.clock.time()
        due = [player for player in await self.ctx.store.active_players(now - ACTIVE_PLAYER_S, playing=True)
               if player.user_id not in self._asking
               and now - self._asked_at.get(player.user_id, -self.refresh_s) >= self.refresh_s]
        if self.ctx.store.shared and due:
            due = await self._taken(due, now)
        await asyncio.gather(*(self._schedule(user_id, device_id, own, {}) for device_id, user_id, own in due))

    async def _taken(self, due: list[Player], now: float) -> list[Player]:
        """The due players this daemon asks in this period (taken in the store); those another daemon took get
        the configs it last stored on this daemon's topics (its ask's answer, by the next refresh at the latest)."""
        taken = set(await self.ctx.store.take_due([_asked(p.user_id) for p in due], now, self.refresh_s))
        elsewhere = [p for p in due if _asked(p.user_id) not in taken]
        saved = await self.ctx.store.get_many([f"remote_configs:{p.user_id}" for p in elsewhere])
        for device_id, user_id, own in elsewhere:
            self._asked_at[user_id] = now
            player = self.adopt(user_id, saved.get(f"remote_configs:{user_id}"))
            if player is not None:
                player.device_id, player.own = device_id, own
                await self._publish(user_id, player)
        return [p for p in due if _asked(p.user_id) in taken]

    # --- one ask -----------------------------------------------------------------------------------

    async def _ask(self, user_id: str, device_id: str, own: bool, device: dict[str, Any], noted: bool) -> None:
        """POST /remote_configs/v1/init for one player; its configs published when the answer is new."""
        if not noted:
            await self.ctx.store.take_due([_asked(user_id)], self.ctx.clock.time(), 0.0)
        player = await self._player(user_id, device_id, own, device)  # store reads: before taking a slot
        async with self._slots:
            try:
                answer = await self._post(user_id, player)
            except TryLater as exc:  # asked again at the player's next session or the next refresh
                self.ctx.log.warning("%s: remote configs: %s", self.name, exc)
                return
        self.asks += 1
        self.last_status = answer.status_code
        data = json_object(answer) if answer.status_code in (200, 201) else {}
        server_ts = data.get("server_ts")
        if type(server_ts) is int and server_ts > 0:
            # Current SDKs ask only this init and take their clock offset from it (GAState::startNewSession
            # in gameanalytics-sdk-cpp, State.lua in GA-SDK-ROBLOX): "always returned", 200 or 201.
            self.on_server_ts(server_ts)
        if answer.status_code == 201:
            if "configs" not in data:
                self.ctx.log.error("%s: remote configs 201 without configs (request %s)", self.name,
                                   request_id(answer))
                return
            player.configs = [c for c in data.get("configs") or [] if isinstance(c, dict) and "key" in c]
            player.configs_hash = data.get("configs_hash")
            player.ab_id = data.get("ab_id")
            player.ab_variant_id = data.get("ab_variant_id")
        elif answer.status_code != 200:
            self.ctx.log.warning("%s: remote configs answered %d", self.name, answer.status_code)
            return
        await self.ctx.store.set(f"remote_configs:{user_id}", asdict(player))
        await self._publish(user_id, player)

    async def _player(self, user_id: str, device_id: str, own: bool, device: dict[str, Any]) -> PlayerConfigs:
        """The player as it is asked for now: kept configs, and the device it plays on."""
        self._asked_at[user_id] = self.ctx.clock.time()
        kept = None if self.ctx.store.shared else self.players.get(user_id)  # shared: perhaps asked elsewhere
        player = kept or await self._load(user_id) or PlayerConfigs(device_id, own)
        player.device_id, player.own = device_id, own
        if not player.build and not device.get("build"):  # a player first met on the timer: its device's
            hello = await self.ctx.store.device(device_id) or {}
            device = {"platform": hello.get("platform"), "os_version": hello.get("os_version"),
                      "build": hello.get("game_build")}
        player.platform = device.get("platform") or player.platform
        player.os_version = device.get("os_version") or player.os_version
        player.build = device.get("build") or player.build
        self._keep(user_id, player)
        return player

    def _post(self, user_id: str, player: PlayerConfigs) -> Awaitable[httpx.Response]:
        body = encode_body({"user_id": user_id, "platform": player.platform or self.defaults["platform"],
                            "os_version": player.os_version or self.defaults["os_version"],
                            "sdk_version": SDK_VERSION, "build": player.build,
                            "random_salt": secrets.randbelow(2**31)})
        params: dict[str, Any] = {"game_key": self.game_key, "interval_seconds": self.interval_seconds,
                                  "config_vsn_supported": CONFIG_VSN_SUPPORTED}
        if player.configs_hash:
            params["configs_hash"] = player.configs_hash
        return self.post("/remote_configs/v1/init", body, params=params)

    async def _load(self, user_id: str) -> PlayerConfigs | None:
        """A player's configs kept in the store (a restart, or a player not held in memory)."""
        return self.adopt(user_id, await self.ctx.store.get(f"remote_configs:{user_id}"))

    def adopt(self, user_id: str, saved: Any) -> PlayerConfigs | None:
        """A player's configs as read from the store, held from now on (on a shared store, what another daemon
        asked replaces what this one holds)."""
        if not isinstance(saved, dict):
            return None
        player = PlayerConfigs(**saved)
        self._keep(user_id, player)
        return player

    def _keep(self, user_id: str, player: PlayerConfigs) -> None:
        if user_id not in self.players and len(self.players) >= MAX_KEPT:
            self.players.pop(next(iter(self.players)))  # the longest kept; the store still has it
        self.players[user_id] = player

    # --- what a player's events and topics carry ----------------------------------------------------

    def _live(self, player: PlayerConfigs) -> list[dict[str, Any]]:
        """The player's configs in effect now, by the server's clock."""
        now = self.server_now()
        return [c for c in player.configs if (c.get("start_ts") is None or c["start_ts"] <= now)
                and (c.get("end_ts") is None or now <= c["end_ts"])]

    def annotations(self, player: PlayerConfigs | None) -> dict[str, Any]:
        """The player's A/B ids, and the configs in effect as the current SDKs tag every event with them
        (`configurations_v3`: key, id and vsn of each; GAState::buildRemoteConfigsJsons in gameanalytics-sdk-cpp)."""
        if player is None:
            return {}
        extra: dict[str, Any] = {}
        if player.ab_id:
            extra["ab_id"] = player.ab_id
            if player.ab_variant_id:
                extra["ab_variant_id"] = player.ab_variant_id
        tracking = [{k: c[k] for k in ("key", "id", "vsn") if c.get(k) is not None} for c in self._live(player)]
        if tracking:
            extra["configurations_v3"] = tracking
        return extra

    async def _publish(self, user_id: str, player: PlayerConfigs) -> None:
        """The player's live values on its topics; in a thread, as the publisher keeps each in the store. The
        next second they change (a config starts, or its end_ts passed) is noted for `tick`."""
        now = self.server_now()
        starts = [c.get("start_ts") for c in player.configs] + [_after(c.get("end_ts")) for c in player.configs]
        turns = [t for t in starts if type(t) is int and t > now]
        if turns:
            self._turns[user_id] = min(turns)
        else:
            self._turns.pop(user_id, None)
        await asyncio.to_thread(self._publish_now, user_id, player)

    def _publish_now(self, user_id: str, player: PlayerConfigs) -> None:
        values = {str(c["key"]): c.get("value") for c in self._live(player)}
        meta = {k: v for k, v in (("ab_id", player.ab_id), ("ab_variant_id", player.ab_variant_id),
                                  ("configs_hash", player.configs_hash)) if v is not None}
        for topic in player.topics(user_id):
            self.ctx.publish(topic, values, "gameanalytics", meta)

    def status(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"remote_configs_players": len(self.players), "remote_configs_asks": self.asks,
                                   "remote_configs_answer": self.last_status}
        if len(self.players) == 1:  # a game with one player: its ids, as before
            [player] = self.players.values()
            figures.update(configs_hash=player.configs_hash, ab_id=player.ab_id, ab_variant_id=player.ab_variant_id)
        return figures


def _after(end_ts: Any) -> int | None:
    """The first second a config ending at `end_ts` is no longer live (it is up to and including end_ts)."""
    return end_ts + 1 if type(end_ts) is int else None


def _asked(user_id: str) -> str:
    """The key of the store under which a fleet notes when the player's configs were last asked."""
    return f"remote_configs_asked:{user_id}"
