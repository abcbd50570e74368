"""`salesstream demo`: the main job, end to end, on the embedded emulator.

Starts a private embedded stack from the template (short windows), runs the consumers (the
aggregator and the archiver) with the local event-source-mapping runtime on the wall clock,
drives a simulated fleet of stores through the producer for a few seconds, waits until the last
window has closed, prints the speed layer's running totals, checks them against the producer's
own tally of what the stream acknowledged, then takes a batch snapshot from the archive and
reconciles it with the speed layer. Exit 0 only if the speed layer agrees with the tally to the
cent and the reconciliation has no unexplained difference.

`--source table` writes the fleet's events into the orders table instead (OrdersTableSource=on):
the speed layer is checked against the table writer's tally, and the archiver's table mapping
keeps the table's events in the same archive, so the reconciliation covers them
(docs/dynamodb-source.md).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Final, Protocol

from rich.console import Console

from producer.producer import Producer
from producer.sender import PRODUCER_CLIENT_CONFIG
from producer.settings import ProducerSettings
from producer.simulator import ID_STYLES, IDS_HELP, Fleet, FleetConfig, paced
from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    add_template_arguments,
    handlers_print_to_stderr,
    positive_float,
    positive_int,
    print_json,
    session,
    share,
    spool_path,
)
from salesstream.cli.commands.reconcile import print_reconciliation
from salesstream.cli.commands.report import print_tables, report_from_items
from salesstream.core.batch import Status
from salesstream.core.checks import compare_totals
from salesstream.core.currencies import format_minor
from salesstream.core.windows import rfc3339
from salesstream.runtime import Runtime, RuntimeOptions, WallClock
from salesstream.runtime.environment import function_environment_set
from salesstream.runtime.log import logger as runtime_logger

if TYPE_CHECKING:
    import argparse

    from producer.result import StoreTally

STREAM: Final = "OrdersStream"
_HORIZON_GRACE_SECONDS: Final = 2.5
# The handlers log a JSON line and EMF metrics per invocation: right on AWS, noise in a demo.
_QUIET_HANDLERS: Final = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}


def register(subparsers: Any) -> None:
    from salesstream.cli.commands.up import add_emulator_process_argument

    parser = add_command(
        subparsers,
        "demo",
        "the whole pipeline on the embedded emulator, checked against the producer's tally",
        "Start a private embedded stack (4 shards, 5 s windows), run the consumers, drive a "
        "simulated fleet through the producer, wait for the last window, then check the speed "
        "layer against the producer's tally to the cent and reconcile it with a batch snapshot. "
        "Exit 0 only if both agree.",
        [("the default demo (about 30 s)", ""), ("longer and busier", "--duration 20 --rate 5000")],
    )
    add_template_arguments(parser)
    parser.set_defaults(shards=4, window_seconds=5, stage="demo", target="embedded", endpoint=None)
    fleet = parser.add_argument_group("simulated fleet")
    fleet.add_argument("--stores", type=positive_int, default=40, help="number of stores (default 40)")
    fleet.add_argument("--terminals", type=positive_int, default=3, help="terminals per store (default 3)")
    fleet.add_argument("--rate", type=positive_float, default=2000, help="events per second (default 2000)")
    fleet.add_argument(
        "--duration", type=positive_float, default=8, metavar="SECONDS", help="seconds of traffic (default 8)"
    )
    fleet.add_argument("--seed", type=int, default=7)
    fleet.add_argument("--refund-share", type=share, default=0.03)
    fleet.add_argument("--ids", choices=ID_STYLES, default="simulator", help=IDS_HELP)
    parser.add_argument(
        "--source", choices=("stream", "table"), default="stream", help="where the orders go (default stream)"
    )
    add_emulator_process_argument(parser, default=False)
    parser.add_argument("--verbose", action="store_true", help="keep the handlers' logs and metrics")
    parser.add_argument(
        "--json", action="store_true", help="print the verdict as one JSON object (the tables go to stderr)"
    )
    parser.set_defaults(run=run, region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def run(args: argparse.Namespace) -> int:
    # a CI log is not a terminal: give tables room instead of rich's 80-column default
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 160)
    if not args.verbose:
        os.environ.update(_QUIET_HANDLERS)
        runtime_logger.setLevel("WARNING")
    started = time.monotonic()
    if args.source == "table":
        args.param = [*args.param, "OrdersTableSource=on"]
    with (
        handlers_print_to_stderr() if args.json else contextlib.nullcontext(),
        session(args, reuse_running=False, emulator_in_subprocess=args.emulator_process) as current,
    ):
        template, endpoint = current.template, current.endpoint
        window = int(template.parameters["WindowSeconds"])
        console.print(
            f"[bold]salesstream demo[/]: {args.stores} stores, {args.rate:g} events/s for "
            f"{args.duration:g} s into {template.parameters['ShardCount']} shards, {window} s windows, "
            f"on the embedded emulator at {endpoint.url}"
        )
        # the scheduled snapshot is run by hand below, once the last window has closed
        runtime = Runtime(template, endpoint, clock=WallClock(), options=RuntimeOptions(run_schedules=False))
        runtime.start()
        try:
            result = (
                _produce_to_table(args, endpoint, template.physical_name("OrdersTable"), console)
                if args.source == "table"
                else _produce(args, endpoint, template.physical_name(STREAM), console)
            )
            _wait_for_last_window(runtime, window, console)
        finally:
            runtime.stop()
        errors = runtime.stats().errors
        items = _scan(endpoint.client("dynamodb"), template.physical_name("AggregatesTable"))
        report = report_from_items(items)
        print_tables(report, console)
        counted = _verdict(result, report, errors, time.monotonic() - started, console)
        reconciled = _snapshot_and_reconcile(endpoint, template, console)
    if args.json:
        print_json(
            {
                "passed": not (counted or reconciled),
                "speed_layer_equals_tally": not counted,
                "reconciled": not reconciled,
                "events_sent": result.sent,
                "stores": len(report["stores"]),
                "currencies": report["currencies"],
                "consumer_errors": errors,
                "elapsed_seconds": round(time.monotonic() - started, 3),
            }
        )
    return counted or reconciled


def _snapshot_and_reconcile(endpoint: Any, template: Any, console: Console) -> int:
    """The batch layer's view of the same run: recompute from the archive, compare, explain."""
    # a quiet shard's archive counts as complete up to a moment ago: let that moment pass the
    # last window's end, so the snapshot's horizon covers the whole run
    time.sleep(_HORIZON_GRACE_SECONDS)
    # the snapshot function's modules read its environment (log level, service name) when they
    # are imported: it is set while they are imported and run, as the scheduled function's is
    with (
        function_environment_set(template.function("SnapshotFunction").environment),
        console.status("batch snapshot from the archive, then the reconciliation ..."),
    ):
        from consumers.batch.resources import BatchResources
        from consumers.batch.snapshot import SnapshotUnfinished, snapshot_and_reconcile

        try:
            snapshot, reconciliation = snapshot_and_reconcile(
                BatchResources.from_template(endpoint, template)
            )
        except SnapshotUnfinished as unfinished:
            raise CommandError(str(unfinished)) from None
    counts = snapshot.counts
    console.print(
        f"snapshot {snapshot.snapshot_id}: {counts.get('events', 0):,} events recomputed from the "
        f"archive, complete up to {rfc3339(snapshot.horizon_ms)}"
    )
    print_reconciliation(reconciliation, console)
    if reconciliation.summary.status is Status.UNEXPLAINED:
        console.print("[bold red]RECONCILIATION FAILED[/]: the speed layer and the batch layer disagree")
        return 1
    return 0


