"""`salesstream produce`: point-of-sale traffic into the orders stream, through the producer.

The source is the simulated fleet (default) or `--from-file events.jsonl` (one event per line).
`--to table` writes them as items into the orders table instead (OrdersTableSource=on), as an
integration that keeps orders in DynamoDB would.
The spool of an earlier run is sent first. Exit status: 0 when everything accepted was
acknowledged, 1 when events were spooled (endpoint unreachable, retries exhausted), 2 for a
usage error.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from producer import Producer, ProducerResult, ProducerSettings
from producer.sender import PRODUCER_CLIENT_CONFIG
from producer.simulator import Fleet, FleetConfig, paced
from producer.spool import SpoolLocked
from salesstream.commands.common import (
    STATE_DIR,
    CommandError,
    add_endpoint_arguments,
    add_template_arguments,
    session,
)
from salesstream.core.currencies import format_minor

if TYPE_CHECKING:
    import argparse

STREAM: Final = "OrdersStream"  # the template's logical id of the orders stream
TABLE: Final = "OrdersTable"  # and of the optional orders table
_FILE_CHUNK: Final = 512
_SHOWN_REFUSALS: Final = 20
_SHOWN_STORES: Final = 10


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("produce", help="push simulated or recorded order events into the stream")
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    fleet = parser.add_argument_group("the simulated point-of-sale fleet")
    fleet.add_argument("--stores", type=int, default=20, help="number of stores (default 20)")
    fleet.add_argument("--terminals", type=int, default=3, help="terminals per store (default 3)")
    fleet.add_argument("--rate", type=float, default=500, help="events per second; 0 = as fast as possible")
    fleet.add_argument("--duration", type=float, default=5, help="seconds to produce for (default 5)")
    fleet.add_argument("--count", type=int, help="exactly this many events, as fast as possible")
    fleet.add_argument("--seed", type=int, help="random seed: same seed, same events and event ids")
    fleet.add_argument("--refund-share", type=float, default=0.03, help="share of refunds (default 0.03)")
    fleet.add_argument("--zipf", type=float, default=1.1, help="store-size skew exponent (default 1.1)")
    source = parser.add_argument_group("recorded events")
    source.add_argument("--from-file", type=Path, metavar="EVENTS.jsonl", help="send these events instead")
    sending = parser.add_argument_group("the producer")
    sending.add_argument("--no-aggregate", action="store_true", help="one Kinesis record per event")
    sending.add_argument(
        "--no-compress",
        action="store_true",
        help="send plain KPL aggregates, not salesstream's compressed envelope (default: compressed)",
    )
    sending.add_argument(
        "--spool", type=Path, default=STATE_DIR / "spool.jsonl", help="where unsendable events wait"
    )
    sending.add_argument("--linger", type=float, metavar="SECONDS", help="max buffering time (default 0.1)")
    parser.add_argument(
        "--to",
        choices=("stream", "table"),
        default="stream",
        help="the orders stream (default), or the orders table (needs --param OrdersTableSource=on)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def _from_file(path: Path) -> Iterator[list[bytes]]:
    """Chunks of lines (a blank line is an event too: refused as not_json, so line numbers hold)."""
    try:
        events = path.open("rb")
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    with events:
        lines = (line.rstrip(b"\r\n") for line in events)
        while chunk := list(itertools.islice(lines, _FILE_CHUNK)):
            yield chunk


def _source(args: argparse.Namespace) -> tuple[Iterator[list[bytes]], int | None, str]:
    """Chunks of raw events, how many there will be (if known), and a name for the summary."""
    if args.from_file is not None:
        return _from_file(args.from_file), None, str(args.from_file)
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    try:
        fleet = Fleet(FleetConfig(args.stores, args.terminals, seed, args.refund_share, args.zipf))
    except ValueError as error:
        raise CommandError(str(error)) from None
    name = f"simulator(stores={args.stores}, seed={seed})"
    if args.count is not None:
        full, rest = divmod(args.count, _FILE_CHUNK)
        sizes = [_FILE_CHUNK] * full + ([rest] if rest else [])
        return (fleet.events(size) for size in sizes), args.count, name
    total = round(args.rate * args.duration) if args.rate > 0 else None
    return paced(fleet, rate=args.rate, duration=args.duration), total, name


@contextlib.contextmanager
def _progress(console: Console, total: int | None, what: str) -> Iterator[Callable[[int], None]]:
    if not console.is_terminal:
        yield lambda _: None
        return
    columns = [TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(what, total=total)
        yield lambda done: progress.advance(task, done)


def _run_to_table(args: argparse.Namespace) -> int:
    from salesstream.table_writer import TableWriteFailed, TableWriter

    source, total, source_name = _source(args)
    stderr = Console(stderr=True, soft_wrap=True)
    started = time.monotonic()
    with session(args, resolve_account=False) as current:
        if TABLE not in {table.logical_id for table in current.template.tables()}:
            raise CommandError("the template has no orders table: pass --param OrdersTableSource=on")
        table = current.template.physical_name(TABLE)
        writer = TableWriter(current.endpoint.client("dynamodb"), table)
        try:
            with _progress(stderr, total, f"writing to {table}") as advance:
                refusals = _send_all(writer, source, advance, stderr if args.from_file else None)
        except TableWriteFailed as error:
            raise CommandError(str(error)) from None
    result = {
        "source": source_name,
        "elapsed_seconds": round(time.monotonic() - started, 3),
        **writer.result.as_dict(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        Console().print(
            f"salesstream produce -> {table}: {writer.result.written} items written, {refusals} refused "
            f"({writer.result.retries} retried calls)"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.to == "table":
        return _run_to_table(args)
    explicit: dict[str, Any] = {"aggregate": not args.no_aggregate}  # given here: wins over the environment
    if args.no_compress:
        explicit["compress"] = False
    if args.linger is not None:
        explicit["linger_seconds"] = args.linger
    try:
        settings = ProducerSettings(**explicit)
    except ValidationError as error:
        raise CommandError(f"--linger: {error.errors()[0]['msg']}") from None
    source, total, source_name = _source(args)
    stderr = Console(stderr=True, soft_wrap=True)  # one message, one line
    started = time.monotonic()
    with session(args, resolve_account=False) as current:
        if current.started_here:
            stderr.print(
                "no `salesstream up` is running: started an in-process emulator; "
                "the data lives only for this command"
            )
        stream = current.template.physical_name(STREAM)
        client = current.endpoint.client("kinesis", PRODUCER_CLIENT_CONFIG)
        producer = Producer(client, stream, args.spool, settings=settings)
        try:
            producer.open()
        except SpoolLocked as error:
            raise CommandError(str(error)) from None
        except OSError as error:
            raise CommandError(f"cannot use the spool {args.spool}: {error.strerror or error}") from None
        try:
            with producer, _progress(stderr, total, f"producing to {stream}") as advance:
                refusals = _send_all(producer, source, advance, stderr if args.from_file else None)
        except OSError as error:  # writing the spool failed: say so, never pretend it was kept
            raise CommandError(
                f"cannot write the spool {args.spool}: {error.strerror or error}; "
                "events not acknowledged by then were not kept"
            ) from None
        result = producer.result
    if refusals > _SHOWN_REFUSALS:
        stderr.print(f"... and {refusals - _SHOWN_REFUSALS} more refused events (counts in the summary)")
    elapsed = round(time.monotonic() - started, 3)
    if args.json:
        print(
            json.dumps({"source": source_name, "elapsed_seconds": elapsed, **result.model_dump(mode="json")})
        )
    else:
        _print_summary(Console(), result, source_name, elapsed)
    if result.error:
        stderr.print(
            f"salesstream produce: {result.error}; {result.spooled} events spooled to "
            f"{result.spool_path}, the next run sends them first",
            highlight=False,
        )
    return 0 if result.ok else 1


class _Submitter(Protocol):
    def submit_many(self, raws: list[bytes]) -> Sequence[tuple[int, object]]: ...


def _send_all(
    producer: _Submitter,
    source: Iterator[list[bytes]],
    advance: Callable[[int], None],
    refusals_to: Console | None,
) -> int:
    """Submit every chunk; print the first refusals by line number (for a file); count them all."""
    line = refusals = 0
    for chunk in source:
        for index, refusal in producer.submit_many(chunk):
            refusals += 1
            if refusals_to is not None and refusals <= _SHOWN_REFUSALS:
                refusals_to.print(f"line {line + index + 1}: refused, {refusal}", highlight=False)
        line += len(chunk)
        advance(len(chunk))
    return refusals


def _print_summary(console: Console, result: ProducerResult, source: str, elapsed: float) -> None:
    counts = Table(
        title=f"salesstream produce -> {result.stream} ({source}, {elapsed:.1f} s)", show_header=False
    )
    for name, value in (
        ("accepted", result.accepted),
        ("sent (acknowledged)", result.sent),
        ("resent", result.resent),
        ("spooled", result.spooled),
        ("from the spool", result.from_spool),
        ("rejected", result.rejected_total),
        *((f"  {reason}", count) for reason, count in result.rejected.items()),
        ("throttled entries", result.throttled),
        ("lost responses", result.lost_responses),
        ("rerouted (reshard)", result.rerouted),
    ):
        counts.add_row(name, str(value))
    console.print(counts)

    shards = Table(
        "shard",
        "records",
        "payload units",
        "events",
        "events/record",
        title="acknowledged per shard" + (" (compressed aggregates)" if result.compressed else ""),
    )
    for shard_id, count in result.shards.items():
        per_record = f"{count.events / count.records:.1f}" if count.records else "-"
        shards.add_row(shard_id, str(count.records), str(count.payload_units), str(count.events), per_record)
    console.print(shards)

    by_currency: dict[str, list[int]] = {}
    for row in result.tally:
        totals = by_currency.setdefault(row.currency, [0, 0, 0, 0])
        for position, value in enumerate((row.orders, row.refunds, row.gross_minor, row.refunds_minor)):
            totals[position] += value
    sales = Table("currency", "orders", "refunds", "gross", "refunded", "net", title="acknowledged sales")
    for currency, (orders, refunds, gross, refunded) in sorted(by_currency.items()):
        sales.add_row(
            currency,
            str(orders),
            str(refunds),
            format_minor(gross, currency),
            format_minor(refunded, currency),
            format_minor(gross - refunded, currency),
        )
    console.print(sales)

    stores = Table("store", "orders", "refunds", "net", title=f"top {_SHOWN_STORES} stores by orders")
    for row in sorted(result.tally, key=lambda r: -r.orders)[:_SHOWN_STORES]:
        stores.add_row(
            row.store_id, str(row.orders), str(row.refunds), format_minor(row.net_minor, row.currency)
        )
    console.print(stores)
