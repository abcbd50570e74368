"""`salesstream loadtest`: a POS fleet through the whole speed layer at a chosen rate, measured,
checked event by event, and drawn (load_tests/loadtest.py does the work).

On the embedded target (default) it starts a private emulator in a child process (a core of its
own) with a fresh stack; with `--target localstack` or `--endpoint URL` it provisions a stack
named after the run (`--stage` to reuse one: event ids carry the run id, so nothing of an earlier
run is taken for a duplicate, and totals are compared as the difference the run made). The
consumers run in this process on the local event-source-mapping runtime.

`--source table` writes the fleet into the orders table by batch writes instead (the stack with
OrdersTableSource=on, load_tests/table_source.py); with `--faults`, the fault run on that source
(load_tests/faults/table_source.py).

The serving API runs in this process during the run (its visibility is probed through HTTP);
after it, unless `--no-reconcile` (default: on for runs of at most 2 minutes), the batch snapshot
and the reconciliation.

Writes reports/loadtest-<run id>/ (report.json, PNG charts, index.html), prints a summary and
the targets, exits 0 when every event was counted exactly once or quarantined as it should be,
archived, (when reconciled) the batch layer agrees, and every target that applies was met; 1
when not, 2 when the test could not run. The scale targets (20,000 events/s for 60 s, latency,
events per payload unit, cost) apply to the documented default run (`salesstream loadtest`, at
least 20,000 events/s for at least 60 s) or when `--check-targets` asks for them; on a smaller
run they are listed as not judged. `--json` prints the report as one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    add_endpoint_arguments,
    add_template_arguments,
    handlers_print_to_stderr,
    non_negative_float,
    positive_float,
    positive_int,
    session,
    share,
)
from salesstream.emulator.targets import Target
from salesstream.runtime.log import logger as runtime_logger

# The handlers log a JSON line and EMF metrics per invocation: right on AWS, noise under a
# progress display (and the same for every run, so it changes no comparison).
QUIET_HANDLERS: Final = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
# Without a fault profile; with one, the profile's values (each overridden by its option).
DEFAULTS: Final = {"shards": 12, "window_seconds": 60, "rate": 20_000, "stores": 1_000}
ZIPF: Final = 0.6  # store-size skew, the same default as `produce`'s
# Judged on every run, whatever its size (the other targets are the documented run's).
CORRECTNESS_TARGETS: Final = ("lost events", "double-counted events")


def _baseline(text: str) -> Any:
    from load_tests.report import baseline_argument  # imported when the flag is given: a fast CLI

    return baseline_argument(text)


def register(subparsers: Any) -> None:
    from salesstream.cli.commands.up import add_emulator_process_argument

    parser = add_command(
        subparsers,
        "loadtest",
        "drive a POS fleet through the pipeline at a chosen rate; measure, check, draw",
        "Drive a point-of-sale fleet through the whole speed layer at a chosen rate, check every "
        "event, measure latency and throughput, and write reports/loadtest-<run id>/. The scale "
        "targets are judged on the documented default run (20,000 events/s for 60 s) or with "
        "--check-targets; correctness is judged on every run.",
        [
            ("the documented run: 20,000 events/s for 60 s, targets judged", ""),
            ("a short smoke run", "--rate 2000 --duration 10"),
            ("100,000 events under the standard fault profile", "--faults standard --count 100000"),
        ],
    )
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    load = parser.add_argument_group("load")
    load.add_argument(
        "--rate",
        type=positive_float,
        help=f"events/s (a ramp's end, a day's peak; default {DEFAULTS['rate']:,})",
    )
    load.add_argument(
        "--duration",
        type=positive_float,
        default=60,
        metavar="SECONDS",
        help="seconds of traffic (default 60)",
    )
    load.add_argument(
        "--count",
        dest="orders",
        type=positive_int,
        metavar="N",
        help="size the run by events instead: duration = N / rate",
    )
    load.add_argument(
        "--orders", dest="orders", type=positive_int, help=argparse.SUPPRESS
    )  # the old spelling
    load.add_argument(
        "--check-targets",
        action="store_true",
        help="judge the scale targets on this run too (default: only on the documented default run)",
    )
    load.add_argument(
        "--faults",
        metavar="PROFILE",
        help="inject a fault profile's faults (none, standard, or a YAML file) and end with its "
        "count; the profile sizes the run (orders, shards, rate, stores, windows) unless given here",
    )
    shape = load.add_mutually_exclusive_group()
    shape.add_argument(
        "--ramp", type=non_negative_float, metavar="FROM", help="ramp linearly from FROM events/s to --rate"
    )
    shape.add_argument(
        "--day",
        action="store_true",
        help="one business day compressed into the run (opening hours per time zone)",
    )
    fleet = parser.add_argument_group("fleet")
    fleet.add_argument(
        "--stores", type=positive_int, help=f"number of stores (default {DEFAULTS['stores']:,})"
    )
    fleet.add_argument("--terminals", type=positive_int, default=4, help="terminals per store (default 4)")
    fleet.add_argument("--seed", type=int, default=1)
    fleet.add_argument("--refund-share", type=share, default=0.03, help="share of refunds (default 0.03)")
    fleet.add_argument(
        "--zipf",
        type=non_negative_float,
        default=ZIPF,
        help=f"store-size skew exponent: the k-th store sells 1/k^zipf (default {ZIPF})",
    )
    fleet.add_argument("--max-lines", type=positive_int, default=5, help="basket sizes 1..N lines")
    fleet.add_argument(
        "--ids",
        choices=("simulator", "realistic"),
        default="simulator",
        help="realistic: UUID v4 event ids, store-prefixed hex order ids, EAN-13 SKUs (default: simulator)",
    )
    fleet.add_argument(
        "--skewed-clocks", type=share, default=0.01, help="share of terminals with skewed clocks"
    )
    fleet.add_argument(
        "--bad-share", type=share, default=0.001, help="share of corrupted events put past the producer"
    )
    load.add_argument(
        "--source",
        choices=("stream", "table"),
        default="stream",
        help="where the fleet's events go: the Kinesis stream through the producer (default), or "
        "the orders table by batch writes (OrdersTableSource=on)",
    )
    load.add_argument(
        "--drain-timeout",
        type=positive_float,
        default=120,
        metavar="SECONDS",
        help="how long the consumers may take to finish after the last window (default 120)",
    )
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument(
        "--reconcile",
        action="store_true",
        default=None,  # None: on for runs of at most 2 minutes
        help="after the run, the batch snapshot and the reconciliation; an unexplained difference fails "
        "the run (default for runs of at most 2 minutes)",
    )
    batch.add_argument("--no-reconcile", dest="reconcile", action="store_false")
    out = parser.add_argument_group("output")
    out.add_argument("--run-id", help="default: random; salts the event ids")
    out.add_argument("--out", type=Path, help="report folder (default reports/loadtest-<run id>)")
    add_emulator_process_argument(parser, default=True)
    out.add_argument(
        "--baseline",
        type=_baseline,
        metavar="REPORT_JSON",
        help="compare with an earlier run's report.json",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the report as one JSON object (the summary goes to stderr)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from load_tests.config import TARGET_RATE, TARGET_SECONDS, LoadTestConfig
    from load_tests.faultrun import FaultRun
    from load_tests.faults.profile import FaultProfile, UnknownProfile
    from load_tests.faults.table_source import TableFaultRun
    from load_tests.loadtest import LoadTest, LoadTestError
    from load_tests.meters import RequestMeter
    from load_tests.profile import Shape
    from load_tests.report import judging_only, print_summary, write_report
    from salesstream.emulator.provision import provision

    try:
        profile = FaultProfile.load(args.faults).sized(args.orders) if args.faults else None
    except UnknownProfile as error:
        raise CommandError(str(error)) from None
    sized = DEFAULTS if profile is None else profile.model_dump(include=set(DEFAULTS))
    for name, value in sized.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    orders = args.orders or (profile.orders if profile else None)
    if profile and profile.batch_size:
        # the profile's small batches give its per-invocation faults their chances, on either source
        for parameter in ("BatchSize", "TableBatchSize"):
            if not any(p.startswith(f"{parameter}=") for p in args.param):
                args.param.append(f"{parameter}={profile.batch_size}")
    if orders is not None:
        args.duration = orders / args.rate
    if args.source == "table" and "OrdersTableSource=on" not in args.param:
        args.param.append("OrdersTableSource=on")
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 160)
    run_id = args.run_id or uuid.uuid4().hex[:12]
    if args.stage is None:
        args.stage = f"lt{run_id[:8].lower()}"
    folder = args.out or Path("reports") / f"loadtest-{run_id}"
    os.environ.update(QUIET_HANDLERS)
    runtime_logger.setLevel("WARNING")
    shape = Shape.DAY if args.day else Shape.RAMP if args.ramp is not None else Shape.FLAT
    try:
        config = LoadTestConfig(
            run_id=run_id,
            source=args.source,
            shape=shape,
            rate=args.rate,
            ramp_from=args.ramp or 0,
            duration=args.duration,
            stores=args.stores,
            terminals=args.terminals,
            seed=args.seed,
            refund_share=args.refund_share,
            zipf_exponent=args.zipf,
            max_lines=args.max_lines,
            skewed_clock_share=args.skewed_clocks,
            ids=args.ids,
            bad_share=0 if profile else args.bad_share,
            drain_timeout=args.drain_timeout,  # a fault run puts every kind of bad input
            # a fault run's verdict needs the reconciliation, whatever its length
            reconcile=True if profile and args.reconcile is None else args.reconcile,
            command=shlex.join(["salesstream", *sys.argv[1:]]),
        )
    except ValueError as error:
        raise CommandError(f"invalid load test: {error}") from None
    meter = RequestMeter()
    # installed before any client exists: the producer's, the runtime's and the handlers' are counted
    with (
        handlers_print_to_stderr() if args.json else contextlib.nullcontext(),
        meter.installed(),
        session(args, reuse_running=False, emulator_in_subprocess=args.emulator_process) as current,
    ):
        if current.endpoint.target is Target.AWS:
            raise CommandError(
                "loadtest runs the consumers on the local runtime: use the embedded target, "
                "LocalStack or --endpoint"
            )
        if not current.started_here:
            provision(current.template, current.endpoint)
        console.print(
            f"[bold]salesstream loadtest[/] {run_id}: {shape.value} {args.rate:,.0f} events/s "
            f"for {args.duration:g} s, "
            f"{args.stores:,} stores, {current.template.parameters['ShardCount']} shards, "
            f"{current.template.parameters['WindowSeconds']} s windows, at {current.endpoint.url or 'AWS'}"
        )
        where = (config, current.template, current.endpoint, meter, console)
        fault_run = TableFaultRun if args.source == "table" else FaultRun
        test = (
            LoadTest(*where, spool=folder / "spool.jsonl")
            if profile is None
            else fault_run(profile, *where, spool=folder / "spool.jsonl")
        )
        folder.mkdir(parents=True, exist_ok=True)
        try:
            report = test.run()
        except LoadTestError as error:
            raise CommandError(str(error)) from error
    scale_targets = args.check_targets or (
        profile is None and args.rate >= TARGET_RATE and args.duration >= TARGET_SECONDS
    )
    report = judging_only(report, lambda target: scale_targets or target.name in CORRECTNESS_TARGETS)
    page = write_report(report, folder, args.baseline)
    print_summary(report, console, args.baseline)
    if not scale_targets:
        console.print(
            f"targets marked 'not judged' apply to the documented run ({TARGET_RATE:,} events/s for "
            f"{TARGET_SECONDS} s); --check-targets judges them on this one",
            highlight=False,
        )
    console.print(f"report: {folder / 'report.json'} and {page}")
    if args.json:
        print(report.model_dump_json(), flush=True)
    if report.faults is not None and not report.faults.passed:
        console.print(f"[bold red]FAULT RUN FAILED[/]: {'; '.join(report.faults.failures)}")
        return 1
    if not report.passed:
        console.print(
            "[bold red]NOT CORRECT[/]: events were lost, counted twice, misfiled or not archived, or the "
            "batch layer disagrees; see the report"
        )
        return 1
    missed = [t.name for t in report.targets if t.applies and not t.met]
    if missed:
        console.print(f"[bold red]TARGETS MISSED[/]: {'; '.join(missed)}")
        return 1
    return 0
