"""`salesstream quarantine`: the records the consumers refused, by reason, shard and window.

Reads the quarantine table (consumers/common/quarantine.py writes it) without its raw bytes: the
projection leaves `raw` out, so no value a record carried is ever read, let alone shown. What
is shown is the reason, the detail (masked of card numbers where the consumer wrote it, masked
again here) and, when the item names it, the field that held the suspected card number.
Filters: `--reason`, `--shard`, `--since`. `--json` prints one object with every record.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console
from rich.table import Table

from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    add_endpoint_arguments,
    add_template_arguments,
    positive_int,
    print_json,
    session,
)
from salesstream.cli.commands.tables import Column, print_table, text
from salesstream.core.cards import redact_card_numbers
from salesstream.core.reasons import Reason
from salesstream.core.windows import parse_rfc3339

if TYPE_CHECKING:
    from collections.abc import Iterator

# Every attribute but `raw` (the redacted bytes, which this command never reads).
_SHOWN_ATTRIBUTES: Final = (
    "pk",
    "sk",
    "shard_id",
    "sequence_number",
    "subsequence",
    "whole_record",
    "reason",
    "detail",
    "#field",
    "partition_key",
    "arrival",
    "arrival_ms",
    "window_start",
    "window_end",
    "event_id",
    "raw_bytes",
    "raw_s3_key",
)
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WIDE: Final = 110  # below this many columns the window column is dropped (it is in --json)


def since_ms(text: str) -> int:
    """`--since`: a duration back from now (90s, 15m, 2h, 1d) or an RFC 3339 time."""
    duration = _DURATION.fullmatch(text)
    if duration:
        return int(time.time() * 1000) - int(duration.group(1)) * _UNIT_SECONDS[duration.group(2)] * 1000
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (90s, 15m, 2h, 1d) nor an RFC 3339 time"
        ) from None


def shard_id(text: str) -> str:
    """`--shard`: a shard id, or its number (3 is shardId-000000000003)."""
    if text.isdigit():
        return f"shardId-{int(text):012d}"
    if re.fullmatch(r"shardId-\d{12}", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is neither a shard id (shardId-000000000003) nor a number")


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "quarantine",
        "list the records the consumers refused, with counts per reason",
        "List the quarantine table: each refused record's reason, shard, window, masked detail and "
        "the field that held a suspected card number (never its value), with counts per reason. "
        "A refusal shows up as soon as the aggregator has handled its batch.",
        [
            ("everything, counts per reason first", ""),
            ("refused as card numbers in the last 15 minutes", "--reason card_number --since 15m"),
            ("one shard, as JSON", "--shard 3 --json"),
        ],
    )
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    filters = parser.add_argument_group("filters")
    filters.add_argument(
        "--reason",
        choices=[reason.value for reason in Reason],
        metavar="REASON",
        help="only this refusal reason (card_number, not_json, missing_field, ...)",
    )
    filters.add_argument("--shard", type=shard_id, metavar="SHARD", help="only this shard (id or number)")
    filters.add_argument(
        "--since", type=since_ms, metavar="WHEN", help="arrived at or after: 15m, 2h, 1d or an RFC 3339 time"
    )
    parser.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="records in the table (default 50)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object with every record")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with session(args, start_embedded=False) as current:
        table = current.template.physical_name("QuarantineTable")
        dynamodb = current.endpoint.client("dynamodb")
        try:
            records = [_record(item) for item in _read(dynamodb, table, args.shard)]
        except dynamodb.exceptions.ResourceNotFoundException:
            raise CommandError(
                f"no table {table} at {current.endpoint.url or 'AWS'}: is the stack up?"
            ) from None
    records = [
        record
        for record in records
        if (args.reason is None or record["reason"] == args.reason)
        and (args.since is None or record["arrival_ms"] >= args.since)
    ]
    records.sort(key=lambda r: (r["reason"], r["shard_id"], r["window_start"], r["position"]))
    counts = Counter(record["reason"] for record in records)
    if args.json:
        print_json(
            {
                "table": table,
                "filters": {"reason": args.reason, "shard": args.shard, "since_ms": args.since},
                "total": len(records),
                "counts": dict(sorted(counts.items())),
                "records": records,
            }
        )
    else:
        print_records(records, counts, Console(), limit=args.limit)
    return 0


def _read(dynamodb: Any, table: str, shard: str | None) -> Iterator[dict[str, Any]]:
    """Every item (one shard's with a Query on its key), `raw` left out by the projection."""
    request: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": ", ".join(_SHOWN_ATTRIBUTES),
        "ExpressionAttributeNames": {"#field": "field"},  # `field` is a reserved word
    }
    if shard is None:
        pages = dynamodb.get_paginator("scan").paginate(**request)
    else:
        request["KeyConditionExpression"] = "pk = :shard"
        request["ExpressionAttributeValues"] = {":shard": {"S": shard}}
        pages = dynamodb.get_paginator("query").paginate(**request)
    for page in pages:
        yield from page["Items"]


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value.get("S", value.get("N")))


