"""The dashboard's headline figures from merged rows, without AWS: today's totals per currency
and per store, orders per minute over the last closed windows, the newest window's age."""

from __future__ import annotations

from consumers.serving.summary import summarize
from salesstream.core.aggregation import Totals
from salesstream.core.merge import Row, Source
from salesstream.core.windows import parse_rfc3339

NOW = parse_rfc3339("2026-12-03T12:00:00Z")
MINUTE = 60_000


def window(start_minutes_ago: float, store: str, currency: str, orders: int, net: int) -> Row:
    start = NOW - round(start_minutes_ago * MINUTE)
    return Row((start, start + MINUTE), store, currency, {Source.SPEED: Totals(orders, 0, net, 0)})


def day(store: str, currency: str, orders: int, gross: int, refunds: int = 0) -> Row:
    return Row(
        "2026-12-03", store, currency, {Source.BATCH: Totals(orders, 1 if refunds else 0, gross, refunds)}
    )


def test_today_is_summed_per_currency_and_per_store_in_every_currency() -> None:
    rows = [day("s1", "EUR", 3, 1_000), day("s1", "JPY", 1, 500), day("s2", "EUR", 2, 700, refunds=200)]
    summary = summarize("2026-12-03", rows, [], NOW)
    assert summary["business_day"] == "2026-12-03"
    assert {code: t["net_minor"] for code, t in summary["today"].items()} == {"EUR": 1_500, "JPY": 500}
    assert summary["today"]["EUR"]["net"] == "15.00 EUR"
    assert summary["today"]["JPY"]["net"] == "500 JPY"  # no minor unit
    assert [(s["store_id"], sorted(s["currencies"])) for s in summary["stores"]] == [
        ("s1", ["EUR", "JPY"]),
        ("s2", ["EUR"]),
    ]
    assert summary["stores"][1]["currencies"]["EUR"]["net_minor"] == 500
    assert summary["currencies"] == {"EUR": {"exponent": 2}, "JPY": {"exponent": 0}}


def test_orders_per_minute_cover_the_five_minutes_up_to_the_newest_closed_window() -> None:
    rows = [window(m, "s1", "EUR", 10, 100) for m in (9, 7, 5, 4, 3, 2)]  # the newest ends 1 min ago
    rate = summarize("2026-12-03", [], rows, NOW)["orders_per_minute"]
    # windows starting 5 min before the newest end (6 min ago): 5, 4, 3, 2 minutes ago, 40 orders
    assert (rate["orders"], rate["seconds"], rate["value"]) == (40, 240, 10.0)
    assert rate["to"] == "2026-12-03T11:59:00Z"


def test_orders_per_minute_count_quiet_windows_as_time_without_orders() -> None:
    rows = [window(5, "s1", "EUR", 30, 100), window(1, "s2", "USD", 10, 100)]
    rate = summarize("2026-12-03", [], rows, NOW)["orders_per_minute"]
    assert (rate["orders"], rate["seconds"], rate["value"]) == (40, 300, 8.0)


def test_a_window_longer_than_five_minutes_counts_whole() -> None:
    start = NOW - 20 * MINUTE
    long_window = Row((start, start + 15 * MINUTE), "s1", "EUR", {Source.SPEED: Totals(45, 0, 1, 0)})
    rate = summarize("2026-12-03", [], [long_window], NOW)["orders_per_minute"]
    assert (rate["seconds"], rate["value"]) == (900, 3.0)


def test_freshness_is_the_age_of_the_newest_closed_window_and_nothing_is_made_up_without_one() -> None:
    summary = summarize("2026-12-03", [], [window(3, "s1", "EUR", 1, 1)], NOW)
    assert summary["newest_window_end"] == "2026-12-03T11:58:00Z"
    assert summary["newest_window_end_age_ms"] == 2 * MINUTE
    empty = summarize("2026-12-03", [], [], NOW)
    assert empty["orders_per_minute"] is None
    assert empty["newest_window_end"] is None
    assert (empty["today"], empty["stores"]) == ({}, [])
