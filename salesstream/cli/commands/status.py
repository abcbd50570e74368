"""`salesstream status`: is a stack running on this home, where, and what it serves.

Exit 0 when a stack is running, 3 when none is (no record, or the record of one that is gone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from salesstream.cli.commands.common import (
    add_command,
    print_json,
    recorded_stack,
    running_stack,
    stack_file,
    stack_lock,
    state_home,
)

if TYPE_CHECKING:
    import argparse

NOT_RUNNING = 3
_SHOWN = ("target", "stage", "endpoint_url", "api_url", "stream", "pid", "started_at")


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "status",
        "say whether a stack is running, and where",
        "Read the stack record `salesstream up` keeps in the state home and check that the stack "
        "answers. Exit 0 when it runs, 3 when none does.",
        [("is one running?", ""), ("its endpoint, for a script", "--json | jq -r .endpoint_url")],
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with stack_lock() as free:
        record = recorded_stack()
        alive = not free and running_stack() is not None
    state = "running" if alive else "gone" if record else "none"
    if args.json:
        print_json({"state": state, "home": str(state_home()), **(record or {})})
        return 0 if alive else NOT_RUNNING
    console = Console(stderr=not alive)
    if not alive:
        what = f"the record {stack_file()} names a stack that is gone" if record else "no stack is running"
        console.print(f"salesstream status: {what}; start one with `salesstream up`", highlight=False)
        return NOT_RUNNING
    assert record is not None  # alive implies a record
    table = Table(show_header=False, title="salesstream stack: running")
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    for name in _SHOWN:
        table.add_row(name, str(record.get(name) or "-"))
    table.add_row("home", str(state_home()))
    console.print(table)
    return 0
