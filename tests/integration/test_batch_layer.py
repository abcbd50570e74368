"""The batch layer end to end on the embedded moto server: the real producer, the aggregator and
the archiver run by the local runtime through the stream, then the snapshot job and the
reconciliation (and repair) against what they wrote."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from salesstream.core.aggregation import Totals
from salesstream.core.batch import Cause, Classification, KeyKind, Status
from tests.batch_support import Pipeline, cold_start, corrupt_segment
from tests.window_events import order

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


def test_duplicates_conflicts_and_quarantined_records_are_explained_not_drift(
    pipeline: PipelineFactory,
) -> None:
    run = pipeline()
    events = run.fleet_events(120)
    run.send(events)
    run.send(events[:30])  # a producer resends 30 events (a lost response): same ids, new positions
    first = order("store-c", 1000, event_id="evt-conflict")
    run.send([first.to_json_bytes()])
    run.send([order("store-c", 999, event_id="evt-conflict").to_json_bytes()])  # same id, other amount
    run.put_raw([b"not json", b'{"schema_version": 1}', b"\xff\xfe"])
    run.settle()
    snapshot = run.snapshot().snapshot
    assert snapshot is not None

    reconciliation = run.reconcile()
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    notes = reconciliation.summary.notes
    assert notes["events"] == 121
    assert notes["duplicates"] == 30
    assert notes["conflicts"] == 1
    assert notes["quarantined_duplicate_conflict"] == 1  # the speed layer's side of the conflict
    assert notes["quarantined_not_json"] == 1
    assert notes["quarantined_missing_field"] == 1
    assert notes["quarantined_bad_utf8"] == 1
    stores = {row.store_id: row for row in run.resources().views.store_day_rows(snapshot)}
    assert stores["store-c"].gross_minor == 1000  # the first sighting counted, the conflict not


def test_a_resend_later_than_the_dedup_horizon_is_explained_and_repaired(pipeline: PipelineFactory) -> None:
    run = pipeline(DedupHorizonSeconds=0)  # every resend at another moment is "new" to the speed layer
    events = run.fleet_events(80)
    run.send(events)
    time.sleep(0.05)
    run.send(events[:5])
    run.settle()
    run.snapshot()

    reconciliation = run.reconcile()
    summary = reconciliation.summary
    assert summary.status is Status.EXPLAINED, [d for d in reconciliation.differences if not d.explained]
    assert summary.notes["late_resends"] == 5
    windows = [d for d in reconciliation.differences if d.kind is KeyKind.WINDOW]
    assert windows
    extra = Totals()
    for difference in windows:
        assert {e.cause for e in difference.explanations} == {Cause.LATE_RESEND}
        extra = extra + difference.delta
    assert extra.orders + extra.refunds == 5  # the speed layer counted the 5 resends once more
    totals = [d for d in reconciliation.differences if d.kind is not KeyKind.WINDOW]
    assert totals
    assert all(d.explanations[0].cause is Cause.WINDOW_DIFFERENCES and d.explained for d in totals)

    assert run.repair(reconciliation).summary.status is Status.CLEAN


def test_records_the_aggregator_gave_up_on_are_explained_by_the_on_failure_notice(
    pipeline: PipelineFactory,
) -> None:
    from consumers.aggregator.handler import lambda_handler

    poisoned: set[str] = set()

    def poisoning(event: dict[str, Any], context: Any) -> Any:
        records = {record["eventID"] for record in event["Records"]}  # "<shard>:<sequence>"
        if not poisoned and records:
            poisoned.add(min(records))
        if poisoned & records:
            raise RuntimeError("this record fails every time")
        return lambda_handler(event, context)

    run = pipeline(handlers={"AggregatorFunction": poisoning})
    run.send(run.fleet_events(150))
    run.settle()
    run.snapshot()

    reconciliation = run.reconcile()
    summary = reconciliation.summary
    assert summary.notes["aggregator_gave_up_batches"] == 1
    assert summary.status is Status.EXPLAINED, [d for d in reconciliation.differences if not d.explained]
    windows = [d for d in reconciliation.differences if d.kind is KeyKind.WINDOW]
    assert windows
    assert {e.cause for d in windows for e in d.explanations} == {Cause.RETRIES_EXHAUSTED}
    assert all(d.delta.orders <= 0 and d.delta.refunds <= 0 for d in windows)  # missing in speed
