"""`salesstream down`: stop the stack `salesstream up` runs on this home.

Sends SIGTERM to the recorded `up` (it stops its consumers after their invocation, then the
emulator) and waits until it has removed its record. Nothing running is not an error: a record
of a stack that is gone is removed, and the exit status is 0.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console

from salesstream.cli.commands.common import (
    CommandError,
    add_command,
    print_json,
    recorded_stack,
    stack_file,
    stack_lock,
)

if TYPE_CHECKING:
    import argparse

_POLL_SECONDS: Final = 0.2


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "down",
        "stop the running stack",
        "Stop the stack `salesstream up` runs on this state home and wait until it has stopped.",
        [("stop it", ""), ("give it longer to finish its invocations", "--timeout 120")],
    )
    parser.add_argument(
        "--timeout", type=float, default=60, metavar="SECONDS", help="how long to wait (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with stack_lock() as free:
        record = recorded_stack()
        if free:  # no `up` holds the lock: nothing runs, whatever the record says
            if record is not None:
                stack_file().unlink()
            return _say(args, "stale" if record else "none", record)
    if record is None or not isinstance(record.get("pid"), int):
        raise CommandError(f"a stack is running but {stack_file()} does not name its process")
    pid = record["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while not _released():  # the process holds the lock until its very end
        if time.monotonic() > deadline:
            raise CommandError(f"the stack (pid {pid}) did not stop within {args.timeout:g} s")
        time.sleep(_POLL_SECONDS)
    return _say(args, "stopped", record)


def _released() -> bool:
    with stack_lock() as free:
        return free


def _say(args: argparse.Namespace, outcome: str, record: dict[str, Any] | None) -> int:
    if args.json:
        print_json({"outcome": outcome, **(record or {})})
        return 0
    url = (record or {}).get("endpoint_url")
    message = {
        "stopped": f"stopped the stack at {url} (pid {(record or {}).get('pid')})",
        "stale": f"no stack was running; removed the record of one that was gone ({url})",
        "none": "no stack is running",
    }[outcome]
    Console().print(f"salesstream down: {message}", highlight=False)
    return 0
