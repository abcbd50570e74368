"""The serving merge: the batch view answers for arrival windows ending at or before the
snapshot horizon, the speed layer for every later window; rows per period, store and currency."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from salesstream.core.aggregation import Totals
from salesstream.core.batch import WindowRow
from salesstream.core.merge import Source, answered_by, merge
from salesstream.core.query import Granularity, SalesQuery, decode_cursor
from salesstream.core.windows import parse_rfc3339

W = 60_000  # one-minute windows
HOUR = parse_rfc3339("2026-11-23T20:00:00Z")


def part(
    window: int, store: str = "s1", amount: int = 100, *, day: str = "2026-11-23", currency: str = "EUR"
) -> WindowRow:
    """One order of `amount` in the `window`-th minute after HOUR (a negative amount: a refund)."""
    start = HOUR + window * W
    sale, refund = (amount, 0) if amount >= 0 else (0, -amount)
    return WindowRow(
        "shard-0", start, start + W, store, currency, day, 1 if sale else 0, 1 if refund else 0, sale, refund
    )


def query(granularity: Granularity = Granularity.WINDOW, **overrides: object) -> SalesQuery:
    fields: dict[str, object] = {
        "granularity": granularity,
        "from_ms": HOUR,
        "to_ms": HOUR + 3 * 3_600_000,
        "limit": 1000,
    }
    fields.update(overrides)
    return SalesQuery(**fields)  # type: ignore[arg-type]


def by_start(rows: list[dict[str, object]]) -> dict[object, tuple[object, object]]:
    return {(row["start"], row["store_id"]): (row["net_minor"], row["source"]) for row in rows}


def test_windows_up_to_the_horizon_come_from_the_batch_view_and_later_ones_from_the_speed_layer() -> None:
    horizon = HOUR + 2 * W  # windows 0 and 1 end by then
    batch = [part(0, amount=10), part(1, amount=11), part(2, amount=999)]  # window 2 is past it
    speed = [part(0, amount=888), part(1, amount=777), part(2, amount=12), part(3, amount=13)]
    rows = merge(query(), horizon, batch, speed).as_json()["rows"]
    assert [(row["net_minor"], row["source"]) for row in rows] == [
        (10, "batch"),
        (11, "batch"),
        (12, "speed"),
        (13, "speed"),
    ]


def test_a_window_the_horizon_cuts_through_is_the_speed_layers() -> None:
    horizon = HOUR + W + W // 2  # in the middle of window 1
    assert answered_by(HOUR + W, horizon) is Source.BATCH
    assert answered_by(HOUR + 2 * W, horizon) is Source.SPEED
    rows = merge(query(), horizon, [part(1, amount=5)], [part(1, amount=7)]).as_json()["rows"]
    assert [(row["net_minor"], row["source"]) for row in rows] == [(7, "speed")]


def test_without_a_snapshot_everything_comes_from_the_speed_layer() -> None:
    rows = merge(query(), None, [part(0, amount=1)], [part(0, amount=2), part(1, amount=3)]).as_json()["rows"]
    assert [(row["net_minor"], row["source"]) for row in rows] == [(2, "speed"), (3, "speed")]


def test_parts_of_one_window_store_and_currency_add_up_across_shards_days_and_segments() -> None:
    speed = [part(0, amount=100), part(0, amount=50, day="2026-11-22"), part(0, amount=7)]
    speed.append(part(0, amount=1, currency="JPY"))
    rows = merge(query(), None, [], speed).as_json()["rows"]
    assert [(row["currency"], row["orders"], row["net_minor"], row["net"]) for row in rows] == [
        ("EUR", 3, 157, "1.57 EUR"),
        ("JPY", 1, 1, "1 JPY"),
    ]
    assert rows[0]["start"] == "2026-11-23T20:00:00Z"
    assert rows[0]["end"] == "2026-11-23T20:01:00Z"


def test_an_hour_row_can_hold_both_layers_and_says_how_much_each_gave() -> None:
    horizon = HOUR + 30 * W
    batch = [part(w, amount=10) for w in range(30)]
    speed = [part(w, amount=1) for w in range(60)]
    (row,) = merge(query(Granularity.HOUR), horizon, batch, speed).as_json()["rows"]
    assert (row["start"], row["end"]) == ("2026-11-23T20:00:00Z", "2026-11-23T21:00:00Z")
    assert row["source"] == "batch+speed"
    assert row["net_minor"] == 30 * 10 + 30 * 1
    assert row["parts"]["batch"]["net_minor"] == 300
    assert row["parts"]["speed"]["net_minor"] == 30


def test_an_hour_that_starts_before_to_holds_its_windows_after_to() -> None:
    rows = merge(query(Granularity.HOUR, to_ms=HOUR + 1000), None, [], [part(0), part(59), part(60)]).rows
    assert [(row.period, row.totals.orders) for row in rows] == [((HOUR, HOUR + 3_600_000), 2)]


def test_day_rows_are_business_days_whatever_the_arrival_window() -> None:
    q = query(Granularity.DAY, from_ms=HOUR - 86_400_000, to_ms=HOUR + 86_400_000 - HOUR % 86_400_000)
    assert (q.from_day, q.to_day) == ("2026-11-22", "2026-11-24")
    speed = [
        part(0, day="2026-11-22", amount=3),
        part(5, day="2026-11-23", amount=4),
        part(6, day="2026-11-21"),
    ]
    rows = merge(q, None, [], speed).as_json()["rows"]
    assert [(row["business_day"], row["net_minor"]) for row in rows] == [("2026-11-22", 3), ("2026-11-23", 4)]


def test_the_range_and_the_store_select_rows() -> None:
    speed = [part(0, "s1"), part(1, "s2"), part(2, "s1"), part(3, "s1")]
    q = query(from_ms=HOUR + W, to_ms=HOUR + 3 * W, store="s1")
    rows = merge(q, None, [], speed).as_json()["rows"]
    assert [(row["start"], row["store_id"]) for row in rows] == [("2026-11-23T20:02:00Z", "s1")]


def test_a_page_stops_at_the_limit_and_the_cursor_resumes_after_its_last_row() -> None:
    speed = [part(w, store) for w in range(3) for store in ("a", "b")]
    first = merge(query(limit=4), None, [], speed)
    assert len(first.rows) == 4
    assert first.next_cursor is not None
    rest = merge(query(limit=4, after=decode_cursor(first.next_cursor)), None, [], speed)
    assert [row.sort_key for row in first.rows + rest.rows] == [
        row.sort_key for row in merge(query(), None, [], speed).rows
    ]
    assert rest.next_cursor is None


parts = st.builds(
    lambda window, store, amount, day, currency: part(window, store, amount, day=day, currency=currency),
    st.integers(0, 200),
    st.sampled_from(["a", "b", "c"]),
    st.integers(-500, 5000),
    st.sampled_from(["2026-11-22", "2026-11-23"]),
    st.sampled_from(["EUR", "JPY"]),
)


@settings(max_examples=200, deadline=None)
@given(
    batch=st.lists(parts, max_size=40),
    speed=st.lists(parts, max_size=40),
    horizon_window=st.none() | st.integers(0, 210),
    granularity=st.sampled_from(list(Granularity)),
    limit=st.integers(1, 7),
)
def test_paged_rows_hold_each_layers_share_exactly_once(
    batch: list[WindowRow],
    speed: list[WindowRow],
    horizon_window: int | None,
    granularity: Granularity,
    limit: int,
) -> None:
    horizon = (
        None if horizon_window is None else HOUR + horizon_window * W + (W // 3 if horizon_window % 2 else 0)
    )
    q = query(granularity, from_ms=HOUR - 86_400_000, to_ms=HOUR + 86_400_000 * 2, limit=limit)
    rows, after = [], None
    for _ in range(len(batch) + len(speed) + 1):  # a page holds at least one row
        page = merge(SalesQuery(**{**q.__dict__, "after": after}), horizon, batch, speed)
        rows += page.rows
        if page.next_cursor is None:
            break
        after = decode_cursor(page.next_cursor)
    else:
        raise AssertionError("the pages never end")
    keys = [row.sort_key for row in rows]
    assert keys == sorted(set(keys))  # every row once, in order, across pages
    expected = {
        source: sum((p.totals for p in parts_ if answered_by(p.window_end_ms, horizon) is source), Totals())
        for source, parts_ in ((Source.BATCH, batch), (Source.SPEED, speed))
    }
    for source in Source:
        got = sum((row.parts.get(source, Totals()) for row in rows), Totals())
        assert got == expected[source]
