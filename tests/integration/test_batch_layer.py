"""The batch layer end to end on the embedded moto server: the real producer, the aggregator and
the archiver run by the local runtime through the stream, then the snapshot job and the
reconciliation (and repair) against what they wrote."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from salesstream.core.aggregation import Totals
from salesstream.core.batch import Classification, KeyKind, Status
from tests.batch_support import Pipeline, cold_start, corrupt_segment

PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def pipeline(make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path) -> Iterator[PipelineFactory]:
    def make(window_seconds: int = 1, handlers: dict[str, Any] | None = None, **parameters: Any) -> Pipeline:
        template, _ = make_stack(ShardCount=2, WindowSeconds=window_seconds, **parameters)
        cold_start()
        return Pipeline(endpoint, template, tmp_path / "spool.jsonl", window_seconds, handlers=handlers or {})

    yield make
    cold_start()


def test_a_clean_run_reconciles_to_zero_and_the_snapshot_equals_the_producers_tally(
    pipeline: PipelineFactory,
) -> None:
    run = pipeline()
    run.send(run.fleet_events(300))
    run.settle()
    snapshot = run.snapshot().snapshot
    assert snapshot is not None
    assert snapshot.counts["events"] == 300
    rows = run.resources().views.store_day_rows(snapshot)
    net: dict[tuple[str, str], int] = {}
    for row in rows:
        net[(row.store_id, row.currency)] = net.get((row.store_id, row.currency), 0) + row.net_minor
    assert net == run.tally()

    reconciliation = run.reconcile()
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    assert reconciliation.differences == ()
    assert reconciliation.summary.keys_compared > len(rows)
    assert run.resources().views.latest_reconciliation() == reconciliation


def test_a_corrupted_segment_and_running_total_are_reported_exactly_and_repaired_once(
    pipeline: PipelineFactory,
) -> None:
    run = pipeline()
    run.send(run.fleet_events(200))
    run.settle()
    run.snapshot()
    assert run.reconcile().summary.status is Status.CLEAN

    # one segment's row: 1000 minor units more gross than the aggregator wrote
    changed: dict[str, str] = {}

    def inflate(days: dict[str, Any]) -> None:
        key = sorted(days)[0]
        days[key]["gross_minor"] += 1000
        changed["key"] = key

    segment = corrupt_segment(run, inflate)
    # one running total: a store-day item loses an order
    (store_day,) = [i for i in run.items("AggregatesTable") if i["pk"].startswith("STORE#")][:1]
    run.endpoint.client("dynamodb").update_item(
        TableName=run.template.physical_name("AggregatesTable"),
        Key={"pk": {"S": store_day["pk"]}, "sk": {"S": store_day["sk"]}},
        UpdateExpression="ADD orders :minus",
        ExpressionAttributeValues={":minus": {"N": "-1"}},
    )

    found = run.reconcile()
    assert found.summary.status is Status.UNEXPLAINED
    assert found.summary.unexplained == found.summary.differences == 2
    window, day = sorted(found.differences, key=lambda d: d.kind.value != "window")
    store, currency, business_day = changed["key"].split("/")
    assert (window.kind, window.classification) == (KeyKind.WINDOW, Classification.AMOUNT_MISMATCH)
    assert (window.shard_id, window.store_id, window.currency, window.business_day) == (
        segment["shard_id"],
        store,
        currency,
        business_day,
    )
    assert window.delta == Totals(gross_minor=1000)
    assert (day.kind, day.classification) == (KeyKind.STORE_DAY, Classification.AMOUNT_MISMATCH)
    assert (day.store_id, day.business_day, day.currency) == (
        store_day["store_id"],
        store_day["business_day"],
        store_day["currency"],
    )
    assert day.delta == Totals(orders=-1)

    repaired = run.repair(found)
    assert repaired.summary.repaired == 2
    assert repaired.summary.status is Status.CLEAN, repaired.differences
    audit = [i for i in run.items("BatchTable") if i["pk"] == "AUDIT"]
    assert len(audit) == 2
    assert {entry["who"] for entry in audit} == {"tester"}
    assert all(entry["before"] != entry["after"] for entry in audit)
    window_key = f"window:{segment['shard_id']}/{window.window_start_ms}"
    assert {entry["key"] for entry in audit} == {window_key, day.key}

    again = run.repair(run.reconcile())
    assert again.summary.repaired == 0
    assert again.summary.status is Status.CLEAN
    assert len([i for i in run.items("BatchTable") if i["pk"] == "AUDIT"]) == 2  # nothing written
