"""The dashboard's headline figures (`GET /summary`), from the same merged rows `GET /sales` gives:
net sales today per currency and per store, orders per minute over the last closed windows, and
how fresh the newest closed window is. Pure: rows in, a JSON-ready dict out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from salesstream.core.aggregation import Totals
from salesstream.core.currencies import format_minor, minor_unit_exponent
from salesstream.core.merge import Row
from salesstream.core.windows import rfc3339

RATE_SPAN_MS: Final = 5 * 60_000  # orders per minute: over the closed windows of the last 5 minutes


def summarize(
    business_day: str, day_rows: Iterable[Row], window_rows: Iterable[Row], now_ms: int
) -> dict[str, Any]:
    """`day_rows`: the business day's rows (granularity=day); `window_rows`: recent arrival
    windows (granularity=window), closed ones only, as the speed layer and batch view hold them."""
    by_currency: dict[str, Totals] = {}
    by_store: dict[str, dict[str, Totals]] = {}
    for row in day_rows:
        by_currency[row.currency] = by_currency.get(row.currency, Totals()) + row.totals
        store = by_store.setdefault(row.store_id, {})
        store[row.currency] = store.get(row.currency, Totals()) + row.totals
    windows = [row for row in window_rows if isinstance(row.period, tuple)]
    newest_end = max((row.period[1] for row in windows if isinstance(row.period, tuple)), default=None)
    codes = sorted(set(by_currency) | {row.currency for row in windows})
    return {
        "generated_at": rfc3339(now_ms),
        "business_day": business_day,
        "today": {code: _money(totals, code) for code, totals in sorted(by_currency.items())},
        "stores": [
            {"store_id": store, "currencies": {code: _money(t, code) for code, t in sorted(totals.items())}}
            for store, totals in sorted(by_store.items())
        ],
        "orders_per_minute": None if newest_end is None else _orders_per_minute(windows, newest_end),
        "newest_window_end": None if newest_end is None else rfc3339(newest_end),
        "newest_window_end_age_ms": None if newest_end is None else now_ms - newest_end,
        "currencies": {code: {"exponent": minor_unit_exponent(code)} for code in codes},
    }


def _orders_per_minute(windows: list[Row], newest_end: int) -> dict[str, Any]:
    """Orders of the windows that started in the 5 minutes before the newest window's end, per
    minute of the time they cover (less than 5 minutes when sales began more recently; the newest
    window whole when windows are longer than 5 minutes)."""
    newest_start = max(row.period[0] for row in windows if isinstance(row.period, tuple))
    since = min(newest_end - RATE_SPAN_MS, newest_start)
    recent = [row for row in windows if isinstance(row.period, tuple) and row.period[0] >= since]
    first_start = min(row.period[0] for row in recent if isinstance(row.period, tuple))
    orders = sum(row.totals.orders for row in recent)
    seconds = (newest_end - first_start) / 1000  # windows start on whole seconds: exact
    return {
        "value": round(orders * 60 / seconds, 1),
        "orders": orders,
        "from": rfc3339(first_start),
        "to": rfc3339(newest_end),
        "seconds": seconds,
    }


def _money(totals: Totals, currency: str) -> dict[str, Any]:
    return {**totals.as_dict(), "net": format_minor(totals.net_minor, currency)}
