"""The local runtime runs the template's Schedule events on its clock: the snapshot function
(`SnapshotRate`) snapshots and reconciles when, and only when, the virtual clock says so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from salesstream.runtime import Runtime, RuntimeOptions
from tests.batch_support import STREAM_FUNCTIONS, Pipeline, cold_start


def test_the_runtime_runs_the_scheduled_snapshot_on_its_clock(
    make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template, _ = make_stack(ShardCount=2, WindowSeconds=1, SnapshotRate="rate(5 minutes)")
    monkeypatch.setenv("SNAPSHOT_HORIZON_GRACE_SECONDS", "0")  # the events arrived a moment ago
    cold_start()
    try:
        run = Pipeline(endpoint, template, tmp_path / "spool.jsonl", 1)
        run.send(run.fleet_events(100))
        run.settle()
        runtime = Runtime(
            template,
            endpoint,
            clock=run.clock,
            options=RuntimeOptions(window_close_grace_seconds=0),
            functions=[*STREAM_FUNCTIONS, "SnapshotFunction"],
        )
        runtime.run_until_idle()
        assert run.resources().views.latest_snapshot() is None  # not due yet
        run.clock.advance(299)
        runtime.run_until_idle()
        assert run.resources().views.latest_snapshot() is None
        run.clock.advance(1)
        runtime.run_until_idle()

        snapshot = run.resources().views.latest_snapshot()
        assert snapshot is not None
        assert snapshot.counts["events"] == 100
        reconciliation = run.resources().views.latest_reconciliation()
        assert reconciliation is not None
        assert reconciliation.summary.snapshot_id == snapshot.snapshot_id
        assert reconciliation.summary.status.value == "clean"
        (schedule,) = runtime.stats().schedules
        assert (schedule["function"], schedule["invocations"], schedule["failures"]) == (
            "SnapshotFunction",
            1,
            0,
        )
    finally:
        cold_start()
