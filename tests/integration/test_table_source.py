"""The speed layer fed from the orders table: order items put with boto3 on the embedded
emulator, the runtime reading the table's stream and invoking the aggregator by its template
Handler on a virtual clock, and the totals read back from DynamoDB, checked to the cent against
the events put. Dedup, quarantine and exactly-once persistence are the Kinesis source's own."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consumers.common.retry import Backoff
from salesstream.cli.table_writer import TableWriter
from salesstream.core.contract import OrderEvent
from salesstream.core.order_items import order_item
from salesstream.runtime import Call, Fault, Runtime, RuntimeOptions, SeededFaults, VirtualClock
from salesstream.runtime.model import Outcome
from tests.integration.conftest import AggregatorStack
from tests.stream_pipeline import Pipeline, Script, model, with_room_in_the_window
from tests.table_support import CHILD_SHARD, RollingStreams
from tests.window_events import order

TABLE_MAPPING = "AggregatorFunction.AggregatorOrdersTableMapping"
EXPIRES = int(time.time()) + 7 * 86_400


def table_pipeline(
    aggregator_stack: Callable[..., AggregatorStack],
    script: Script | None = None,
    hooks: Any = None,
    **options: Any,
) -> Pipeline:
    stack = aggregator_stack(ShardCount=1, WindowSeconds=900, BatchSize=10, OrdersTableSource="on")
    with_room_in_the_window(900)
    clock, script = VirtualClock(), script or Script()
    runtime = Runtime(
        stack.template,
        stack.endpoint,
        clock=clock,
        options=RuntimeOptions(**options),
        hooks=hooks or script,
        functions=["AggregatorFunction"],
    )
    return Pipeline(stack, runtime, clock, script, 900)


def put(pipeline: Pipeline, *events: OrderEvent, expires_at: int = EXPIRES) -> None:
    """What an integration does: one put_item per order event, the event id as the key."""
    dynamodb = pipeline.stack.endpoint.client("dynamodb")
    table = pipeline.stack.template.physical_name("OrdersTable")
    for event in events:
        item = order_item(json.loads(event.to_json_bytes()), expires_at=expires_at)
        dynamodb.put_item(TableName=table, Item=item)


def test_orders_put_into_the_table_are_totalled_to_the_cent(aggregator_stack: Any) -> None:
    pipeline = table_pipeline(aggregator_stack)
    events = [order(f"store-{i % 3}", 1000 + i * 7, currency="EUR" if i % 4 else "USD") for i in range(25)]
    events.append(order("store-1", 550, refund=True))
    put(pipeline, *events)
    pipeline.run()
    pipeline.close_windows()
    assert pipeline.errors() == []
    assert pipeline.totals() == model(events)
    table_stats = [s for s in pipeline.runtime.stats().shards if s.mapping == TABLE_MAPPING]
    assert sum(s.windows_closed for s in table_stats) == 1
    assert sum(s.records_delivered for s in table_stats) == 26


def test_a_changed_item_is_quarantined_a_re_put_and_a_removal_change_nothing(aggregator_stack: Any) -> None:
    pipeline = table_pipeline(aggregator_stack)
    first, second, third = order("store-1", 1000), order("store-2", 2000), order("store-1", 300)
    put(pipeline, first, second, third)
    put(pipeline, first)  # the same item again: a MODIFY with equal images on the emulator
    put(pipeline, first, expires_at=EXPIRES + 3600)  # only the TTL moved
    changed = order("store-2", 2500, event_id=second.event_id)
    put(pipeline, changed)  # the item of a counted event changed: a conflict
    dynamodb = pipeline.stack.endpoint.client("dynamodb")
    dynamodb.delete_item(
        TableName=pipeline.stack.template.physical_name("OrdersTable"),
        Key={"event_id": {"S": third.event_id}},
    )
    pipeline.run()
    pipeline.close_windows()
    assert pipeline.errors() == []
    assert pipeline.totals() == model([first, second, third])  # the first versions stand
    quarantined = list(pipeline.quarantine().values())
    assert [(reason, event_id) for reason, _, event_id in quarantined] == [
        ("duplicate_conflict", second.event_id)
    ]
    assert json.loads(quarantined[0][1])["total_minor"] == 2500  # the changed version, for a person to judge
    stats = [s for s in pipeline.runtime.stats().shards if s.mapping == TABLE_MAPPING]
    # the template's filter passes INSERT and MODIFY only: the removal never reached the function
    assert sum(s.records_filtered for s in stats) == 1
    assert pipeline.counters()["conflicts"] == 1


def test_replayed_batches_and_crashes_after_the_write_count_each_order_once(aggregator_stack: Any) -> None:
    def faults(call: Call, outcome: Outcome) -> Fault:
        if call.batch.final and not any(i.final and i.fault is Fault.CRASH for i in script.invocations):
            return Fault.CRASH  # the poller dies after the window was persisted: it comes again
        if call.batch.records and not script.invocations:
            return Fault.REPLAY  # the first batch delivered twice at once
        return Fault.NONE

    script = Script(after=faults)
    pipeline = table_pipeline(aggregator_stack, script)
    events = [order(f"store-{i % 2}", 100 + i) for i in range(23)]
    put(pipeline, *events)
    pipeline.run()
    pipeline.close_windows()
    pipeline.run()
    assert Fault.REPLAY in script.faults()
    assert Fault.CRASH in script.faults()
    assert pipeline.totals() == model(events)
    assert len([s for s in pipeline.segments() if s["shard_id"].startswith("shardId-")]) >= 1


@dataclass
class _Ok:
    status_code: int = 200
    headers: dict[str, str] | None = None


def test_the_table_writer_writes_each_valid_event_once_and_its_tally_is_what_the_speed_layer_shows(
    aggregator_stack: Any,
) -> None:
    pipeline = table_pipeline(aggregator_stack)
    dynamodb = pipeline.stack.endpoint.client("dynamodb")
    table = pipeline.stack.template.physical_name("OrdersTable")
    events = [order(f"store-{i % 4}", 200 + i, refund=i % 9 == 0) for i in range(60)]
    raws = [event.to_json_bytes() for event in events]
    bad = json.loads(raws[0])
    bad["total_minor"] += 1
    raws[10:10] = [json.dumps(bad).encode(), b"not json", raws[3]]  # two refused, one written again

    # the first call leaves its last five items unprocessed, as a throttled table would
    unprocessed: list[int] = []

    def leave_some(params: dict[str, Any], **_: Any) -> tuple[_Ok, dict[str, Any]] | None:
        if unprocessed:
            return None
        unprocessed.append(1)
        requests = json.loads(params["body"])["RequestItems"][table]
        dynamodb.batch_write_item(RequestItems={table: requests[:-5]})
        return _Ok(), {
            "UnprocessedItems": {table: requests[-5:]},
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    dynamodb.meta.events.register("before-call.dynamodb.BatchWriteItem", leave_some)
    try:
        writer = TableWriter(dynamodb, table, backoff=Backoff(sleep=lambda _: None))
        refused = writer.submit_many(raws)
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.BatchWriteItem", leave_some)
    assert [(index, rejection.reason.value) for index, rejection in refused] == [
        (10, "total_mismatch"),
        (11, "not_json"),
    ]
    result = writer.result
    assert (result.written, result.retries, result.rejected) == (61, 1, {"total_mismatch": 1, "not_json": 1})
    assert dynamodb.scan(TableName=table, Select="COUNT")["Count"] == 60

    pipeline.run()
    pipeline.close_windows()
    assert pipeline.errors() == []
    expected = model(events)
    tallied = {
        (row["store_id"], row["currency"]): (
            row["orders"],
            row["refunds"],
            row["gross_minor"],
            row["refunds_minor"],
        )
        for row in result.as_dict()["tally"]
    }
    assert tallied == {
        key: (t.orders, t.refunds, t.gross_minor, t.refunds_minor) for key, t in expected.items()
    }
    assert pipeline.totals() == expected


def test_a_fault_run_on_the_table_source_loses_nothing_and_counts_nothing_twice(
    aggregator_stack: Any,
) -> None:
    """Crashes before and after the handler, replayed batches, throttled table writes and a
    rolled stream shard, all in one run: the totals are the events' to the cent."""
    faults = SeededFaults(5, crash_before=0.15, crash_after=0.25, replay=0.3)
    pipeline = table_pipeline(aggregator_stack, hooks=faults)
    endpoint = pipeline.stack.endpoint
    dynamodb = endpoint.client("dynamodb")
    table = pipeline.stack.template.physical_name("OrdersTable")
    child_table = f"{table}-child"
    dynamodb.create_table(
        TableName=child_table,
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    arn_of = lambda name: dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]  # noqa: E731
    streams = RollingStreams(endpoint.client("dynamodbstreams"), arn_of(table), arn_of(child_table))
    pipeline.runtime._table_streams = streams  # the runtime's DynamoDB Streams client, with the roll

    throttled: list[int] = []

    def throttle_every_other_call(params: dict[str, Any], **_: Any) -> tuple[_Ok, dict[str, Any]] | None:
        throttled.append(1)
        if len(throttled) % 2:
            return None
        requests = json.loads(params["body"])["RequestItems"]
        return _Ok(), {"UnprocessedItems": requests, "ResponseMetadata": {"HTTPStatusCode": 200}}

    dynamodb.meta.events.register("before-call.dynamodb.BatchWriteItem", throttle_every_other_call)
    events: list[OrderEvent] = []
    try:
        writer = TableWriter(dynamodb, table, backoff=Backoff(sleep=lambda _: None))
        child_writer = TableWriter(dynamodb, child_table, backoff=Backoff(sleep=lambda _: None))
        for round_ in range(8):
            batch = [order(f"store-{i % 3}", 100 + 10 * round_ + i) for i in range(12)]
            events += batch
            (child_writer if round_ >= 5 else writer).submit_many([e.to_json_bytes() for e in batch])
            if round_ == 4:
                pipeline.run()
                streams.roll()  # the parent's window ends at shard end; the child starts after it
            pipeline.run()
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.BatchWriteItem", throttle_every_other_call)
    pipeline.close_windows()
    pipeline.run()

    kinds = {fault for fault, *_ in faults.injected}
    assert {Fault.CRASH, Fault.REPLAY} <= kinds
    assert writer.result.retries + child_writer.result.retries >= 4
    stats = [s for s in pipeline.runtime.stats().shards if s.mapping == TABLE_MAPPING]
    assert {s.shard_id for s in stats} == {streams.parent_id, CHILD_SHARD}
    assert all(s.records_discarded == 0 for s in stats)
    assert pipeline.totals() == model(events)  # 0 lost, 0 counted twice
