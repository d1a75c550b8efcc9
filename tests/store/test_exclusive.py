"""Provider state a fleet agrees on: two `Store`s on one PostgreSQL database are two daemons. A key held by one
is not had by the other until it is let go, in the store (`try_exclusive`) and as providers take it
(`ProviderStore.exclusive`: waited for on the event loop, within a bound; SQLite needs only the daemon's own
lock); a key due once per period goes to one daemon (`take_due`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.providers.base import ProviderStore, TryLater
from bridge.store import Store, StoreViews
from bridge.store.state import ProviderState
from tests.postgres import PostgresServer


@pytest.fixture
def stores(pg_server: PostgresServer) -> Iterator[tuple[Store, Store]]:
    """Two daemons' stores on the server's database."""
    a, b = Store(pg_server.url), Store(pg_server.url)
    a.open()
    b.open()
    yield a, b
    a.dispose()
    b.dispose()


def test_a_key_held_by_one_daemon_is_not_had_by_another_until_let_go(stores: tuple[Store, Store]) -> None:
    a, b = (StoreViews(store).state for store in stores)
    assert a.shared and b.shared
    with a.try_exclusive("gameramp", "player:u1") as held:
        assert held
        with b.try_exclusive("gameramp", "player:u1") as also:
            assert not also
        with b.try_exclusive("gameramp", "player:u2") as other_key, \
                b.try_exclusive("staq", "player:u1") as other_provider:
            assert other_key and other_provider
    with b.try_exclusive("gameramp", "player:u1") as held:
        assert held


def test_sections_of_two_daemons_on_one_key_take_turns(stores: tuple[Store, Store]) -> None:
    """Each of two daemons runs its sections on one key side by side with the other's: never two at once."""
    a, b = (ProviderStore(StoreViews(store), "gameramp") for store in stores)
    inside: list[str] = []
    overlaps = 0

    async def section(store: ProviderStore, who: str) -> None:
        nonlocal overlaps
        async with store.exclusive("player:u1"):
            overlaps += bool(inside)
            inside.append(who)
            await asyncio.sleep(0.02)  # the section's own work (a login), for the other to run into
            inside.remove(who)

    async def both() -> None:
        await asyncio.gather(*(section(store, f"{name}{n}") for n in range(5) for store, name in ((a, "a"), (b, "b"))))

    asyncio.run(both())
    assert overlaps == 0 and not inside


def test_a_key_held_elsewhere_past_the_bound_is_tried_later(stores: tuple[Store, Store]) -> None:
    a = StoreViews(stores[0]).state
    b = ProviderStore(StoreViews(stores[1]), "gameramp")

    async def enter() -> None:
        async with b.exclusive("player:u1", wait_s=0.3):
            raise AssertionError("entered a section another daemon holds")

    with a.try_exclusive("gameramp", "player:u1") as held:
        assert held
        with pytest.raises(TryLater, match="held by another daemon"):
            asyncio.run(enter())


def test_a_wait_cancelled_leaves_the_key_free(stores: tuple[Store, Store]) -> None:
    """A task cancelled while it waits (or while its thread is taking the key) holds nothing afterwards."""
    a = StoreViews(stores[0]).state
    b = ProviderStore(StoreViews(stores[1]), "gameramp")

    async def wait_then_cancel() -> None:
        async def enter() -> None:
            async with b.exclusive("player:u1"):
                pass
        for delay in (0.0, 0.05):
            task = asyncio.create_task(enter())
            await asyncio.sleep(delay)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    with a.try_exclusive("gameramp", "player:u1") as held:
        assert held
        asyncio.run(wait_then_cancel())  # asyncio.run waits for the default executor's threads to finish
    with a.try_exclusive("gameramp", "player:u1") as free:
        assert free


def test_on_sqlite_a_section_is_the_daemons_own_lock(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'bridge.sqlite3'}")
    store.open()
    provider_store = ProviderStore(StoreViews(store), "gameramp")
    inside: list[int] = []
    overlaps = 0

    async def section(n: int) -> None:
        nonlocal overlaps
        async with provider_store.exclusive("player:u1"):
            overlaps += bool(inside)
            inside.append(n)
            await asyncio.sleep(0.01)
            inside.remove(n)

    async def all_of_them() -> None:
        await asyncio.gather(*(section(n) for n in range(5)))

    assert not provider_store.shared
    asyncio.run(all_of_them())
    assert overlaps == 0
    store.dispose()


def test_keys_due_taken_by_two_daemons_at_once_go_to_one_each(stores: tuple[Store, Store]) -> None:
    a, b = (StoreViews(store).state for store in stores)
    keys = [f"asked:p{n}" for n in range(200)]
    taken: dict[str, list[str]] = {}
    start = threading.Barrier(2)

    def take(name: str, state: ProviderState) -> None:
        start.wait()
        taken[name] = state.take_due("gameanalytics", keys, 1_000_000, 300_000)

    turns = [threading.Thread(target=take, args=(name, state)) for name, state in (("a", a), ("b", b))]
    for turn in turns:
        turn.start()
    for turn in turns:
        turn.join(30)
    assert sorted(taken["a"] + taken["b"]) == sorted(keys)  # every key once, to one daemon or the other
    assert b.take_due("gameanalytics", keys, 1_200_000, 300_000) == []  # within the period: no one's turn
    assert a.take_due("gameanalytics", keys[:2], 1_300_000, 300_000) == keys[:2]  # the next period's
