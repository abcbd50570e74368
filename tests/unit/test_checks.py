from __future__ import annotations

from salesstream.core.checks import Mismatch, compare_totals


def totals(orders: int, gross: int, refunds: int = 0, refunded: int = 0) -> dict[str, int]:
    return {"orders": orders, "refunds": refunds, "gross_minor": gross, "refunds_minor": refunded}


def test_equal_views_have_no_mismatch() -> None:
    view = {"s1": {"EUR": totals(3, 900, 1, 100)}, "s2": {"USD": totals(1, 5)}}
    assert compare_totals(view, view) == []


def test_one_cent_off_is_a_mismatch() -> None:
    expected = {"s1": {"EUR": totals(3, 900)}}
    actual = {"s1": {"EUR": totals(3, 899)}}
    assert compare_totals(expected, actual) == [Mismatch("s1", "EUR", "gross_minor", 900, 899)]


def test_a_missing_store_or_currency_counts_as_zero() -> None:
    expected = {"s1": {"EUR": totals(1, 10)}, "s2": {"EUR": totals(1, 20)}}
    actual = {"s1": {"EUR": totals(1, 10), "GBP": totals(1, 7)}}
    assert compare_totals(expected, actual) == [
        Mismatch("s1", "GBP", "orders", 0, 1),
        Mismatch("s1", "GBP", "gross_minor", 0, 7),
        Mismatch("s2", "EUR", "orders", 1, 0),
        Mismatch("s2", "EUR", "gross_minor", 20, 0),
    ]
