"""The views the serving layer reads: the speed layer's segments per store, currency and business
day (the aggregator's real handler persisting into the embedded moto server), and an empty batch
layer answering None rather than failing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from consumers.batch.views import BatchViews, WindowRow
from tests.integration.conftest import AggregatorStack
from tests.window_events import T0_MS, Shard, kpl, order


def views_of(stack: AggregatorStack) -> BatchViews:
    client = stack.endpoint.client
    return BatchViews(
        client("dynamodb"),
        client("s3"),
        batch_table=stack.environment["BATCH_TABLE"],
        aggregates_table=stack.aggregates_table,
        bucket=stack.bucket,
    )


def test_speed_rows_hold_each_segment_per_store_currency_and_business_day(
    aggregator_stack: Callable[..., AggregatorStack],
) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    shard.put(kpl(order("store-1", 1000), order("store-1", 300, refund=True), order("store-1", 40, day=1)))
    shard.put(kpl(order("store-2", 990, currency="USD")))
    state = stack.invoke(shard.event(shard.records))["state"]
    window = shard.window_of(shard.records[0])
    stack.invoke(shard.event([], state, window=window, final=True))

    views = views_of(stack)
    rows = views.speed_rows([shard.shard_id], after_ms=window.start_ms)
    start, end = window.start_ms, window.end_ms
    assert rows == [
        WindowRow(shard.shard_id, start, end, "store-1", "EUR", "2026-11-23", 1, 1, 1000, 300),
        WindowRow(shard.shard_id, start, end, "store-1", "EUR", "2026-11-24", 1, 0, 40, 0),
        WindowRow(shard.shard_id, start, end, "store-2", "USD", "2026-11-23", 1, 0, 990, 0),
    ]
    assert views.speed_rows([shard.shard_id], after_ms=window.end_ms) == []  # after the window: none
    assert views.speed_rows([shard.shard_id], after_ms=T0_MS, store_id="store-2")[0].net_minor == 990


def test_an_empty_batch_layer_has_no_snapshot_and_no_reconciliation(
    aggregator_stack: Callable[..., Any],
) -> None:
    views = views_of(aggregator_stack(ShardCount=1))
    assert views.latest_snapshot() is None
    assert views.latest_reconciliation() is None
