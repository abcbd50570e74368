"""`salesstream report` shapes the aggregates table into per-store and per-shard totals."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from consumers.speed.layout import encode_store_totals
from salesstream.cli.commands.report import print_tables, report_from_items


def s(text: str) -> dict[str, str]:
    return {"S": text}


def n(number: int) -> dict[str, str]:
    return {"N": str(number)}


def totals(orders: int, refunds: int, gross: int, refunded: int) -> dict[str, dict[str, str]]:
    return {
        "orders": n(orders),
        "refunds": n(refunds),
        "gross_minor": n(gross),
        "refunds_minor": n(refunded),
        "net_minor": n(gross - refunded),
    }


def days(shard: str, day: str, stores: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    """A shard's DAYS# item: its stores' amounts on one business day."""
    return {"pk": s(f"DAYS#{shard}"), "sk": s(day), "stores_zjson": {"B": encode_store_totals(stores)}}


ITEMS = [
    days("shard-0", "2026-11-23", {"store-1/EUR": [2, 1, 3000, 500]}),
    days("shard-0", "2026-11-24", {"store-1/JPY": [1, 0, 700, 0]}),
    # the same store and day on another shard (the stream was resharded): added up
    days("shard-1", "2026-11-24", {"store-1/EUR": [1, 0, 100, 0]}),
    {"pk": s("SHARD#shard-0"), "sk": s("TOTAL#EUR"), **totals(3, 1, 3100, 500)},
    {"pk": s("SHARD#shard-0"), "sk": s("TOTAL#JPY"), **totals(1, 0, 700, 0)},
    {"pk": s("SHARD#shard-1"), "sk": s("TOTAL#EUR"), **totals(1, 0, 1, 0)},
    {
        "pk": s("SHARD#shard-0"),
        "sk": s("COUNTERS"),
        "events": n(5),
        "duplicates": n(2),
        "conflicts": n(1),
        "quarantined": n(3),
        "segments": n(4),
        "last_window_end": s("2026-11-23T10:01:00Z"),
    },
    {"pk": s("SEGMENT#shard-0"), "sk": s("001795428000000#x"), "events": n(5)},
]


def test_the_report_sums_business_days_and_keeps_currencies_apart() -> None:
    report = report_from_items(ITEMS)
    assert report["stores"] == {
        "store-1": {
            "EUR": {
                "orders": 3,
                "refunds": 1,
                "gross_minor": 3100,
                "refunds_minor": 500,
                "net_sales_minor": 2600,
            },
            "JPY": {
                "orders": 1,
                "refunds": 0,
                "gross_minor": 700,
                "refunds_minor": 0,
                "net_sales_minor": 700,
            },
        }
    }
    assert report["shards"]["shard-0"]["currencies"]["EUR"]["net_sales_minor"] == 2600
    assert report["shards"]["shard-0"]["events"] == 5
    assert report["shards"]["shard-0"]["last_window_end"] == "2026-11-23T10:01:00Z"
    assert "events" not in report["shards"]["shard-1"]  # no window persisted its counters yet
    assert report["currencies"]["EUR"] == {
        "orders": 4,
        "refunds": 1,
        "gross_minor": 3101,
        "refunds_minor": 500,
        "net_sales_minor": 2601,
    }


def test_the_tables_show_money_in_major_units() -> None:
    out = io.StringIO()
    print_tables(report_from_items(ITEMS), Console(file=out, width=200))
    text = out.getvalue()
    assert "26.00 EUR" in text
    assert "700 JPY" in text
    assert "shard-1" in text
