"""`salesstream completion SHELL`: the shell completion script, written from the CLI's own parser.

shtab generates it once, statically: a TAB costs the shell nothing (argcomplete would start
Python, and import every command, at each TAB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from salesstream.cli.commands.common import add_command

if TYPE_CHECKING:
    import argparse

SHELLS = ("bash", "zsh", "tcsh")


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "completion",
        "print the shell completion script (bash, zsh, tcsh)",
        "Print a completion script for SHELL, generated from the CLI's own parser. Source it from "
        "your shell's startup file.",
        [
            ("bash, for this shell", "bash > ~/.salesstream-complete.bash && . ~/.salesstream-complete.bash"),
            ("zsh", 'zsh > "${fpath[1]}/_salesstream"'),
        ],
    )
    parser.add_argument("shell", choices=SHELLS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import shtab

    from salesstream.cli.main import build_parser

    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return 0