class _Tallied(Protocol):
    """What the verdict compares with: the producer's result or the table writer's."""

    @property
    def tally(self) -> list[StoreTally]: ...

    @property
    def sent(self) -> int: ...


def _fleet(args: argparse.Namespace) -> Fleet:
    return Fleet(
        FleetConfig(
            stores=args.stores,
            terminals_per_store=args.terminals,
            seed=args.seed,
            refund_share=args.refund_share,
            ids=args.ids,
        )
    )


def _produce_to_table(args: argparse.Namespace, endpoint: Any, table: str, console: Console) -> _Tallied:
    from salesstream.cli.table_writer import TableWriter

    writer = TableWriter(endpoint.client("dynamodb"), table)
    with console.status("writing orders to the table ...") as status:
        for chunk in paced(_fleet(args), rate=args.rate, duration=args.duration):
            writer.submit_many(chunk)
            status.update(f"writing orders to the table ... {writer.result.written:,} items written")
    result = writer.result
    console.print(f"written: {result.written:,} items into {table}, {sum(result.rejected.values())} refused")
    return result


def _produce(args: argparse.Namespace, endpoint: Any, stream: str, console: Console) -> _Tallied:
    fleet = _fleet(args)
    spool = spool_path(endpoint, stream)
    spool.unlink(missing_ok=True)  # a private stack: nothing of an earlier run belongs here
    producer = Producer(
        endpoint.client("kinesis", PRODUCER_CLIENT_CONFIG), stream, spool, settings=ProducerSettings()
    )
    with console.status("producing ...") as status, producer:
        for chunk in paced(fleet, rate=args.rate, duration=args.duration):
            producer.submit_many(chunk)
            status.update(f"producing ... {producer.result.accepted:,} events accepted")
    result = producer.result
    console.print(
        f"produced: {result.accepted:,} accepted, {result.sent:,} acknowledged by the stream, "
        f"{result.spooled} spooled, {result.rejected_total} refused"
    )
    if not result.ok:
        raise CommandError(f"the producer could not send everything: {result.error}")
    return result


