"""`salesstream up`: the embedded stack (or LocalStack), provisioned from the template.

Prints one line of JSON (endpoint_url, stream, tables, ...) once ready, records it in
var/stack.json for the other commands, and runs until interrupted. Unless `--no-consumers`, it
also runs the template's event source mappings with the local runtime (as `salesstream
consume` does), writing their stats to var/runtime-stats.json. Unless `--no-serve`, it serves the
API and the dashboard on 127.0.0.1 (as `salesstream serve` does; `api_url` in the JSON line).
"""

from __future__ import annotations

import json
import signal
import threading
from typing import TYPE_CHECKING, Any

from salesstream.commands.common import (
    STACK_FILE,
    add_endpoint_arguments,
    add_template_arguments,
    session,
)
from salesstream.commands.consume import STATS_FILE, add_runtime_arguments, build_runtime, stats_writer
from salesstream.commands.serve import add_serve_arguments, start_api
from salesstream.provision import provision

if TYPE_CHECKING:
    import argparse


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("up", help="start the embedded stack (or provision LocalStack) and run")
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    parser.add_argument(
        "--emulator-process",
        action="store_true",
        help="run the embedded emulator in a child process (a core of its own)",
    )
    parser.add_argument(
        "--no-consumers", action="store_true", help="do not run the event source mappings (the consumers)"
    )
    add_runtime_arguments(parser)
    parser.add_argument("--no-serve", action="store_true", help="do not serve the API and the dashboard")
    add_serve_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with session(args, reuse_running=False, emulator_in_subprocess=args.emulator_process) as current:
        provisioned = provision(current.template, current.endpoint)
        runtime = None if args.no_consumers else build_runtime(args, current)
        api = None if args.no_serve else start_api(current.template, args.port)
        summary = {
            "target": current.endpoint.target.value,
            **provisioned.summary(),
            "consumers": [mapping.id for mapping in runtime.mappings] if runtime else [],
            "schedules": [f"{s.function.logical_id}.{s.event_name}" for s in runtime.schedules]
            if runtime
            else [],
            "api_url": api.url if api else None,
        }
        STACK_FILE.parent.mkdir(parents=True, exist_ok=True)
        STACK_FILE.write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary), flush=True)
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
                runtime.write_stats(STATS_FILE)
            STACK_FILE.unlink(missing_ok=True)
    return 0
