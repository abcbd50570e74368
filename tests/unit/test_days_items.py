"""A shard's DAYS# items (consumers/speed/segments.py, layout.py): one per business day, holding
every store's running totals, rewritten per segment over exactly the version read. Pure: the
put is built from an item as read, no AWS call."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from consumers.speed import layout
from consumers.speed.segments import SegmentConflict, SegmentStore
from salesstream.core.aggregation import Effect, Lateness, Segment, WindowState, fold_all, result
from salesstream.core.positions import Position
from salesstream.core.windows import Window

DAY = date(2026, 11, 23).toordinal()
T0 = 1_795_428_000_000
WINDOW_MS = 60_000
STORE = SegmentStore(dynamodb=None, table="aggregates")


def effect(amount: int, store: str = "s1", *, refund: bool = False, day: int = DAY) -> Effect:
    return ((store, "EUR", day), refund, amount)


def segment(*effects: Effect, window: int = 0, first: int = 1) -> Segment:
    start = T0 + window * WINDOW_MS
    return Segment(
        "sh-0",
        Window(start, start + WINDOW_MS),
        Position(first),
        Position(first + len(effects)),
        start,
        start + 10,
        False,
        Lateness(),
        result(fold_all(WindowState(), list(effects))),
    )


def stored(put: dict[str, Any] | None) -> dict[str, Any]:
    """The item a put writes, as a later GetItem returns it."""
    assert put is not None
    item: dict[str, Any] = put["Put"]["Item"]
    return item


def test_one_item_per_business_day_holds_every_store_of_the_segment() -> None:
    first = segment(effect(100), effect(40, refund=True), effect(7, "s2"), effect(5, day=DAY + 1))
    today = stored(STORE.day_put(first, "2026-11-23", None))
    assert dict(layout.decode_store_totals(today)) == {"s1/EUR": [1, 1, 100, 40], "s2/EUR": [1, 0, 7, 0]}
    assert (today["pk"], today["sk"], today["version"]) == (
        {"S": "DAYS#sh-0"},
        {"S": "2026-11-23"},
        {"N": "1"},
    )
    assert today["wm#sh-0"] == {"S": first.key}
    tomorrow = stored(STORE.day_put(first, "2026-11-24", None))
    assert list(layout.store_day_amounts(tomorrow)) == [("s1", "EUR", "2026-11-24", [1, 0, 5, 0])]


def test_a_new_item_is_put_only_if_absent_and_an_existing_one_only_over_the_version_read() -> None:
    first = segment(effect(100))
    put = STORE.day_put(first, "2026-11-23", None)
    assert put is not None
    assert put["Put"]["ConditionExpression"] == "attribute_not_exists(pk)"
    later = segment(effect(20), effect(3, "s3"), window=1)
    again = STORE.day_put(later, "2026-11-23", stored(put))
    assert again is not None
    assert again["Put"]["ConditionExpression"] == "#version = :read"
    assert again["Put"]["ExpressionAttributeValues"] == {":read": {"N": "1"}}
    assert layout.decode_store_totals(again["Put"]["Item"]) == {
        "s1/EUR": [2, 0, 120, 0],
        "s3/EUR": [1, 0, 3, 0],
    }
    assert again["Put"]["Item"]["version"] == {"N": "2"}
    assert again["Put"]["Item"]["wm#sh-0"] == {"S": later.key}


def test_an_item_that_holds_the_segment_already_is_left_alone() -> None:
    first = segment(effect(100))
    assert STORE.day_put(first, "2026-11-23", stored(STORE.day_put(first, "2026-11-23", None))) is None


def test_an_item_that_holds_a_later_segment_is_a_loud_error() -> None:
    earlier, later = segment(effect(100)), segment(effect(1), window=1)
    after_later = stored(STORE.day_put(later, "2026-11-23", None))
    with pytest.raises(SegmentConflict, match="out of order"):
        STORE.day_put(earlier, "2026-11-23", after_later)


def test_the_repairs_marker_survives_the_next_segment() -> None:
    item = stored(STORE.day_put(segment(effect(100)), "2026-11-23", None))
    marker = {"M": {"repair_id": {"S": "r1"}}}
    put = STORE.day_put(segment(effect(1), window=1), "2026-11-23", {**item, "restated": marker})
    assert stored(put)["restated"] == marker


def test_a_segments_persistence_names_one_item_per_day_not_per_store() -> None:
    many = segment(*(effect(10, f"store-{n}") for n in range(500)), effect(1, day=DAY - 3))
    updates = STORE.running_total_updates(many)
    keys = [(u["Update"]["Key"]["pk"]["S"], u["Update"]["Key"]["sk"]["S"]) for u in updates]
    assert keys == [("SHARD#sh-0", "COUNTERS"), ("SHARD#sh-0", "TOTAL#EUR")]
    days = [STORE.day_put(many, day, None) for day in ("2026-11-20", "2026-11-23")]
    assert [len(layout.decode_store_totals(stored(put))) for put in days] == [1, 500]
