"""Comparing two views of the same sales, to the cent: what was sent against what was counted.

Both sides are `{store_id: {currency: {"orders", "refunds", "gross_minor", "refunds_minor"}}}`;
net sales are derived, never compared separately. Used by `salesstream demo` and the load tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

COMPARED: Final = ("orders", "refunds", "gross_minor", "refunds_minor")
StoreTotals = Mapping[str, Mapping[str, Mapping[str, int]]]


@dataclass(frozen=True, slots=True)
class Mismatch:
    store_id: str
    currency: str
    field: str
    expected: int
    actual: int


def compare_totals(expected: StoreTotals, actual: StoreTotals) -> list[Mismatch]:
    """Every (store, currency, field) where the two sides differ; a missing side counts as 0."""
    mismatches = []
    for store in sorted(set(expected) | set(actual)):
        by_currency_expected, by_currency_actual = expected.get(store, {}), actual.get(store, {})
        for currency in sorted(set(by_currency_expected) | set(by_currency_actual)):
            want, got = by_currency_expected.get(currency, {}), by_currency_actual.get(currency, {})
            for field in COMPARED:
                if want.get(field, 0) != got.get(field, 0):
                    mismatches.append(Mismatch(store, currency, field, want.get(field, 0), got.get(field, 0)))
    return mismatches
