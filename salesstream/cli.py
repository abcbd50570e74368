"""`salesstream`: one command line for the whole pipeline.

Each sub-command lives in its own module under `salesstream.commands` and exposes
`register(subparsers)`; this file only lists them. argparse (stdlib) keeps the CLI free of a
further dependency; rich does the terminal output.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

COMMANDS = ("up", "produce", "consume", "report", "snapshot", "reconcile", "serve", "demo", "loadtest")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salesstream",
        description="Near-real-time sales aggregation on Amazon Kinesis.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"salesstream.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from salesstream.commands.common import CommandError

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CommandError as error:
        print(f"salesstream {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
