"""`salesstream produce`: point-of-sale traffic into the orders stream, through the producer.

The source is the simulated fleet (default) or `--from-file events.jsonl` (one event per line).
`--to table` writes them as items into the orders table instead (OrdersTableSource=on), as an
integration that keeps orders in DynamoDB would.
The spool of an earlier run to the same endpoint and stream is sent first: spools are keyed by
both (`<home>/spool/<target>-<host>-<port>--<stream>.jsonl`), so events kept for one target are
never sent to another. Exit status: 0 when everything accepted was acknowledged, 1 when events
were spooled (endpoint unreachable, retries exhausted), when every line of `--from-file` was
refused, or with `--strict` when any event was refused; 2 for a usage error.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from producer import Producer, ProducerResult, ProducerSettings
from producer.sender import PRODUCER_CLIENT_CONFIG
from producer.simulator import ID_STYLES, IDS_HELP, Fleet, FleetConfig, paced
from producer.spool import SpoolLocked
from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    add_endpoint_arguments,
    add_template_arguments,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    print_json,
    session,
    share,
    spool_path,
)
from salesstream.cli.commands.tables import number, print_table
from salesstream.core.currencies import format_minor

if TYPE_CHECKING:
    import argparse

STREAM: Final = "OrdersStream"  # the template's logical id of the orders stream
ZIPF: Final = 0.6  # store-size skew, the same default as `loadtest`'s
TABLE: Final = "OrdersTable"  # and of the optional orders table
_FILE_CHUNK: Final = 512
_SHOWN_REFUSALS: Final = 20
_SHOWN_STORES: Final = 10


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "produce",
        "push simulated or recorded order events into the stream",
        "Send point-of-sale order events through the producer (validation, card-number screen, "
        "KPL aggregation, retries, spool) into the orders stream of the running stack.",
        [
            ("5 s of a 20-store fleet at 500 events/s", ""),
            ("exactly 10,000 events, reproducible", "--count 10000 --seed 7"),
            ("recorded events, failing on any refused line", "--from-file events.jsonl --strict"),
            ("to LocalStack", "--target localstack --count 1000"),
        ],
    )
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    fleet = parser.add_argument_group("the simulated point-of-sale fleet")
    fleet.add_argument("--stores", type=positive_int, default=20, help="number of stores (default 20)")
    fleet.add_argument("--terminals", type=positive_int, default=3, help="terminals per store (default 3)")
    fleet.add_argument(
        "--rate", type=non_negative_float, default=500, help="events per second (default 500); 0 = flat out"
    )
    fleet.add_argument(
        "--duration",
        type=positive_float,
        default=5,
        metavar="SECONDS",
        help="seconds to produce for (default 5)",
    )
    fleet.add_argument(
        "--count",
        type=non_negative_int,
        metavar="N",
        help="exactly N events, as fast as possible (0: only what the spool holds)",
    )
    fleet.add_argument("--seed", type=int, help="random seed: same seed, same events and event ids")
    fleet.add_argument("--ids", choices=ID_STYLES, default="simulator", help=IDS_HELP)
    fleet.add_argument("--refund-share", type=share, default=0.03, help="share of refunds (default 0.03)")
    fleet.add_argument(
        "--zipf", type=non_negative_float, default=ZIPF, help=f"store-size skew exponent (default {ZIPF})"
    )
    source = parser.add_argument_group("recorded events")
    source.add_argument("--from-file", type=Path, metavar="EVENTS.jsonl", help="send these events instead")
    source.add_argument(
        "--strict", action="store_true", help="exit 1 if any event is refused (default: only if all are)"
    )
    sending = parser.add_argument_group("the producer")
    sending.add_argument("--no-aggregate", action="store_true", help="one Kinesis record per event")
    sending.add_argument(
        "--no-compress",
        action="store_true",
        help="send plain KPL aggregates, not salesstream's compressed envelope (default: compressed)",
    )
    sending.add_argument(
        "--spool",
        type=Path,
        help="where unsendable events wait (default: one file per endpoint and stream in the state home)",
    )
    sending.add_argument(
        "--linger", type=non_negative_float, metavar="SECONDS", help="max buffering time (default 0.1)"
    )
    parser.add_argument(
        "--to",
        choices=("stream", "table"),
        default="stream",
        help="the orders stream (default), or the orders table (needs --param OrdersTableSource=on)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
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
        fleet = Fleet(
            FleetConfig(args.stores, args.terminals, seed, args.refund_share, args.zipf, ids=args.ids)
        )
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
    from salesstream.cli.table_writer import TableWriteFailed, TableWriter

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
        print_json(result)
    else:
        Console().print(
            f"salesstream produce -> {table}: {writer.result.written} items written, {refusals} refused "
            f"({writer.result.retries} retried calls)"
        )
    # the same exit codes as the stream path: refused lines fail with --strict, or when none went in
    return 1 if refusals and (args.strict or not writer.result.written) else 0


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
        spool = args.spool or spool_path(current.endpoint, stream)
        if args.spool is None:
            _mention_other_spools(spool, stderr)
        producer = Producer(client, stream, spool, settings=settings)
        try:
            producer.open()
        except SpoolLocked as error:
            raise CommandError(str(error)) from None
        except OSError as error:
            raise CommandError(f"cannot use the spool {spool}: {error.strerror or error}") from None
        try:
            with producer, _progress(stderr, total, f"producing to {stream}") as advance:
                refusals = _send_all(producer, source, advance, stderr if args.from_file else None)
        except OSError as error:  # writing the spool failed: say so, never pretend it was kept
            raise CommandError(
                f"cannot write the spool {spool}: {error.strerror or error}; "
                "events not acknowledged by then were not kept"
            ) from None
        result = producer.result
    if refusals > _SHOWN_REFUSALS:
        stderr.print(f"... and {refusals - _SHOWN_REFUSALS} more refused events (counts in the summary)")
    elapsed = round(time.monotonic() - started, 3)
    if args.json:
        print_json({"source": source_name, "elapsed_seconds": elapsed, **result.model_dump(mode="json")})
    else:
        _print_summary(Console(), result, source_name, elapsed)
    if result.error:
        stderr.print(
            f"salesstream produce: {result.error}; {result.spooled} events spooled to "
            f"{result.spool_path}, the next run sends them first",
            highlight=False,
        )
    refused_all = args.from_file is not None and refusals > 0 and result.accepted == 0
    if refused_all or (args.strict and refusals):
        what = "every event was refused" if refused_all else f"{refusals} event(s) refused (--strict)"
        stderr.print(f"salesstream produce: {what}; the reasons are listed above", highlight=False)
        return 1
    return 0 if result.ok else 1


def _mention_other_spools(ours: Path, stderr: Console) -> None:
    """Events kept for another endpoint or stream are not sent here: say they wait."""
    others = [
        path for path in sorted(ours.parent.glob("*.jsonl")) if path != ours and path.stat().st_size > 0
    ]
    if others:
        names = ", ".join(path.name for path in others)
        stderr.print(
            f"note: spools for other endpoints or streams still hold events: {names}", highlight=False
        )


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
    counts = [
        ("accepted", result.accepted),
        ("sent (acknowledged)", result.sent),
        ("resent", result.resent),
        ("spooled", result.spooled),
        ("from the spool", result.from_spool),
        ("rejected", result.rejected_total),
        *((f"  {reason}", count) for reason, count in result.rejected.items()),
        ("throttled entries", result.throttled),
        ("lost responses", result.lost_responses),
        ("landed elsewhere (reshard)", result.landed_elsewhere),
    ]
    console.print(f"salesstream produce -> {result.stream} ({source}, {elapsed:.1f} s)", highlight=False)
    print_table(console, None, ["", number("events")], [[name, str(value)] for name, value in counts])
    shards = [
        [
            shard_id,
            str(count.records),
            str(count.payload_units),
            str(count.events),
            f"{count.events / count.records:.1f}" if count.records else "-",
        ]
        for shard_id, count in result.shards.items()
    ]
    if not result.shards:
        return  # nothing was acknowledged: the counts above say why
    print_table(
        console,
        "acknowledged per shard" + (" (compressed aggregates)" if result.compressed else ""),
        ["shard", *map(number, ("records", "payload units", "events", "events/record"))],
        shards,
    )

    by_currency: dict[str, list[int]] = {}
    for row in result.tally:
        totals = by_currency.setdefault(row.currency, [0, 0, 0, 0])
        for position, value in enumerate((row.orders, row.refunds, row.gross_minor, row.refunds_minor)):
            totals[position] += value
    sales = [
        [
            currency,
            str(orders),
            str(refunds),
            format_minor(gross, currency),
            format_minor(refunded, currency),
            format_minor(gross - refunded, currency),
        ]
        for currency, (orders, refunds, gross, refunded) in sorted(by_currency.items())
    ]
    print_table(
        console,
        "acknowledged sales",
        ["currency", *map(number, ("orders", "refunds", "gross", "refunded", "net"))],
        sales,
    )
    stores = [
        [row.store_id, str(row.orders), str(row.refunds), format_minor(row.net_minor, row.currency)]
        for row in sorted(result.tally, key=lambda r: -r.orders)[:_SHOWN_STORES]
    ]
    print_table(
        console,
        f"top {_SHOWN_STORES} stores by orders",
        ["store", *map(number, ("orders", "refunds", "net"))],
        stores,
    )
