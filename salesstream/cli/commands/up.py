"""`salesstream up`: the embedded stack (or LocalStack), provisioned from the template.

Prints one line of JSON (endpoint_url, stream, tables, ...) once ready, records it in
`<home>/stack.json` for the other commands (the home: `salesstream.cli.commands.common.state_home`),
and runs until interrupted or `salesstream down`. One `up` per home: a second is refused while
the first runs (a lock it holds for its life). Unless `--no-consumers`, it also runs the
template's event source mappings with the local runtime (as `salesstream consume` does), writing
their stats to `<home>/runtime-stats.json`. Unless `--no-serve`, it serves the API and the
dashboard on 127.0.0.1 (as `salesstream serve` does; `api_url` in the JSON line).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    add_endpoint_arguments,
    add_template_arguments,
    handlers_print_to_stderr,
    recorded_stack,
    session,
    stack_file,
    stack_lock,
    stats_file,
)
from salesstream.cli.commands.consume import add_runtime_arguments, build_runtime, stats_writer
from salesstream.cli.commands.serve import add_serve_arguments, start_api
from salesstream.emulator.provision import provision

if TYPE_CHECKING:
    import argparse


def add_emulator_process_argument(parser: argparse.ArgumentParser, *, default: bool) -> None:
    """One pair of flags for where the embedded emulator runs, in every command that starts one."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--emulator-process",
        dest="emulator_process",
        action="store_true",
        default=default,
        help="run the embedded emulator in a child process, a core of its own"
        + (" (default)" if default else ""),
    )
    where.add_argument(
        "--emulator-in-process",
        dest="emulator_process",
        action="store_false",
        help="run the embedded emulator in a thread of this process" + ("" if default else " (default)"),
    )


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "up",
        "start the embedded stack (or provision LocalStack) and run it",
        "Start the embedded emulator (moto, no Docker), provision the template, run the consumers "
        "and serve the API and dashboard, until Ctrl-C or `salesstream down`. Prints one JSON line "
        "when ready and records the stack so every other command finds it, from any directory.",
        [
            ("the default stack: 4 shards, 60 s windows", ""),
            ("short windows, a stage of its own", "--stage dev2 --window-seconds 5"),
            ("provision and consume on LocalStack", "--target localstack"),
        ],
    )
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    add_emulator_process_argument(parser, default=False)
    parser.add_argument(
        "--no-consumers", action="store_true", help="do not run the event source mappings (the consumers)"
    )
    add_runtime_arguments(parser)
    parser.add_argument("--no-serve", action="store_true", help="do not serve the API and the dashboard")
    add_serve_arguments(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="stdout is one JSON line either way (accepted, like every command's --json)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with stack_lock() as ours:
        if not ours:
            raise CommandError(_already_running())
        stale = recorded_stack()
        if stale is not None:
            print(
                f"salesstream up: replacing the record of a stack that is gone ({stale.get('endpoint_url')})",
                file=sys.stderr,
            )
            stack_file().unlink()
        return _run(args)


def _already_running() -> str:
    stack = recorded_stack() or {}
    return (
        f"a stack is already running at {stack.get('endpoint_url', '?')} (pid {stack.get('pid', '?')}, "
        f"recorded in {stack_file()}): stop it with `salesstream down`, "
        "or give a second one its own SALESSTREAM_HOME"
    )


def _run(args: argparse.Namespace) -> int:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with (
        handlers_print_to_stderr() as stdout,
        session(args, reuse_running=False, emulator_in_subprocess=args.emulator_process) as current,
    ):
        provisioned = provision(current.template, current.endpoint)
        runtime = None if args.no_consumers else build_runtime(args, current)
        api = None if args.no_serve else start_api(current.template, args.port)
        summary = {
            "target": current.endpoint.target.value,
            "stage": current.template.parameters["Stage"],
            **provisioned.summary(),
            "consumers": [mapping.id for mapping in runtime.mappings] if runtime else [],
            "schedules": [f"{s.function.logical_id}.{s.event_name}" for s in runtime.schedules]
            if runtime
            else [],
            "api_url": api.url if api else None,
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        record = stack_file()
        record.write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary), file=stdout, flush=True)
        write_stats = stats_writer()
        try:
            if runtime is not None:
                runtime.start()
            while not stopped.wait(1.0):
                if runtime is not None:
                    write_stats(runtime)
        except KeyboardInterrupt:
            pass
        finally:
            if api is not None:
                api.stop()
            if runtime is not None:
                runtime.stop()  # each shard finishes its invocation and checkpoint first
                runtime.write_stats(stats_file())
            record.unlink(missing_ok=True)
    return 0
