"""`salesstream report`: the speed layer's running totals, per shard and per store.

Reads the aggregates table with one paginated Scan, an operator's read, and reads the running
totals from its items (consumers/aggregator/layout.py). `--json` prints one object:

    {"stores": {store_id: {currency: {orders, refunds, gross_minor, refunds_minor, net_sales_minor}}},
     "shards": {shard_id: {"currencies": {currency: {...same...}}, "events", "duplicates",
                           "conflicts", "quarantined", "segments", "last_window_end"}},
     "currencies": {currency: {...same, over every shard...}}}
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from consumers.aggregator.layout import SHARD_COUNTERS, report_from_items
from salesstream.commands.common import CommandError, add_endpoint_arguments, add_template_arguments, session
from salesstream.core.currencies import format_minor

if TYPE_CHECKING:
    import argparse


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="print per-shard running totals and per-store net sales")
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
        print(json.dumps(report, sort_keys=True))
    else:
        print_tables(report, Console())
    return 0


def _scan(dynamodb: Any, table: str) -> Iterable[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        yield from page["Items"]


def print_tables(report: dict[str, Any], console: Console) -> None:
    shards = Table(
        "shard",
        "currency",
        "orders",
        "refunds",
        "net sales",
        "events",
        "duplicates",
        "conflicts",
        "quarantined",
        "segments",
        title="running totals per shard",
    )
    for shard_id, shard in sorted(report["shards"].items()):
        counters = [str(shard.get(name, 0)) for name in SHARD_COUNTERS]
        rows = sorted(shard["currencies"].items()) or [("-", None)]
        for currency, totals in rows:
            amounts = (
                ["", "", ""]
                if totals is None
                else [
                    str(totals["orders"]),
                    str(totals["refunds"]),
                    format_minor(totals["net_sales_minor"], currency),
                ]
            )
            shards.add_row(shard_id, currency, *amounts, *counters)
            shard_id, counters = "", [""] * len(SHARD_COUNTERS)
    console.print(shards)
    stores = Table("store", "currency", "orders", "refunds", "net sales", title="net sales per store")
    for store_id, by_currency in sorted(report["stores"].items()):
        for currency, totals in sorted(by_currency.items()):
            stores.add_row(
                store_id,
                currency,
                str(totals["orders"]),
                str(totals["refunds"]),
                format_minor(totals["net_sales_minor"], currency),
            )
    console.print(stores)
