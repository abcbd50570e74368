"""The window reducer, step by step with hand-picked events, and the state's size and layout."""

from __future__ import annotations

import json
from datetime import date

import pytest

from salesstream.core.aggregation import (
    LAYOUT,
    StateLayoutChanged,
    Totals,
    WindowState,
    effect_of,
    fold,
    fold_all,
    initialize,
    result,
    segment_of,
)
from salesstream.core.contract import validate_wire
from salesstream.core.positions import Position
from salesstream.core.reasons import Reason
from salesstream.core.windows import Window
from tests.window_events import T0_MS, order

DAY = date(2026, 11, 23)


def effect(store: str, amount: int, *, refund: bool = False, currency: str = "EUR", day: int = 0) -> tuple:
    event = validate_wire(order(store, amount, refund=refund, currency=currency, day=day).to_json_bytes())
    return effect_of(event)


def test_the_effect_is_what_changes_a_total() -> None:
    event = validate_wire(order("store-7", 2500, refund=True, currency="JPY").to_json_bytes())
    assert effect_of(event) == (("store-7", "JPY", DAY.toordinal()), True, 2500)


def test_business_day_is_the_terminals_own_calendar_day() -> None:
    # 23:30 at UTC-05:00 is already the 24th in UTC: the sale belongs to the 23rd
    raw = (
        order("store-1", 100)
        .to_json_bytes()
        .replace(b"2026-11-23T11:00:00+01:00", b"2026-11-23T23:30:00-05:00")
    )
    assert b"23:30:00-05:00" in raw
    assert effect_of(validate_wire(raw))[0][2] == DAY.toordinal()


def test_folding_step_by_step() -> None:
    state = initialize()
    fold(state, effect("store-1", 1000))
    assert result(state).by_store == {("store-1", "EUR"): Totals(orders=1, gross_minor=1000)}
    fold(state, effect("store-1", 250))
    fold(state, effect("store-2", 99, currency="USD"))
    fold(state, effect("store-1", 300, refund=True))  # a refund before or after its sale: same total
    fold(state, effect("store-1", 40, day=1))
    totals = result(state)
    assert totals.by_store[("store-1", "EUR")] == Totals(
        orders=3, refunds=1, gross_minor=1290, refunds_minor=300
    )
    assert totals.by_store[("store-1", "EUR")].net_minor == 990
    assert totals.by_store[("store-2", "USD")] == Totals(orders=1, gross_minor=99)
    assert totals.by_store_day[("store-1", "2026-11-24", "EUR")] == Totals(orders=1, gross_minor=40)
    # totals are kept per currency, never summed across them
    assert totals.by_currency == {
        "EUR": Totals(orders=3, refunds=1, gross_minor=1290, refunds_minor=300),
        "USD": Totals(orders=1, gross_minor=99),
    }
    assert totals.events == 5


def test_fold_all_equals_repeated_fold() -> None:
    effects = [effect(f"store-{n % 3}", 100 + n, refund=n % 4 == 0, day=n % 2) for n in range(40)]
    one_by_one = initialize()
    for item in effects:
        fold(one_by_one, item)
    assert fold_all(initialize(), effects) == one_by_one


def test_the_state_survives_its_json_round_trip() -> None:
    state = fold_all(initialize(), [effect("store-1", 1000), effect("store-2", 5, refund=True, day=1)])
    state.note_position(Position(100, 0), Position(100, 3), T0_MS)
    state.note_position(Position(101, 0), Position(101, 0), T0_MS + 5)
    state.note_quarantined(Reason.NOT_JSON)
    state.duplicates = 2
    state.lateness.add(1500)
    state.log_key = "dedup/shard/x"
    carried = json.loads(json.dumps(state.to_json()))  # what the Lambda runtime hands back
    assert carried["v"] == LAYOUT
    assert WindowState.resume(carried) == state


def test_a_fresh_window_and_an_empty_state() -> None:
    assert WindowState.resume({}) == initialize()
    assert initialize().is_empty
    assert WindowState.resume(initialize().to_json()) == initialize()


def test_a_state_of_another_layout_is_refused_by_type() -> None:
    with pytest.raises(StateLayoutChanged) as caught:
        WindowState.resume({"v": LAYOUT + 1, "t": {}})
    assert caught.value.version == LAYOUT + 1


def test_state_stays_far_below_one_megabyte_for_a_busy_window() -> None:
    """100k orders over 500 stores in one window (the benchmark prints the same figure)."""
    effects = [effect(f"store-{n % 500}", 100 + n % 997, refund=n % 20 == 0) for n in range(2_000)]
    state = initialize()
    for _ in range(50):  # 100k events; validating 100k payloads here would be slow for no gain
        fold_all(state, effects)
    state.note_position(Position(10**55, 0), Position(10**55 + 10**6, 99), T0_MS)
    size = len(json.dumps(state.to_json(), separators=(",", ":")))
    assert state.events == 100_000
    assert len(state.totals) == 500
    assert size < 64 * 1024, size


def test_segments_sort_by_window_then_first_position() -> None:
    state = fold_all(initialize(), [effect("store-1", 1)])
    window = Window(T0_MS, T0_MS + 60_000)
    state.note_position(Position(9, 0), Position(9, 0), T0_MS)
    early = segment_of(state, "shard-a", window, terminated_early=True)
    later_state = fold_all(initialize(), [effect("store-1", 1)])
    later_state.note_position(Position(10, 0), Position(10, 0), T0_MS + 1)
    second = segment_of(later_state, "shard-a", window, terminated_early=False)
    next_window = segment_of(
        later_state, "shard-a", Window(T0_MS + 60_000, T0_MS + 120_000), terminated_early=False
    )
    assert early.key < second.key < next_window.key
    assert early.digest() != second.digest()
    assert segment_of(state, "shard-a", window, terminated_early=True).digest() == early.digest()


def test_an_empty_state_has_no_segment() -> None:
    with pytest.raises(ValueError, match="empty"):
        segment_of(initialize(), "shard-a", Window(0, 60_000), terminated_early=False)
