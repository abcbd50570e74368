"""After a load test: the batch layer's view of the same run. The snapshot job recomputes the
totals from the archive (consumers/batch/snapshot.py) and the reconciler compares them with the
speed layer, key by key (consumers/batch/reconcile.py), exactly as the scheduled snapshot
function does; any difference it cannot explain fails the run.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from load_tests.report_model import Reconciled
from salesstream.core.windows import rfc3339
from salesstream.runtime.environment import function_environment_set

if TYPE_CHECKING:
    from salesstream.deploy.template import Template
    from salesstream.emulator.targets import Endpoint

# past the snapshot's own horizon grace, so the horizon falls after the run's last window
_MARGIN_SECONDS = 0.5


def snapshot_function_environment(template: Template) -> AbstractContextManager[None]:
    """The snapshot function's environment, set in the process for the block: its modules read
    it (log level, service name) when imported, as the scheduled function does."""
    return function_environment_set(template.function("SnapshotFunction").environment)


def reconcile_run(endpoint: Endpoint, template: Template, last_window_end_ms: int) -> Reconciled:
    with snapshot_function_environment(template):
        return _reconcile_run(endpoint, template, last_window_end_ms)


def _reconcile_run(endpoint: Endpoint, template: Template, last_window_end_ms: int) -> Reconciled:
    from consumers.batch.resources import BatchResources
    from consumers.batch.snapshot import snapshot_and_reconcile

    resources = BatchResources.from_template(endpoint, template)
    # a caught-up shard's archive counts as complete up to (now - grace): wait until that moment
    # has passed the last window's end, so the snapshot's horizon covers the whole run
    ready_at = last_window_end_ms / 1000 + resources.settings.snapshot_horizon_grace_seconds + _MARGIN_SECONDS
    time.sleep(max(0.0, ready_at - time.time()))
    started = time.monotonic()
    snapshot, reconciliation = snapshot_and_reconcile(resources)
    summary = reconciliation.summary
    return Reconciled(
        snapshot_id=snapshot.snapshot_id,
        horizon=rfc3339(snapshot.horizon_ms),
        covers_run=snapshot.horizon_ms >= last_window_end_ms,
        events_recomputed=snapshot.counts.get("events", 0),
        keys_compared=summary.keys_compared,
        differences=summary.differences,
        unexplained=summary.unexplained,
        seconds=round(time.monotonic() - started, 2),
    )