def _wait_for_last_window(runtime: Runtime, window_seconds: int, console: Console) -> None:
    """Windows close by the wall clock: the last one ends at most a window after the last record,
    plus a poll or two. Give it generous slack before calling the pipeline stuck."""
    deadline = time.monotonic() + window_seconds + 60
    with console.status("waiting for the last window to close ..."):
        while not runtime.is_idle():
            if time.monotonic() > deadline:
                raise CommandError("the consumers did not finish within a minute of the last window")
            time.sleep(0.25)


def _scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return items


def _verdict(
    result: _Tallied, report: dict[str, Any], errors: list[str], elapsed: float, console: Console
) -> int:
    expected: dict[str, dict[str, dict[str, int]]] = {}
    for row in result.tally:
        expected.setdefault(row.store_id, {})[row.currency] = row.model_dump()
    counted = {
        store: {currency: totals for currency, totals in by_currency.items()}
        for store, by_currency in report["stores"].items()
    }
    mismatches = compare_totals(expected, counted)
    for error in errors:
        console.print(f"[red]consumer error:[/] {error}")
    if mismatches:
        console.print(
            f"[bold red]MISMATCH[/]: {len(mismatches)} differences between the stream and the speed layer"
        )
        for mismatch in mismatches[:20]:
            console.print(
                f"  {mismatch.store_id} {mismatch.currency} {mismatch.field}: "
                f"sent {mismatch.expected}, counted {mismatch.actual}"
            )
        return 1
    net: dict[str, int] = {}
    for by_currency in expected.values():
        for currency, totals in by_currency.items():
            net[currency] = net.get(currency, 0) + totals["gross_minor"] - totals["refunds_minor"]
    nets = ", ".join(format_minor(amount, currency) for currency, amount in sorted(net.items()))
    console.print(
        f"[bold green]OK[/]: the speed layer equals the producer's tally to the cent for "
        f"{len(expected)} stores ({result.sent:,} events; net {nets}) in {elapsed:.1f} s"
    )
    return 0
