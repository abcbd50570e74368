"""The scheduled snapshot, as the batch function runs it: continue the unfinished snapshot (or
begin one) within the invocation's time, and reconcile it with the speed layer once it is
finished. What Lambda hands in and gets back is consumers/batch/handler.py's."""

from __future__ import annotations

from dataclasses import dataclass

from consumers.batch.reconcile import Reconciler
from consumers.batch.resources import BatchResources
from consumers.batch.snapshot import SnapshotJob, SnapshotOutcome
from salesstream.core.batch import Reconciliation


@dataclass(frozen=True)
class ScheduledRun:
    outcome: SnapshotOutcome
    reconciliation: Reconciliation | None  # when the snapshot finished in this run


def run_scheduled(resources: BatchResources, *, time_budget_seconds: float | None) -> ScheduledRun:
    """Raises SnapshotBusy (consumers/batch/runs.py) while another run holds the lease."""
    outcome = SnapshotJob(resources).run(time_budget_seconds=time_budget_seconds)
    if outcome.snapshot is None:
        return ScheduledRun(outcome, None)
    return ScheduledRun(outcome, Reconciler(resources).reconcile(outcome.snapshot))
