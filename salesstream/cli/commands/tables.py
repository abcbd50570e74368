"""Tables that fit the terminal without cutting a value.

rich shrinks a table that is too wide by cutting cells (`55,3…`, `shardId-0000000000…`). Here
every value column is as wide as its widest cell and never wraps; a free-text column folds into
the space left. When the value columns alone are wider than the terminal (80 columns in a pipe),
the table is split into parts that fit, each repeating the key columns, as `ps` or `kubectl`
users would rather read than a table cut at the right edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

_BORDER: Final = 3  # a column's share of the box: a rule and a space on either side
_TEXT_MIN: Final = 16  # the narrowest a folding text column gets


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False  # numbers are right-aligned
    text: bool = False  # free text: folds instead of widening the table


def number(header: str) -> Column:
    return Column(header, right=True)


def text(header: str) -> Column:
    return Column(header, text=True)


def print_table(
    console: Console,
    title: str | None,
    columns: Sequence[Column | str],
    rows: Sequence[Sequence[str | Text]],
    *,
    keys: int = 1,
) -> None:
    """Print the rows under `columns`; the first `keys` columns identify a row and are repeated
    in every part when the table has to be split to fit `console.width`."""
    spec = [Column(c) if isinstance(c, str) else c for c in columns]
    widths = [
        max([cell_len(column.header), *(cell_len(str(row[i])) for row in rows)])
        for i, column in enumerate(spec)
    ]
    parts = _parts(spec, widths, keys, console.width)
    for number_of, indices in enumerate(parts, start=1):
        suffix = f" ({number_of}/{len(parts)})" if len(parts) > 1 and title else ""
        table = Table(title=f"{title}{suffix}" if title else None)
        for i in indices:
            column = spec[i]
            if column.text:
                table.add_column(column.header, overflow="fold", min_width=min(widths[i], _TEXT_MIN))
            else:
                table.add_column(
                    column.header,
                    justify="right" if column.right else "left",
                    no_wrap=True,
                    min_width=widths[i],
                )
        for row in rows:
            table.add_row(*(row[i] for i in indices))
        console.print(table)


def _parts(spec: Sequence[Column], widths: Sequence[int], keys: int, room: int) -> list[list[int]]:
    """Column indices per part: key columns first in each, the others added while they fit."""

    def need(i: int) -> int:
        return (min(widths[i], _TEXT_MIN) if spec[i].text else widths[i]) + _BORDER

    key_columns = list(range(min(keys, len(spec))))
    base = 1 + sum(need(i) for i in key_columns)
    parts: list[list[int]] = []
    current: list[int] = []
    used = base
    for i in range(len(key_columns), len(spec)):
        if current and used + need(i) > room:
            parts.append(key_columns + current)
            current, used = [], base
        current.append(i)
        used += need(i)
    parts.append(key_columns + current)
    return parts
