"""`salesstream report`: the speed layer's running totals, per shard and per store.

Reads the aggregates table with one paginated Scan, an operator's read, and reads the running
totals from its items (consumers/speed/layout.py). `--json` prints one object:

    {"stores": {store_id: {currency: {orders, refunds, gross_minor, refunds_minor, net_sales_minor}}},
     "shards": {shard_id: {"currencies": {currency: {...same...}}, "events", "duplicates",
                           "conflicts", "quarantined", "segments", "last_window_end"}},
     "currencies": {currency: {...same, over every shard...}}}
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.console import Console

from consumers.speed.layout import SHARD_COUNTERS, report_from_items
from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    add_endpoint_arguments,
    add_template_arguments,
    print_json,
    session,
)
from salesstream.cli.commands.tables import number, print_table
from salesstream.core.currencies import format_minor

if TYPE_CHECKING:
    import argparse

NO_WINDOW_YET = (
    "no window has closed yet: the speed layer counts a window once it closes "
    "(WindowSeconds after its first record, 60 s by default); run `salesstream report` again then"
)


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "report",
        "print per-shard running totals and per-store net sales",
        "Read the speed layer's aggregates table: the running totals of every closed window, per "
        "shard and per store. Totals appear once a window has closed (WindowSeconds after its "
        "first record, 60 s by default).",
        [("the tables", ""), ("one store's net sales", "--json | jq '.stores[\"store-0001\"]'")],
    )
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with session(args, start_embedded=False) as current:
        table = current.template.physical_name("AggregatesTable")
        dynamodb = current.endpoint.client("dynamodb")
        try:
            report = report_from_items(_scan(dynamodb, table))
        except dynamodb.exceptions.ResourceNotFoundException:
            raise CommandError(
                f"no table {table} at {current.endpoint.url or 'AWS'}: is the stack up?"
            ) from None
    if args.json:
        print_json(report)
        if not report["shards"]:  # the hint on stderr: stdout holds only the JSON
            print(f"salesstream report: {NO_WINDOW_YET}", file=sys.stderr)
    else:
        print_tables(report, Console())
    return 0


def _scan(dynamodb: Any, table: str) -> Iterable[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        yield from page["Items"]


def print_tables(report: dict[str, Any], console: Console) -> None:
    if not report["shards"]:
        console.print(NO_WINDOW_YET)
        return
    rows = []
    for shard_id, shard in sorted(report["shards"].items()):
        counters = [str(shard.get(name, 0)) for name in SHARD_COUNTERS]
        for currency, totals in sorted(shard["currencies"].items()) or [("-", None)]:
            amounts = (
                ["", "", ""]
                if totals is None
                else [
                    str(totals["orders"]),
                    str(totals["refunds"]),
                    format_minor(totals["net_sales_minor"], currency),
                ]
            )
            rows.append([shard_id, currency, *amounts, *counters])
            shard_id, counters = "", [""] * len(SHARD_COUNTERS)
    print_table(
        console,
        "running totals per shard",
        ["shard", "currency", *map(number, ("orders", "refunds", "net sales", *SHARD_COUNTERS))],
        rows,
        keys=2,
    )
    stores = [
        [
            store_id,
            currency,
            str(totals["orders"]),
            str(totals["refunds"]),
            format_minor(totals["net_sales_minor"], currency),
        ]
        for store_id, by_currency in sorted(report["stores"].items())
        for currency, totals in sorted(by_currency.items())
    ]
    print_table(
        console,
        "net sales per store",
        ["store", "currency", *map(number, ("orders", "refunds", "net sales"))],
        stores,
    )
