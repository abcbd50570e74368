"""Pure parts of the CLI: tables that fit, flag types, the state home, spool keys, the Makefile's
help."""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from salesstream.cli.commands import common
from salesstream.cli.commands.tables import number, print_table, text
from salesstream.emulator.targets import Endpoint, Target

ROOT = Path(__file__).parents[2]
SHARD = "shardId-000000000011"
MONEY = "55,321,000.12 EUR"


def printed(width: int, columns: list[Any], rows: list[list[str]], keys: int = 1) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    print_table(console, "t", columns, rows, keys=keys)
    return console.export_text()


def test_a_wide_table_is_split_never_cut_at_80_columns() -> None:
    columns = [
        "shard",
        "currency",
        *map(number, ("orders", "refunds", "net", "events", "duplicates", "segments")),
    ]
    rows = [[SHARD, "EUR", "12345", "12", MONEY, "50000", "3", "14"]]
    output = printed(80, columns, rows, keys=2)
    assert all(len(line) <= 80 for line in output.splitlines())
    assert "…" not in output
    assert output.count(SHARD) >= 2  # the key column repeated in each part
    for value in (MONEY, "50000", "duplicates", "segments"):
        assert value in output
    wide = printed(200, columns, rows, keys=2)
    assert wide.count(SHARD) == 1  # one table when it fits


def test_a_text_column_folds_into_the_room_left() -> None:
    why = "the archive holds a resend of this order from a later window " * 3
    output = printed(80, ["key", number("net"), text("why")], [["store-0001#EUR", MONEY, why]])
    assert all(len(line) <= 80 for line in output.splitlines())
    assert MONEY in output
    assert "…" not in output


@pytest.mark.parametrize(
    ("parse", "good", "bad"),
    [
        (common.positive_int, "3", ["0", "-1", "x", "1.5"]),
        (common.non_negative_int, "0", ["-3"]),
        (common.positive_float, "0.5", ["0", "-5", "nan", "inf"]),
        (common.share, "1", ["1.01", "-0.1"]),
        (common.port, "8080", ["65536", "-1"]),
    ],
)
def test_flag_types_refuse_what_makes_no_sense(parse: object, good: str, bad: list[str]) -> None:
    assert callable(parse)
    parse(good)
    for value in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(value)


@pytest.mark.parametrize("url", ["localhost:4566", "ftp://host", "http://", "http://host:99999", "not a url"])
def test_a_malformed_endpoint_is_refused(url: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        common.endpoint_url(url)
    assert common.endpoint_url("http://localhost:4566") == "http://localhost:4566"


def test_the_state_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SALESSTREAM_HOME", str(tmp_path / "mine"))
    assert common.stack_file() == tmp_path / "mine" / "stack.json"
    monkeypatch.delenv("SALESSTREAM_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert common.state_home() == tmp_path / "xdg" / "salesstream"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/is/ignored")  # the XDG rule
    monkeypatch.setenv("HOME", str(tmp_path))
    assert common.state_home() == tmp_path / ".local" / "state" / "salesstream"


def test_spools_are_keyed_by_endpoint_and_stream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SALESSTREAM_HOME", str(tmp_path))
    embedded = Endpoint(Target.EMBEDDED, "http://127.0.0.1:40123")
    localstack = Endpoint(Target.LOCALSTACK, "http://localhost:4566")
    aws = Endpoint(Target.AWS, None, "eu-west-1")
    paths = {
        common.spool_path(embedded, "dev-salesstream-orders"),
        common.spool_path(localstack, "dev-salesstream-orders"),
        common.spool_path(aws, "dev-salesstream-orders"),
        common.spool_path(aws, "qa-salesstream-orders"),
    }
    assert len(paths) == 4
    assert (
        common.spool_path(aws, "qa-salesstream-orders").name == "aws-eu-west-1--qa-salesstream-orders.jsonl"
    )
    assert {path.parent for path in paths} == {tmp_path / "spool"}


def test_make_help_lists_every_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z0-9-]+):", makefile, flags=re.MULTILINE))
    described = set(re.findall(r"^([a-z0-9-]+):.*## ", makefile, flags=re.MULTILINE))
    assert {"test", "test-e2e", "test-package"} <= described
    assert targets == described
    help_rule = re.search(r"^help:.*\n\t@grep -E '([^']+)'", makefile, flags=re.MULTILINE)
    assert help_rule is not None
    assert all(re.match(help_rule.group(1), f"{name}: x ## y") for name in described)


def test_docs_cli_covers_every_command_and_flag() -> None:
    """docs/cli.md is the reference: every command and every flag `--help` shows is in it."""
    from salesstream.cli.main import COMMANDS, build_parser

    docs = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = []
    for name in COMMANDS:
        if f"### {name}" not in docs:
            missing.append(name)
        for action in subparsers.choices[name]._actions:
            if action.help == argparse.SUPPRESS or action.dest == "help":
                continue
            shown = [option for option in action.option_strings if option.startswith("--")]
            if shown and not any(f"`{option}" in docs or f"{option} " in docs for option in shown):
                missing.append(f"{name} {shown[0]}")
    assert missing == []
