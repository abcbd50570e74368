"""A snapshot interrupted mid-way (a crash, or the time budget spent) continues from its saved
cursor: the archive objects before the cursor are not read again, and the result is the one an
uninterrupted run gives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.batch.runs import Phase, SnapshotBusy
from consumers.batch.snapshot import SnapshotJob
from salesstream.core.batch import SnapshotInfo, WindowRow
from tests.batch_support import Pipeline, cold_start


class Crash(RuntimeError):
    """The snapshot process died here."""


@pytest.fixture
def archived(make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path) -> Iterator[Pipeline]:
    """A pipeline whose archive holds a few hundred events in many objects."""
    template, _ = make_stack(ShardCount=2, WindowSeconds=1, BatchSize=5)
    cold_start()
    run = Pipeline(endpoint, template, tmp_path / "spool.jsonl", 1)
    for seed in range(3):
        run.send(run.fleet_events(100, seed=seed), aggregate=False)  # one record per event
    run.settle()
    assert len(run.archive()) > 6
    yield run
    cold_start()


def rows_of(run: Pipeline, snapshot: SnapshotInfo | None) -> list[WindowRow]:
    assert snapshot is not None
    return run.resources().views.window_rows(snapshot)


def count_archive_gets(client: Any) -> list[str]:
    """Keys of the archive objects the client GETs from now on."""
    keys: list[str] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].startswith("archive/"):
            keys.append(params["Key"])

    client.meta.events.register("provide-client-params.s3.GetObject", note)
    return keys


def test_a_crashed_snapshot_resumes_from_its_cursor_once_the_lease_expires(archived: Pipeline) -> None:
    run = archived
    resources = run.resources()

    def crash_on_the_third_chunk(params: dict[str, Any], **_: Any) -> None:
        if "/work/p" in params["Key"] and params["Key"].endswith("/c000002.tsv.gz"):
            raise Crash("killed while writing the third chunk")

    resources.s3.meta.events.register("provide-client-params.s3.PutObject", crash_on_the_third_chunk)
    with pytest.raises(Crash):
        SnapshotJob(resources).run()
    resources.s3.meta.events.unregister("provide-client-params.s3.PutObject", crash_on_the_third_chunk)
    with pytest.raises(SnapshotBusy):  # the crashed run's lease still holds
        SnapshotJob(run.resources()).run()

    later = run.resources()
    gets = count_archive_gets(later.s3)
    resumed = SnapshotJob(later, now_ms=lambda: resources_now() + 121_000).run()
    assert resumed.resumed
    assert resumed.finished
    total = len(run.archive())
    assert 0 < len(gets) < total  # what was in written chunks was not read again

    fresh = run.snapshot().snapshot
    assert fresh is not None
    assert fresh.snapshot_id != resumed.snapshot.snapshot_id  # type: ignore[union-attr]
    assert rows_of(run, resumed.snapshot) == rows_of(run, fresh)
    assert resumed.snapshot.counts["events"] == fresh.counts["events"] == 300  # type: ignore[union-attr]


def test_a_snapshot_out_of_time_saves_its_cursor_and_the_next_run_continues(archived: Pipeline) -> None:
    run = archived
    asked = {"n": 0}

    def after_four_steps() -> bool:
        asked["n"] += 1
        return asked["n"] > 4

    paused = SnapshotJob(run.resources()).run(should_stop=after_four_steps)
    assert not paused.finished
    assert paused.cursor is not None
    assert paused.cursor.phase is Phase.SCAN
    assert paused.cursor.after_key  # some objects are behind the cursor
    assert run.resources().views.latest_snapshot() is None  # nothing half-done is visible

    gets = count_archive_gets((later := run.resources()).s3)
    resumed = SnapshotJob(later).run()  # the lease was released: no wait
    assert resumed.resumed
    assert resumed.finished
    assert resumed.snapshot is not None
    assert resumed.snapshot.snapshot_id == paused.cursor.snapshot_id
    assert all(key > paused.cursor.after_key for key in gets)
    assert rows_of(run, resumed.snapshot) == rows_of(run, run.snapshot().snapshot)
    leftovers = run.endpoint.client("s3").list_objects_v2(
        Bucket=run.template.physical_name("ArchiveBucket"),
        Prefix=f"snapshots/{resumed.snapshot.snapshot_id}/work/",
    )
    assert leftovers["KeyCount"] == 0  # the work objects are gone


def resources_now() -> int:
    import time

    return time.time_ns() // 1_000_000
