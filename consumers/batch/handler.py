"""The snapshot function's Lambda handler (`SnapshotFunction`, on a schedule): the invocation's
time in, the scheduled run (consumers/batch/scheduled.py) called, its figures out as metrics and
the answer."""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from consumers.batch.resources import BatchResources
from consumers.batch.runs import SnapshotBusy
from consumers.batch.scheduled import run_scheduled
from consumers.common.telemetry import log_metrics

logger = Logger()
metrics = Metrics()

# stop this long before Lambda's timeout: the cursor must be saved while there is time
_LAMBDA_SAFETY_SECONDS: Final = 30.0


@cache
def resources() -> BatchResources:
    """The process's clients and settings, built on first use."""
    return BatchResources.from_environment()


@log_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Continue or start a snapshot within the invocation's time, and reconcile a finished one
    with the speed layer."""
    budget = (
        None if context is None else context.get_remaining_time_in_millis() / 1000 - _LAMBDA_SAFETY_SECONDS
    )
    try:
        run = run_scheduled(resources(), time_budget_seconds=budget)
    except SnapshotBusy as busy:
        logger.warning("another snapshot run is in progress", extra={"detail": str(busy)})
        return {"finished": False, "busy": True}
    snapshot, cursor = run.outcome.snapshot, run.outcome.cursor
    if snapshot is None or run.reconciliation is None:
        return {"finished": False, "snapshot_id": cursor.snapshot_id if cursor else None}
    summary = run.reconciliation.summary
    metrics.add_metric(name="SnapshotEvents", unit=MetricUnit.Count, value=snapshot.counts.get("events", 0))
    metrics.add_metric(name="ReconciliationDifferences", unit=MetricUnit.Count, value=summary.differences)
    # what ReconciliationDriftAlarm watches (namespace and `service` from the function's environment)
    metrics.add_metric(name="UnexplainedDifferences", unit=MetricUnit.Count, value=summary.unexplained)
    return {
        "finished": True,
        "snapshot_id": snapshot.snapshot_id,
        "horizon_ms": snapshot.horizon_ms,
        "reconciliation": summary.status.value,
        "unexplained": summary.unexplained,
    }
