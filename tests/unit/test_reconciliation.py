"""Speed vs batch, pure: differences classified, and explained only when their causes add up to
the delta exactly; running totals explained by their windows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from salesstream.core.aggregation import Totals
from salesstream.core.batch import Cause, Classification, Explanation, KeyKind, Status, minus
from salesstream.core.reconciliation import (
    classify,
    compare,
    explain,
    involves_late_window,
    running_total_differences,
    summarize,
    window_differences,
)

W0 = 1_795_428_000_000
SALE = Totals(orders=1, gross_minor=500)
KEY = ("sh-0", W0, "s1", "EUR", "2026-11-23")


def test_classification() -> None:
    assert classify(SALE, Totals()) is Classification.MISSING_IN_SPEED
    assert classify(Totals(), SALE) is Classification.EXTRA_IN_SPEED
    assert classify(SALE, SALE + SALE) is Classification.AMOUNT_MISMATCH
    assert compare({"a": SALE, "b": SALE}, {"b": SALE, "c": Totals()}) == [("a", SALE, Totals())]


def test_a_difference_is_explained_only_when_its_causes_add_up_exactly() -> None:
    resend = Explanation(Cause.LATE_RESEND, "evt-1 again", SALE)
    quarantined = Explanation(Cause.QUARANTINED, "seq 9", minus(Totals(), Totals(orders=1, gross_minor=200)))
    chosen, explained = explain(SALE, [quarantined, resend])
    assert explained
    assert chosen == (resend,)
    chosen, explained = explain(Totals(orders=0, gross_minor=300), [quarantined, resend])
    assert explained
    assert set(chosen) == {quarantined, resend}  # +500 - 200
    chosen, explained = explain(Totals(orders=1, gross_minor=501), [quarantined, resend])
    assert not explained  # a unit off is not explained
    assert set(chosen) == {quarantined, resend}  # listed as possible causes


@given(
    groups=st.lists(
        st.lists(st.tuples(st.integers(-3, 3), st.integers(-5000, 5000)), min_size=1, max_size=3),
        min_size=1,
        max_size=6,
    ),
    picked=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_any_set_of_causes_that_adds_up_is_found(
    groups: list[list[tuple[int, int]]], picked: list[bool]
) -> None:
    causes = list(Cause)
    candidates = [
        Explanation(causes[number], f"#{number}", Totals(orders=orders, gross_minor=gross))
        for number, group in enumerate(groups)
        for orders, gross in group
    ]
    delta = Totals()
    for number, group in enumerate(groups):
        if picked[number]:
            for orders, gross in group:
                delta = delta + Totals(orders=orders, gross_minor=gross)
    chosen, explained = explain(delta, candidates)
    total = Totals()
    for candidate in chosen:
        total = total + candidate.delta
    if any(picked[: len(groups)]):
        assert explained  # the picked causes add up, so some set does
    if explained:
        assert total == delta


def test_window_and_running_total_differences() -> None:
    batch = {KEY: SALE}
    speed = {KEY: SALE + SALE}
    resend = Explanation(Cause.LATE_RESEND, "evt-1 again", SALE)
    (window,) = window_differences(batch, speed, {KEY: [resend]})
    assert (window.kind, window.classification, window.explained) == (
        KeyKind.WINDOW,
        Classification.AMOUNT_MISMATCH,
        True,
    )
    assert window.key == f"window:sh-0/{W0}/s1/2026-11-23/EUR"

    # the running total is off exactly as its window: explained by it
    (day,) = running_total_differences(
        KeyKind.STORE_DAY,
        {("s1", "2026-11-23", "EUR"): SALE},
        {("s1", "2026-11-23", "EUR"): SALE + SALE},
        [window],
    )
    assert day.explained
    assert day.explanations[0].cause is Cause.WINDOW_DIFFERENCES
    assert (day.store_id, day.business_day, day.currency, day.shard_id) == ("s1", "2026-11-23", "EUR", None)
    # off by more than its windows: a running total that disagrees with its own segments
    (off,) = running_total_differences(
        KeyKind.SHARD_TOTAL, {("sh-0", "EUR"): SALE}, {("sh-0", "EUR"): SALE + SALE + SALE}, [window]
    )
    assert not off.explained
    assert off.shard_id == "sh-0"
    # no window difference at all: a corrupted running total
    (alone,) = running_total_differences(KeyKind.STORE_DAY, {("s2", "2026-11-23", "EUR"): SALE}, {}, [window])
    assert (alone.classification, alone.explained, alone.explanations) == (
        Classification.MISSING_IN_SPEED,
        False,
        (),
    )


def test_a_late_window_keeps_its_keys_out_of_a_repair_and_the_summary_counts() -> None:
    late = Explanation(Cause.LATE_WINDOW, "not closed yet", minus(Totals(), SALE))
    (window,) = window_differences({KEY: SALE}, {}, {KEY: [late]})
    (day,) = running_total_differences(KeyKind.STORE_DAY, {("s1", "2026-11-23", "EUR"): SALE}, {}, [window])
    assert window.explained
    assert day.explained
    assert involves_late_window(window, [window])
    assert involves_late_window(day, [window])
    summary = summarize(
        [window, day],
        reconciliation_id="r",
        snapshot_id="s",
        horizon_ms=W0,
        reconciled_ms=W0 + 1,
        keys_compared=3,
        notes={"duplicates": 2},
    )
    assert summary.status is Status.EXPLAINED
    assert summary.by_classification == {"store_day.missing_in_speed": 1, "window.missing_in_speed": 1}
    assert summary.by_cause == {"late_window": 1, "window_differences": 1}
    assert (
        summarize(
            [],
            reconciliation_id="r",
            snapshot_id="s",
            horizon_ms=0,
            reconciled_ms=0,
            keys_compared=0,
            notes={},
        ).status
        is Status.CLEAN
    )
