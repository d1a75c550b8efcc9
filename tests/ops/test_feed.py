"""The feed's readers in-process: a reader that cannot keep up loses its own lines and is told how many; the
filters pass what a tap asked for."""

from __future__ import annotations

from bridge.ops.feed import Filter, Reader


def line(kind: str = "stored", **fields: object) -> dict[str, object]:
    return {"kind": kind, "at": 0, **fields}


def test_a_full_reader_drops_its_own_lines_and_says_how_many_before_the_next() -> None:
    reader = Reader(Filter(), size=3)
    for n in range(10):
        reader.offer(line(n=n))  # never waits, however full
    assert reader.dropped == 7
    notice = reader.next(0)
    assert notice is not None and (notice["kind"], notice["count"], notice["total"]) == ("dropped", 7, 7)
    assert [(got or {}).get("n") for got in (reader.next(0) for _ in range(3))] == [0, 1, 2]
    assert reader.next(0) is None
    reader.offer(line(n=10))
    assert reader.next(0) == line(n=10)  # no new loss, no new notice


def test_filters_pass_what_was_asked_for() -> None:
    stored = line(category="design", user_id="u-1", verdicts={"gameanalytics": "queued"})
    delivered = line("delivered", provider="staq", category="custom", user_id="u-2")
    duplicates = line("duplicates", count=2)
    assert all(Filter().matches(i) for i in (stored, delivered, duplicates))
    design = Filter(categories=frozenset({"design"}))
    assert [design.matches(i) for i in (stored, delivered, duplicates)] == [True, False, False]
    ga = Filter(providers=frozenset({"gameanalytics"}))
    assert [ga.matches(i) for i in (stored, delivered, duplicates)] == [True, False, False]
    user = Filter(users=frozenset({"u-2"}))
    assert [user.matches(i) for i in (stored, delivered, duplicates)] == [False, True, False]
    outcomes = Filter(kinds=frozenset({"delivered", "duplicates"}))
    assert [outcomes.matches(i) for i in (stored, delivered, duplicates)] == [False, True, True]
    assert not Filter(providers=frozenset({"gameramp"})).matches(stored)  # not routed there
