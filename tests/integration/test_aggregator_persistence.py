"""Handler contract tests, persistence (C1, C3, C4): the handler is invoked in-process with events
built from the typed Lambda models and talks to the embedded moto server through its real boto3
clients. (The through-the-stream tests come with the event-source-mapping runtime.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consumers.common.retry import Backoff
from consumers.speed.layout import STORE_TOTALS, VERSION, days_key, encode_store_totals
from consumers.speed.segments import PersistenceError, SegmentConflict
from salesstream.core.aggregation import Totals
from tests.integration.conftest import AggregatorStack, Crash, answer_with_error, crash_after, error
from tests.window_events import Shard, kpl, order

StackFactory = Callable[..., AggregatorStack]


def no_sleep(stack: AggregatorStack) -> list[float]:
    """Backoff pauses are recorded instead of slept."""
    pauses: list[float] = []
    stack.app.segments.backoff = Backoff(sleep=pauses.append)
    return pauses


def fill_window(shard: Shard, stores: int = 2, *, a_day_each: bool = False) -> dict[tuple[str, str], Totals]:
    """Records for `stores` stores in the shard's current window; returns the expected totals.
    `a_day_each`: store n sells on business day T0 - n (a DAYS# item per store)."""
    expected: dict[tuple[str, str], Totals] = {}
    for number in range(stores):
        store = f"store-{number}"
        day = -number if a_day_each else 0
        shard.put(kpl(order(store, 1000 + number, day=day), order(store, 50, refund=True, day=day)))
        expected[(store, "EUR")] = Totals(orders=1, refunds=1, gross_minor=1000 + number, refunds_minor=50)
    return expected


def run_window(stack: AggregatorStack, shard: Shard) -> dict[str, Any]:
    """One batch with every record, then the final invocation's event (returned, not invoked)."""
    state = stack.invoke(shard.event(shard.records))["state"]
    return shard.event([], state, window=shard.window_of(shard.records[0]), final=True)


def test_c1_a_replayed_final_invocation_changes_nothing(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    expected = fill_window(shard)
    final = run_window(stack, shard)
    first = stack.invoke(final)
    again = stack.invoke(final)  # Lambda did not get the answer and invokes again
    assert first == again
    assert stack.store_totals() == expected
    assert len(stack.segments()) == 1
    counters = stack.shard_item(shard.shard_id, "COUNTERS")
    assert (counters["events"], counters["segments"]) == (4, 1)


def test_c1_a_crash_after_the_write_before_returning(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    expected = fill_window(shard)
    final = run_window(stack, shard)
    crash = crash_after(stack.app.segments.dynamodb, "TransactWriteItems")
    with pytest.raises(Crash):
        stack.invoke(final)
    crash.remove()
    assert stack.store_totals() == expected  # it was written...
    stack.cold_start()
    stack.invoke(final)  # ...and the retry, in a fresh process, does not write it again
    assert stack.store_totals() == expected
    assert stack.shard_item(shard.shard_id, "TOTAL#EUR")["net_minor"] == sum(
        t.net_minor for t in expected.values()
    )


def test_c1_the_same_batch_delivered_twice(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    expected = fill_window(shard, stores=3)
    batch = shard.event(shard.records)
    lost = stack.invoke(batch)  # its answer never reached Lambda
    state = stack.invoke(batch)["state"]
    assert state == lost["state"]
    stack.invoke(shard.event([], state, window=shard.window_of(shard.records[0]), final=True))
    assert stack.store_totals() == expected


def test_c4_a_window_ended_early_gives_segments_that_add_up(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    window = shard.window_of(shard.put(order("store-1", 100)))
    state = stack.invoke(shard.event(shard.records))["state"]
    # AWS found the state over 1 MB: the segment ends here, with the records of this invocation
    early = shard.event([shard.put(order("store-1", 20))], state, window=window, terminated_early=True)
    stack.invoke(early)
    stack.invoke(early)  # retried: written once
    # the same window goes on with a fresh state: a second segment
    rest = [shard.put(order("store-1", 3)), shard.put(order("store-2", 4))]
    state = stack.invoke(shard.event(rest, {}, window=window))["state"]
    final = shard.event([], state, window=window, final=True)
    stack.invoke(final)
    stack.invoke(final)
    segments = stack.segments()
    assert [s["terminated_early"] for s in segments] == [True, False]
    assert [s["events"] for s in segments] == [2, 2]
    assert segments[0]["sk"] < segments[1]["sk"]
    assert stack.store_totals() == {
        ("store-1", "EUR"): Totals(orders=3, gross_minor=123),
        ("store-2", "EUR"): Totals(orders=1, gross_minor=4),
    }


def test_a_final_invocation_that_carries_records_folds_them_first(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    window = shard.window_of(shard.put(order("store-1", 100)))
    state = stack.invoke(shard.event(shard.records))["state"]
    stack.invoke(shard.event([shard.put(order("store-1", 5))], state, window=window, final=True))
    assert stack.store_totals() == {("store-1", "EUR"): Totals(orders=2, gross_minor=105)}


def test_chunked_transactions_replayed_from_the_middle(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    # 250 business days (one DAYS# item each) + 2 shard items + the segment: three chunks
    expected = fill_window(shard, stores=250, a_day_each=True)
    final = run_window(stack, shard)
    crash = crash_after(stack.app.segments.dynamodb, "TransactWriteItems", on_call=2)
    with pytest.raises(Crash):
        stack.invoke(final)
    crash.remove()
    half_done = stack.store_totals()
    assert 0 < len(half_done) < len(expected)
    assert stack.segments() == []  # the segment goes in the last chunk: not done yet
    stack.cold_start()
    stack.invoke(final)
    stack.invoke(final)
    assert stack.store_totals() == expected
    (segment,) = stack.segments()
    assert segment["events"] == 500
    assert stack.shard_item(shard.shard_id, "COUNTERS")["segments"] == 1


def test_c3_a_transaction_cancelled_by_throttling_is_retried(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    expected = fill_window(shard, stores=2)
    final = run_window(stack, shard)
    pauses = no_sleep(stack)
    items = 1 + 1 + 1 + 1  # the day's stores (one DAYS# item), shard total, counters, segment
    throttled = error(
        "TransactionCanceledException",
        CancellationReasons=[{"Code": "ThrottlingError", "Message": "injected"}]
        + [{"Code": "None"}] * (items - 1),
    )
    fault = answer_with_error(stack.app.segments.dynamodb, "TransactWriteItems", throttled, times=3)
    stack.invoke(final)
    assert fault.calls == 4
    assert len(pauses) == 3  # backed off before each retry
    assert stack.store_totals() == expected


def test_c3_throttled_calls_are_retried_past_botocores_own_retries(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    expected = fill_window(shard)
    final = run_window(stack, shard)
    pauses = no_sleep(stack)
    fault = answer_with_error(
        stack.app.segments.dynamodb,
        "TransactWriteItems",
        error("ProvisionedThroughputExceededException"),
        times=5,
    )
    stack.invoke(final)
    assert (fault.calls, len(pauses)) == (6, 5)
    assert all(0 < pause <= 2.0 for pause in pauses)  # capped, full jitter, recorded instead of slept
    assert stack.store_totals() == expected


def test_c3_retries_are_bounded_and_the_failure_is_loud(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    expected = fill_window(shard)
    final = run_window(stack, shard)
    no_sleep(stack)
    fault = answer_with_error(
        stack.app.segments.dynamodb, "TransactWriteItems", error("ThrottlingException"), times=1000
    )
    with pytest.raises(PersistenceError, match="after 8 attempts"):
        stack.invoke(final)
    assert stack.store_totals() == {}
    fault.remove()
    stack.invoke(final)  # Lambda retries the final invocation until it succeeds
    assert stack.store_totals() == expected


def test_a_segment_replayed_with_other_content_is_a_loud_error(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    fill_window(shard)
    final = run_window(stack, shard)
    stack.invoke(final)
    tampered = dict(final, state={**final["state"], "n": final["state"]["n"] + 1})
    with pytest.raises(SegmentConflict, match="other content"):
        stack.invoke(tampered)


def test_sequence_numbers_are_stored_as_strings(aggregator_stack: StackFactory) -> None:
    stack = aggregator_stack(ShardCount=1)
    shard = Shard(next_sequence=49590338271490256608559692538361571095921575989136588898)
    shard.put(order("store-1", 1))
    stack.invoke(run_window(stack, shard))
    (segment,) = stack.segments()
    assert segment["first_sequence"] == "49590338271490256608559692538361571095921575989136588898"
    assert segment["sk"].endswith("049590338271490256608559692538361571095921575989136588898.000000")


def test_a_days_item_written_between_the_read_and_the_transaction_is_read_and_added_again(
    aggregator_stack: StackFactory,
) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    expected = fill_window(shard)
    final = run_window(stack, shard)
    pauses = no_sleep(stack)
    day = order().business_day.isoformat()
    other_writer = stack.endpoint.client("dynamodb")  # a repair, restating one store's day
    restated = {"store-9/EUR": [1, 0, 700, 0]}
    segments_client = stack.app.segments.dynamodb
    event = f"before-call.{segments_client.meta.service_model.service_id.hyphenize()}.TransactWriteItems"
    written: list[int] = []

    def write_first(**_: Any) -> None:
        if not written:  # after the aggregator read the (absent) item, before its transaction
            written.append(1)
            other_writer.put_item(
                TableName=stack.aggregates_table,
                Item={
                    **days_key(shard.shard_id, day),
                    STORE_TOTALS: {"B": encode_store_totals(restated)},
                    VERSION: {"N": "1"},
                },
            )

    segments_client.meta.events.register(event, write_first)
    try:
        stack.invoke(final)
    finally:
        segments_client.meta.events.unregister(event, write_first)
    assert written == [1]
    assert len(pauses) == 1  # the cancelled transaction was retried once, over the item as it is now
    assert stack.store_totals() == {**expected, ("store-9", "EUR"): Totals(1, 0, 700, 0)}
    (item,) = [i for i in stack.items(stack.aggregates_table) if i["pk"] == f"DAYS#{shard.shard_id}"]
    assert (item["version"], item[f"wm#{shard.shard_id}"]) == (2, stack.segments()[0]["sk"])
    assert stack.shard_item(shard.shard_id, "COUNTERS")["segments"] == 1
