"""`salesstream serve`: the serving API and the dashboard on 127.0.0.1, for the stack a running
`salesstream up` recorded (or `--endpoint`, LocalStack, AWS).

Requests become API Gateway HTTP API (payload 2.0) events for the template's ApiFunction handler,
run in this process (salesstream/emulator/local_api.py). The lag in `GET /shards` comes from the local
runtime's stats file (`<home>/runtime-stats.json`), which `up` and `consume` write.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    add_endpoint_arguments,
    add_template_arguments,
    handlers_print_to_stderr,
    port,
    session,
    stats_file,
)

if TYPE_CHECKING:
    import argparse

    from salesstream.deploy.template import Template
    from salesstream.emulator.local_api import LocalHttpApi


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=port, default=0, help="port on 127.0.0.1 (default: a free one)")


def start_api(template: Template, port: int) -> LocalHttpApi:
    """The template's HTTP API on 127.0.0.1, started; its lag from the local runtime's stats."""
    from salesstream.emulator.local_api import LocalHttpApi, NoRoutes
    from salesstream.runtime import RuntimeConfigError

    environment = {"RUNTIME_STATS_FILE": str(stats_file().resolve())}
    try:
        return LocalHttpApi.from_template(template, port=port, environment=environment).start()
    except (NoRoutes, RuntimeConfigError) as error:
        raise CommandError(str(error)) from error
    except OSError as error:  # the port is taken, or not ours to bind
        raise CommandError(f"cannot serve on 127.0.0.1:{port}: {error.strerror}") from error


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "serve",
        "serve the API and the live dashboard on 127.0.0.1",
        "Serve the template's HTTP API and the dashboard for the running stack (`salesstream up` "
        "already does unless --no-serve). Prints one JSON line with the URL.",
        [("on a free port", ""), ("on a fixed port", "--port 8080")],
    )
    add_endpoint_arguments(parser)
    add_template_arguments(parser)
    add_serve_arguments(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="stdout is one JSON line either way (accepted, like every command's --json)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with handlers_print_to_stderr() as stdout, session(args, start_embedded=False) as current:
        api = start_api(current.template, args.port)
        try:
            print(json.dumps({"api_url": api.url, "dashboard": api.url + "/"}), file=stdout, flush=True)
            print(f"salesstream serve: dashboard at {api.url}/ (Ctrl-C to stop)", file=sys.stderr)
            while not stopped.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            api.stop()
    return 0
