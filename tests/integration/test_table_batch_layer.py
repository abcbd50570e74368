"""The batch layer fed from the orders table: order items written with the table writer on the
embedded emulator, the aggregator and the archiver run on the table's stream by the local
runtime, then the real snapshot job and reconciliation. The archive holds the table's events in
the Kinesis records' format, so both layers judge the same bytes with the same contract."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from consumers.batch.reconcile import Reconciler
from consumers.batch.snapshot import SnapshotJob
from salesstream.cli.table_writer import TableWriter
from salesstream.core.archive import read_object
from salesstream.core.batch import ShardHorizon, ShardState, SnapshotInfo, Status
from salesstream.core.order_items import order_item
from salesstream.runtime import Fault, SeededFaults
from tests.batch_support import Pipeline, cold_start
from tests.table_support import CHILD_SHARD, RollingStreams


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


# --- the snapshot's horizon on the table's shards -------------------------------------------------


def table_stream_arn(run: Pipeline) -> str:
    table = run.template.physical_name("OrdersTable")
    return str(run.endpoint.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"])


def table_shard_id(run: Pipeline) -> str:
    streams = run.endpoint.client("dynamodbstreams")
    (shard,) = streams.describe_stream(StreamArn=table_stream_arn(run))["StreamDescription"]["Shards"]
    return str(shard["ShardId"])


def first_created_ms(run: Pipeline, event_ids: set[str]) -> int:
    """The earliest creation time (whole seconds, as archived) of these items' stream records."""
    streams, arn = run.endpoint.client("dynamodbstreams"), table_stream_arn(run)
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=table_shard_id(run), ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    created = [
        record["dynamodb"]["ApproximateCreationDateTime"].timestamp()
        for record in streams.get_records(ShardIterator=iterator)["Records"]
        if record["dynamodb"]["Keys"]["event_id"]["S"] in event_ids
    ]
    return math.floor(min(created)) * 1000


def horizon_of(snapshot: SnapshotInfo, shard_id: str) -> ShardHorizon:
    (shard,) = [s for s in snapshot.shards if s.shard_id == shard_id]
    return shard


def only(run: Pipeline, function: str) -> Pipeline:
    """The same stack with one stream function running (its checkpoints are the stack's)."""
    return Pipeline(run.endpoint, run.template, run.spool, run.window_seconds, functions=(function,))


def write(run: Pipeline, events: list[bytes]) -> set[str]:
    writer = TableWriter(run.endpoint.client("dynamodb"), run.template.physical_name("OrdersTable"))
    assert writer.submit_many(events) == []
    return {json.loads(raw)["event_id"] for raw in events}


def test_a_snapshot_while_the_tables_archiver_is_behind_holds_its_horizon_until_it_caught_up(
    table_run: Pipeline,
) -> None:
    run = table_run
    events = run.fleet_events(120)
    write(run, events[:60])
    run.settle()  # both layers have the first orders
    unarchived = write(run, events[60:])
    only(run, "AggregatorFunction").settle()  # the archiver falls behind: the speed layer alone

    shard_id = table_shard_id(run)
    first_unarchived = first_created_ms(run, unarchived)
    behind = run.snapshot().snapshot
    assert behind is not None
    assert horizon_of(behind, shard_id).state is ShardState.BEHIND
    assert horizon_of(behind, shard_id).horizon_ms == first_unarchived
    assert behind.horizon_ms == first_unarchived  # whole seconds: a 1 s window's boundary
    assert behind.counts["events"] == 60
    # the speed layer's later windows start after the horizon: nothing is speed-only
    reconciliation = run.reconcile()
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    assert reconciliation.differences == ()

    only(run, "ArchiverFunction").settle()  # the archiver catches up
    caught_up = run.snapshot().snapshot
    assert caught_up is not None
    assert horizon_of(caught_up, shard_id).state is ShardState.CAUGHT_UP
    assert caught_up.horizon_ms > first_unarchived
    assert caught_up.counts["events"] == 120
    reconciliation = run.reconcile()
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    assert run.speed_totals() == run.batch_totals(caught_up)


def test_a_rolled_table_shard_holds_the_horizon_until_archived_to_its_end_then_counts_as_ended(
    table_run: Pipeline,
) -> None:
    # the emulator never rolls a stream's shards: the roll is simulated over the real API
    # (tests.table_support.RollingStreams), its child shard being a second table's stream
    run = table_run
    dynamodb = run.endpoint.client("dynamodb")
    child_table = run.template.physical_name("OrdersTable") + "-child"
    dynamodb.create_table(
        TableName=child_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    try:
        events = run.fleet_events(60)
        write(run, events[:30])
        run.settle()
        unarchived = write(run, events[30:])
        only(run, "AggregatorFunction").settle()

        parent_arn = table_stream_arn(run)
        child_arn = dynamodb.describe_table(TableName=child_table)["Table"]["LatestStreamArn"]
        rolling = RollingStreams(run.endpoint.client("dynamodbstreams"), parent_arn, child_arn)
        rolling.roll()
        resources = replace(run.resources(), dynamodbstreams=rolling)

        # closed, but the archive has not read it to its end: it holds the horizon back
        outcome = SnapshotJob(resources).run()
        assert outcome.snapshot is not None
        parent = horizon_of(outcome.snapshot, rolling.parent_id)
        assert (parent.state, parent.horizon_ms) == (ShardState.BEHIND, first_created_ms(run, unarchived))
        assert horizon_of(outcome.snapshot, CHILD_SHARD).state is ShardState.CAUGHT_UP  # quiet child
        assert outcome.snapshot.counts["events"] == 30

        only(run, "ArchiverFunction").settle()
        outcome = SnapshotJob(resources).run()
        assert outcome.snapshot is not None
        parent = horizon_of(outcome.snapshot, rolling.parent_id)
        assert (parent.state, parent.horizon_ms) == (ShardState.CLOSED, None)  # ended: nothing held back
        assert horizon_of(outcome.snapshot, CHILD_SHARD).state is ShardState.CAUGHT_UP
        assert outcome.snapshot.counts["events"] == 60
        reconciliation = Reconciler(resources).reconcile(outcome.snapshot)
        assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    finally:
        dynamodb.delete_table(TableName=child_table)
