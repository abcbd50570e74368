"""`salesstream consume`: run the template's Kinesis event source mappings with the local runtime.

Against the embedded stack a running `salesstream up` recorded (or one of its own for the
duration of the command), LocalStack (`--target localstack`), any endpoint (`--endpoint`), or an
AWS account for reading (`--target aws`; the runtime's checkpoint table is created there if
missing). Runs until interrupted, for `--for SECONDS`, or `--until-idle`: every shard read, no
window left open. Writes a stats snapshot to `<home>/runtime-stats.json` as it runs.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console

from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    add_endpoint_arguments,
    add_template_arguments,
    handlers_print_to_stderr,
    positive_float,
    print_json,
    session,
    stats_file,
)
from salesstream.cli.commands.tables import number, print_table

if TYPE_CHECKING:
    import argparse

    from salesstream.cli.commands.common import Session
    from salesstream.runtime import Runtime, RuntimeStats

_STATS_EVERY_SECONDS = 2.0


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("event source mappings (salesstream/runtime)")
    group.add_argument(
        "--function",
        action="append",
        metavar="LOGICAL_ID",
        help="run only this function's mappings; repeatable (default: every function)",
    )
    group.add_argument(
        "--handler",
        action="append",
        default=[],
        metavar="LOGICAL_ID=MODULE.ATTR",
        help="invoke this callable instead of the function's template Handler; repeatable",
    )
    group.add_argument(
        "--final-with-records",
        action="store_true",
        help="deliver a window's last records in its final invocation (default: none)",
    )


def build_runtime(args: argparse.Namespace, current: Session) -> Runtime:
    """The runtime for a command's session; a bad template or handler is a CommandError."""
    from salesstream.runtime import Runtime, RuntimeConfigError, RuntimeOptions
    from salesstream.runtime.invoker import resolve_handler

    try:
        handlers = {}
        for item in args.handler:
            function, sep, path = item.partition("=")
            if not sep:
                raise CommandError(f"--handler needs LOGICAL_ID=MODULE.ATTR, got {item!r}")
            handlers[function] = resolve_handler(path, function)
        return Runtime(
            current.template,
            current.endpoint,
            handlers=handlers,
            functions=args.function,
            options=RuntimeOptions(final_invocation_carries_records=args.final_with_records),
        )
    except RuntimeConfigError as error:
        raise CommandError(str(error)) from error


def stats_writer(every: float = _STATS_EVERY_SECONDS) -> Any:
    """An on_tick callback that writes the stats snapshot at most every `every` seconds."""
    last = [0.0]

    def write(runtime: Runtime) -> None:
        if time.monotonic() - last[0] >= every:
            runtime.write_stats(stats_file())
            last[0] = time.monotonic()

    return write


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "consume",
        "run the event source mappings (tumbling windows included)",
        "Run the template's Kinesis event source mappings with the local runtime: each shard is "
        "read, its records passed to the function's handler in tumbling windows, checkpointed.",
        [
            ("until every shard is read and no window is open", "--until-idle"),
            ("only the aggregator, for 30 s", "--function AggregatorFunction --for 30"),
        ],
    )
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    add_runtime_arguments(parser)
    parser.add_argument(
        "--for", dest="seconds", type=positive_float, metavar="SECONDS", help="stop after this long"
    )
    parser.add_argument(
        "--until-idle", action="store_true", help="stop once every shard is read and no window is open"
    )
    parser.add_argument("--json", action="store_true", help="print the final stats as one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with handlers_print_to_stderr(), session(args) as current:
        if current.started_here:
            print(
                "salesstream consume: no `salesstream up` is running; using a private embedded stack "
                "whose data lives only for this command",
                file=sys.stderr,
            )
        runtime = build_runtime(args, current)
        signal.signal(signal.SIGTERM, lambda *_: runtime.request_stop())
        with contextlib.suppress(KeyboardInterrupt):  # run() stops the workers after their invocation
            runtime.run(seconds=args.seconds, until_idle=args.until_idle, on_tick=stats_writer())
        runtime.write_stats(stats_file())
        stats = runtime.stats()
    if args.json:
        print_json(stats.as_dict())
    else:
        print_stats(stats)
    return 1 if stats.errors else 0


def print_stats(stats: RuntimeStats) -> None:
    rows = [
        [
            shard.mapping,
            shard.shard_id + (" (finished)" if shard.finished else ""),
            str(shard.records_read),
            str(shard.records_delivered),
            str(shard.records_filtered),
            str(shard.records_discarded),
            str(shard.invocations),
            str(shard.function_errors),
            str(shard.windows_closed),
            str(shard.millis_behind_latest if shard.millis_behind_latest is not None else "-"),
        ]
        for shard in stats.shards
    ]
    numbers = ("read", "delivered", "filtered", "discarded", "invocations", "errors", "windows", "behind ms")
    console = Console()
    print_table(console, "event source mappings", ["mapping", "shard", *map(number, numbers)], rows, keys=2)
    for error in stats.errors:
        console.print(f"[red]error:[/red] {error}")
