"""What survives a restart beside the events: a provider's state and the publisher's topics, one row per key,
the latest value kept."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Table, func, select

from bridge.store import SavedConfig, SavedConfigs, Store
from bridge.store.schema import configs, provider_state
from bridge.store.state import ProviderState


def rows_in(store: Store, table: Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_provider_state_keeps_the_latest_value_of_each_key(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    state = ProviderState(store)
    assert state.get("gameramp", "clock_offset") is None
    state.set("gameramp", "clock_offset", 1.5)
    state.set("gameramp", "clock_offset", -2.0)
    state.set("staq", "clock_offset", {"any": ["json"]})
    assert state.get("gameramp", "clock_offset") == -2.0 and state.get("staq", "clock_offset") == {"any": ["json"]}
    assert rows_in(store, provider_state) == 2
    store.dispose()


def test_many_keys_are_read_and_written_at_once(tmp_path: Path) -> None:
    """A batch's players' state: one query reads the keys that were set (the others left out), one
    transaction writes them."""
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    state = ProviderState(store)
    assert state.get_many("gameanalytics", ["transactions:u1"]) == {} and state.get_many("gameanalytics", []) == {}
    state.set_many("gameanalytics", {"transactions:u1": 3, "transactions:u2": 1})
    state.set_many("gameanalytics", {"transactions:u1": 4})
    state.set("staq", "transactions:u1", 9)
    assert state.get_many("gameanalytics", ["transactions:u1", "transactions:u2", "transactions:u3"]) == \
        {"transactions:u1": 4, "transactions:u2": 1}
    assert not state.shared  # SQLite: one daemon, its memory the authority
    store.dispose()


def test_a_key_due_is_taken_once_per_period(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    state = ProviderState(store)
    assert state.take_due("gameanalytics", ["asked:p1", "asked:p2"], 1_000, 500) == ["asked:p1", "asked:p2"]
    assert state.take_due("gameanalytics", ["asked:p1", "asked:p3"], 1_400, 500) == ["asked:p3"]
    assert state.take_due("gameanalytics", ["asked:p1", "asked:p3"], 1_500, 500) == ["asked:p1"]
    assert state.take_due("staq", ["asked:p1"], 1_500, 500) == ["asked:p1"]  # each provider's own keys
    store.dispose()


def test_a_saved_topic_is_replaced_by_its_next_version(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    saved = SavedConfigs(store)
    saved.save(SavedConfig(topic="config/local", version=1, source="local", payload=b"\x80", updated_at=1))
    saved.save(SavedConfig(topic="config/local", version=2, source="local", payload=b"\x81", updated_at=2))
    assert saved.load() == [SavedConfig(topic="config/local", version=2, source="local", payload=b"\x81",
                                        updated_at=2)]
    assert rows_in(store, configs) == 1
    store.dispose()