def _masked(text: str | None) -> str | None:
    return None if text is None else redact_card_numbers(text.encode()).decode("utf-8", "replace")


def _record(item: dict[str, Any]) -> dict[str, Any]:
    subsequence = _text(item, "subsequence")
    return {
        "shard_id": _text(item, "shard_id") or _text(item, "pk"),
        "sequence_number": _text(item, "sequence_number"),
        "subsequence": None if subsequence is None else int(subsequence),
        "whole_record": bool(item.get("whole_record", {}).get("BOOL", False)),
        "position": _text(item, "sk"),
        "reason": _text(item, "reason"),
        "field": _text(item, "field"),
        "detail": _masked(_text(item, "detail")),
        "partition_key": _masked(_text(item, "partition_key")),
        "event_id": _masked(_text(item, "event_id")),
        "arrival": _text(item, "arrival"),
        "arrival_ms": int(_text(item, "arrival_ms") or 0),
        "window_start": _text(item, "window_start"),
        "window_end": _text(item, "window_end"),
        "raw_bytes": int(_text(item, "raw_bytes") or 0),
        "raw_in_s3": _text(item, "raw_s3_key"),
    }


def print_records(
    records: list[dict[str, Any]], counts: Counter[str], console: Console, *, limit: int
) -> None:
    if not records:
        console.print("no quarantined records (with these filters): nothing was refused")
        return
    per_reason = Table(title=f"quarantined: {len(records)} record(s)")
    per_reason.add_column("reason", no_wrap=True)
    per_reason.add_column("records", justify="right", no_wrap=True)
    per_reason.add_column("shards", justify="right", no_wrap=True)
    for reason, count in sorted(counts.items()):
        shards = {r["shard_id"] for r in records if r["reason"] == reason}
        per_reason.add_row(reason, str(count), str(len(shards)))
    console.print(per_reason)
    shown = records[:limit]
    wide = console.width >= _WIDE
    days = {(record["arrival"] or "")[:10] for record in shown}
    # in 80 columns the window goes (it is in --json) and one day's arrivals show their time only
    short = not wide and len(days) == 1
    title = f"records (first {len(shown)}; --json lists all)" + (f", arrived {days.pop()}" if short else "")
    columns: list[Column | str] = [
        "arrival",
        "shard",
        *(["window"] if wide else []),
        "reason",
        "field",
        text("detail (masked)"),
    ]
    rows = [
        [
            _arrival(record["arrival"], short=short),
            record["shard_id"],
            *([f"{record['window_start']} .. {record['window_end']}"] if wide else []),
            record["reason"],
            record["field"] or "-",
            record["detail"] or "-",
        ]
        for record in shown
    ]
    print_table(console, title, columns, rows)


def _arrival(arrival: str | None, *, short: bool) -> str:
    if arrival is None:
        return "-"
    date, _, time_of_day = arrival.removesuffix("Z").partition("T")
    return time_of_day if short else f"{date} {time_of_day}"
