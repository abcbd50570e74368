"""Sales rows from the two layers: the batch view up to the snapshot horizon, the speed layer
after it. Pure: the readers hand in `WindowRow`s (the grain both layers share: shard, arrival
window, store, currency, business day), this decides which layer answers for what.

The rule is per arrival window: a window that ended at or before the horizon is answered by the
batch view (the recompute from the archive, reconciled), any later window by the speed layer's
segments. A window the horizon cuts through is the speed layer's, so no window is ever taken
from both or from neither. Without a snapshot everything comes from the speed layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from salesstream.core.aggregation import Totals
from salesstream.core.batch import WindowRow
from salesstream.core.currencies import format_minor, minor_unit_exponent
from salesstream.core.query import HOUR_MS, Granularity, SalesQuery, encode_cursor
from salesstream.core.windows import rfc3339


class Source(StrEnum):
    BATCH = "batch"
    SPEED = "speed"


def answered_by(window_end_ms: int, horizon_ms: int | None) -> Source:
    """Which layer answers for the arrival window ending at `window_end_ms`."""
    return Source.BATCH if horizon_ms is not None and window_end_ms <= horizon_ms else Source.SPEED


@dataclass(frozen=True)
class Row:
    period: tuple[int, int] | str  # (start ms, end ms) of a window or an hour; a business day
    store_id: str
    currency: str
    parts: dict[Source, Totals]

    @property
    def sort_key(self) -> tuple[str, str, str]:
        # fixed-width digits sort like the times they stand for; a business day is an ISO date
        period = self.period if isinstance(self.period, str) else f"{self.period[0]:015d}"
        return (period, self.store_id, self.currency)

    @property
    def totals(self) -> Totals:
        return sum(self.parts.values(), Totals())

    def as_json(self) -> dict[str, Any]:
        period = (
            {"business_day": self.period}
            if isinstance(self.period, str)
            else {"start": rfc3339(self.period[0]), "end": rfc3339(self.period[1])}
        )
        row: dict[str, Any] = {
            **period,
            "store_id": self.store_id,
            "currency": self.currency,
            **self.totals.as_dict(),
            "net": format_minor(self.totals.net_minor, self.currency),
            "source": "+".join(sorted(self.parts)),
        }
        if len(self.parts) > 1:  # say how much each layer gave
            row["parts"] = {source.value: totals.as_dict() for source, totals in sorted(self.parts.items())}
        return row


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_cursor: str | None

    def as_json(self) -> dict[str, Any]:
        currencies = sorted({row.currency for row in self.rows})
        return {
            "rows": [row.as_json() for row in self.rows],
            "currencies": {code: {"exponent": minor_unit_exponent(code)} for code in currencies},
            "next": self.next_cursor,
        }


def _period(query: SalesQuery, part: WindowRow) -> tuple[int, int] | str | None:
    """The row a part belongs to, or None when the query does not select it."""
    if query.store is not None and part.store_id != query.store:
        return None
    match query.granularity:
        case Granularity.DAY:
            selected = query.from_day <= part.business_day < query.to_day
            return part.business_day if selected else None
        case Granularity.HOUR:
            start = part.window_start_ms - part.window_start_ms % HOUR_MS
            return (start, start + HOUR_MS) if query.from_ms <= start < query.to_ms else None
        case Granularity.WINDOW:
            selected = query.from_ms <= part.window_start_ms < query.to_ms
            return (part.window_start_ms, part.window_end_ms) if selected else None


def merge(
    query: SalesQuery, horizon_ms: int | None, batch: Iterable[WindowRow], speed: Iterable[WindowRow]
) -> Page:
    """The rows the query selects, each layer contributing only the windows it answers for;
    sorted by (period, store, currency), at most `query.limit` after `query.after`."""
    cells: dict[tuple[tuple[int, int] | str, str, str], dict[Source, Totals]] = {}
    for source, parts in ((Source.BATCH, batch), (Source.SPEED, speed)):
        for part in parts:
            if answered_by(part.window_end_ms, horizon_ms) is not source:
                continue
            period = _period(query, part)
            if period is None:
                continue
            cell = cells.setdefault((period, part.store_id, part.currency), {})
            cell[source] = cell.get(source, Totals()) + part.totals
    rows = sorted(
        (Row(period, store, currency, parts) for (period, store, currency), parts in cells.items()),
        key=lambda row: row.sort_key,
    )
    if query.after is not None:
        rows = [row for row in rows if row.sort_key > query.after]
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return Page(page, encode_cursor(page[-1].sort_key) if more else None)
