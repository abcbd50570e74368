"""The batch layer fed from the orders table: order items written with the table writer on the
embedded emulator, the aggregator and the archiver run on the table's stream by the local
runtime, then the real snapshot job and reconciliation. The archive holds the table's events in
the Kinesis records' format, so both layers judge the same bytes with the same contract."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from salesstream.cli.table_writer import TableWriter
from salesstream.core.archive import read_object
from salesstream.core.batch import Status
from salesstream.core.order_items import order_item
from salesstream.runtime import Fault, SeededFaults
from tests.batch_support import Pipeline, cold_start


@pytest.fixture
def table_run(make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path) -> Iterator[Pipeline]:
    template, _ = make_stack(ShardCount=1, WindowSeconds=1, OrdersTableSource="on")
    cold_start()
    yield Pipeline(endpoint, template, tmp_path / "spool.jsonl", 1)
    cold_start()


def archived_objects(run: Pipeline) -> list[Any]:
    s3 = run.endpoint.client("s3")
    bucket = run.template.physical_name("ArchiveBucket")
    return [read_object(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), key) for key in run.archive()]


def test_the_tables_events_are_archived_and_reconcile_to_zero(table_run: Pipeline) -> None:
    run = table_run
    dynamodb = run.endpoint.client("dynamodb")
    table = run.template.physical_name("OrdersTable")
    writer = TableWriter(dynamodb, table)
    events = run.fleet_events(240)
    assert writer.submit_many(events) == []
    # what the table's rules count nowhere, in either layer: the same item again, a changed item
    # (a conflict, quarantined), a removal; and an item the contract refuses (quarantined)
    first, second, third = (json.loads(raw) for raw in events[:3])
    dynamodb.put_item(TableName=table, Item=order_item(first, expires_at=2_000_000_000))
    changed = {**second, "store_id": "store-elsewhere"}
    dynamodb.put_item(TableName=table, Item=order_item(changed, expires_at=2_000_000_000))
    dynamodb.delete_item(TableName=table, Key={"event_id": {"S": third["event_id"]}})
    wrong = {**json.loads(events[4]), "event_id": "e-wrong-total", "total_minor": 1}
    dynamodb.put_item(TableName=table, Item=order_item(wrong, expires_at=2_000_000_000))
    run.settle()

    objects = archived_objects(run)
    kinesis_shards = {
        s["ShardId"] for s in run.endpoint.client("kinesis").list_shards(StreamName=run.stream)["Shards"]
    }
    assert objects
    assert all(o.shard.shard_id not in kinesis_shards for o in objects)
    archived_ids = [r.partition_key for o in objects for r in o.records]
    # every new item once, and nothing else: no MODIFY or REMOVE became an archived event
    assert sorted(archived_ids) == sorted([json.loads(raw)["event_id"] for raw in events] + ["e-wrong-total"])

    snapshot = run.snapshot().snapshot
    assert snapshot is not None
    assert snapshot.counts["events"] == 240
    assert snapshot.counts["refused_total_mismatch"] == 1
    net: dict[tuple[str, str], int] = {}
    for row in run.resources().views.store_day_rows(snapshot):
        net[(row.store_id, row.currency)] = net.get((row.store_id, row.currency), 0) + row.net_minor
    assert net == {(r.store_id, r.currency): r.net_minor for r in writer.result.tally}

    reconciliation = run.reconcile()
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    assert reconciliation.differences == ()
    quarantined = {item["reason"] for item in run.items("QuarantineTable") if "reason" in item}
    assert {"duplicate_conflict", "total_mismatch"} <= quarantined


def test_replayed_batches_and_crashes_after_a_write_change_neither_layer(
    make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path
) -> None:
    template, _ = make_stack(ShardCount=1, WindowSeconds=1, OrdersTableSource="on", BatchSize=10)
    cold_start()
    faults = SeededFaults(11, crash_after=0.25, replay=0.4)
    run = Pipeline(endpoint, template, tmp_path / "spool.jsonl", 1, hooks=faults)
    writer = TableWriter(endpoint.client("dynamodb"), template.physical_name("OrdersTable"))
    for start in range(0, 150, 30):  # several reads of the stream: several archiver batches
        writer.submit_many(run.fleet_events(150)[start : start + 30])
        run.runtime.run_until_idle()
    run.settle()
    replayed = {mapping for fault, mapping, *_ in faults.injected if fault is Fault.REPLAY}
    assert "ArchiverFunction.ArchiverOrdersTableMapping" in replayed
    assert {fault for fault, *_ in faults.injected} >= {Fault.CRASH, Fault.REPLAY}
    archived_ids = [r.partition_key for o in archived_objects(run) for r in o.records]
    assert len(archived_ids) == len(set(archived_ids)) == 150  # a replay puts the same object again

    snapshot = run.snapshot().snapshot
    assert snapshot is not None
    assert snapshot.counts["events"] == 150
    reconciliation = run.reconcile()
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    assert run.speed_totals() == run.batch_totals(snapshot)
    cold_start()
