"""The batch layer as the API reads it (through consumers/batch/views.py): the latest snapshot's
rows for a query, and the latest reconciliation as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from consumers.batch.views import BatchViews, SnapshotInfo, WindowRow
from salesstream.core.batch import difference_to_json, summary_to_json
from salesstream.core.query import Granularity, SalesQuery
from salesstream.core.windows import rfc3339

MAX_DIFFERENCES: Final = 100  # listed in GET /reconciliation; the summary counts them all


def snapshot_rows(views: BatchViews, snapshot: SnapshotInfo, query: SalesQuery) -> Iterable[WindowRow]:
    """The snapshot's rows the query may select. For business days its store-day rows (already
    summed over shards and windows), each standing for every arrival before the horizon."""
    if query.granularity is Granularity.DAY:
        return (
            WindowRow(
                "*",
                0,
                snapshot.horizon_ms,
                row.store_id,
                row.currency,
                row.business_day,
                row.orders,
                row.refunds,
                row.gross_minor,
                row.refunds_minor,
            )
            for row in views.store_day_rows(snapshot, store_id=query.store)
        )
    low, high = query.window_starts() or (0, snapshot.horizon_ms)
    return views.window_rows(snapshot, store_id=query.store, start_ms=low, end_ms=high)


def sources_of(snapshot: SnapshotInfo | None) -> dict[str, Any]:
    """What a `/sales` answer says about where its rows come from."""
    if snapshot is None:
        return {"batch": None, "speed": {"answers": "every arrival window: no batch snapshot yet"}}
    return {
        "batch": {
            "snapshot": snapshot.snapshot_id,
            "horizon": rfc3339(snapshot.horizon_ms),
            "answers": "arrival windows ending at or before the horizon",
        },
        "speed": {"answers": "arrival windows ending after the horizon"},
    }


def reconciliation_json(views: BatchViews) -> dict[str, Any]:
    """`status` (clean, explained, unexplained, or none yet), the summary, and the first
    `MAX_DIFFERENCES` differences with their classification and explanations."""
    latest = views.latest_reconciliation()
    if latest is None:
        return {"status": "none", "summary": None, "differences": [], "note": "no reconciliation has run yet"}
    summary = summary_to_json(latest.summary)
    return {
        "status": summary["status"],
        "summary": {**summary, "horizon": rfc3339(latest.summary.horizon_ms)},
        "differences": [difference_to_json(d) for d in latest.differences[:MAX_DIFFERENCES]],
        "differences_listed": min(len(latest.differences), MAX_DIFFERENCES),
    }
