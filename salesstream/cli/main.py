"""`salesstream`: one command line for the whole pipeline.

Each sub-command lives in its own module under `salesstream.cli.commands` and exposes
`register(subparsers)`; this file only lists them and maps failures to the exit codes below
(docs/cli.md has the same table). argparse (stdlib) parses; shtab writes the shell completion
from the same parser; rich does the terminal output.

    0    ok
    1    the check failed: totals differ, an unexplained reconciliation difference, load-test
         targets missed, events spooled or refused (`produce`), consumer errors
    2    usage or parameter error, or the command could not run (no stack, nothing answers)
    3    `status`: no stack is running
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import TYPE_CHECKING, Final, NoReturn

if TYPE_CHECKING:
    from collections.abc import Sequence

COMMANDS = (
    "up",
    "status",
    "down",
    "produce",
    "consume",
    "report",
    "quarantine",
    "snapshot",
    "reconcile",
    "serve",
    "demo",
    "completion",
)
# Commands that sit on top of the tooling register themselves as entry points (the load-test
# harness contributes `loadtest`): the CLI never imports the harness, so imports point one way.
PLUGIN_GROUP: Final = "salesstream.commands"
EXIT_CODES = """exit codes:
  0    ok
  1    the check failed: totals differ, unexplained reconciliation difference, load-test
       targets missed, events spooled or refused (produce), consumer errors
  2    usage or parameter error, or the command could not run (no stack, nothing answers)
  3    status: no stack is running
  130  interrupted
"""


def _version() -> str:
    try:
        return version("salesstream")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (argparse prints the whole usage first); exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="salesstream",
        description="Near-real-time sales aggregation on Amazon Kinesis.\n"
        "`salesstream COMMAND --help` shows a command's flags and examples.",
        epilog=EXIT_CODES
        + "\nstate (stack record, spools): $SALESSTREAM_HOME, default ~/.local/state/salesstream",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"salesstream {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"salesstream.cli.commands.{name}").register(subparsers)
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda point: point.name):
        plugin.load().register(subparsers)
    return parser


# The distributions the local tooling needs beyond the base install (a POS integration that only
# imports `producer` installs none of them): named in the error instead of a traceback.
LOCAL_EXTRA: Final = frozenset({"moto", "yaml", "rich", "localstack_client", "shtab"})


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from salesstream.cli.commands.common import CommandError
        from salesstream.deploy.template import TemplateError

        parser = build_parser()
    except ModuleNotFoundError as missing:
        if (missing.name or "").split(".")[0] not in LOCAL_EXTRA:
            raise
        print(
            f"salesstream: the command line needs the 'local' extra ({missing.name} is not installed): "
            "pip install 'salesstream[local]'",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (CommandError, TemplateError) as error:
        print(f"salesstream {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
