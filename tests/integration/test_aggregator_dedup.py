"""Handler contract tests, exactly once under duplicates: the in-memory index, its S3 log across
cold starts, a window boundary, a reshard, and the requests the log costs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consumers.speed import handler
from salesstream.core.aggregation import Totals
from tests.integration.conftest import AggregatorStack
from tests.window_events import Shard, kpl, order

StackFactory = Callable[..., AggregatorStack]


def count_calls(client: Any, operation: str) -> list[int]:
    calls: list[int] = []
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-call.{service}.{operation}", lambda **_: calls.append(1))
    return calls


def close(stack: AggregatorStack, shard: Shard, state: dict[str, Any], records: list[Any]) -> None:
    stack.invoke(shard.event([], state, window=shard.window_of(records[0]), final=True))


def test_a_resend_is_recognised_after_a_cold_start(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    sale = order("store-1", 1000)
    first = [shard.put(kpl(sale, order("store-1", 1)))]
    state = stack.invoke(shard.event(first))["state"]
    stack.cold_start()  # the in-memory index is gone: it must come back from the log in S3
    resend = [
        shard.put(sale),
        # another basket with the same total: the effect (what changes a total) is the same
        shard.put(order("store-1", 1000, event_id=sale.event_id, quantity=2)),
        shard.put(order("store-1", 999, event_id=sale.event_id)),
    ]
    state = stack.invoke(shard.event(resend, state))["state"]
    assert (state["n"], state["dup"], state["q"]) == (2, 2, {"duplicate_conflict": 1})
    close(stack, shard, state, first)
    assert stack.store_totals() == {("store-1", "EUR"): Totals(orders=2, gross_minor=1001)}


def test_a_failed_batch_replayed_in_a_new_process_is_folded_once(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    records = [shard.put(kpl(order("store-1", 100), order("store-2", 20)))]
    stack.invoke(shard.event(records))  # logged, then the answer is lost: Lambda retries
    stack.cold_start()
    state = stack.invoke(shard.event(records))["state"]
    assert (state["n"], state["dup"]) == (2, 0)  # judged replays of the very records, not resends
    close(stack, shard, state, records)
    assert stack.store_totals() == {
        ("store-1", "EUR"): Totals(orders=1, gross_minor=100),
        ("store-2", "EUR"): Totals(orders=1, gross_minor=20),
    }


def test_a_duplicate_straddling_a_window_boundary(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1, WindowSeconds=60), Shard(window_seconds=60)
    sale = order("store-1", 700)
    first = shard.put(sale)
    shard.clock_ms = shard.window_of(first).end_ms - 3
    late = shard.put(order("store-2", 5))
    state = stack.invoke(shard.event([first, late]))["state"]
    close(stack, shard, state, [first])
    stack.cold_start()
    resend = shard.put(sale, after_ms=5)  # two seconds later, in the next window
    assert shard.window_of(resend) != shard.window_of(first)
    state = stack.invoke(shard.event([resend]))["state"]
    assert (state["n"], state["dup"]) == (0, 1)
    close(stack, shard, state, [resend])
    assert stack.store_totals() == {
        ("store-1", "EUR"): Totals(orders=1, gross_minor=700),
        ("store-2", "EUR"): Totals(orders=1, gross_minor=5),
    }
    assert [segment["duplicates"] for segment in stack.segments()] == [0, 1]


def test_a_resend_into_a_child_shard_after_a_split(aggregator_stack: StackFactory) -> None:
    stack = aggregator_stack(ShardCount=1)
    kinesis = stack.endpoint.client("kinesis")
    stream = stack.environment["STREAM_NAME"]
    parent = Shard("shardId-000000000000")
    sale = order("store-1", 4200)
    state = stack.invoke(parent.event([parent.put(sale)]))["state"]
    close(stack, parent, state, parent.records)
    (shard,) = kinesis.list_shards(StreamName=stream)["Shards"]
    high = int(shard["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent.shard_id, NewStartingHashKey=str(high // 2))
    children = [
        s
        for s in kinesis.list_shards(StreamName=stream)["Shards"]
        if s.get("ParentShardId") == parent.shard_id
    ]
    assert len(children) == 2
    stack.cold_start()
    child = Shard(children[0]["ShardId"], next_sequence=10_000, clock_ms=parent.clock_ms + 1_000)
    # a producer with a stale shard map resends into the child
    state = stack.invoke(child.event([child.put(kpl(sale, order("store-1", 1)))]))["state"]
    assert (state["n"], state["dup"]) == (1, 1)
    close(stack, child, state, child.records)
    assert stack.store_totals() == {("store-1", "EUR"): Totals(orders=2, gross_minor=4201)}


def test_a_resend_into_a_grandchild_after_a_merge_and_a_split(aggregator_stack: StackFactory) -> None:
    """Found by the stateful test's merge rule: the child of a merge is split again before the
    producer resends; the shard that counted the original is a grandparent of the one the resend
    lands in, and a cold start must read its log too."""
    stack = aggregator_stack(ShardCount=2)
    kinesis = stack.endpoint.client("kinesis")
    stream = stack.environment["STREAM_NAME"]
    left, right = (Shard(s["ShardId"]) for s in kinesis.list_shards(StreamName=stream)["Shards"])
    sale = order("store-1", 4200)
    state = stack.invoke(left.event([left.put(kpl(sale))]))["state"]  # hash key 1: the left shard's
    assert (state["n"], state["dup"]) == (1, 0)
    close(stack, left, state, left.records)
    kinesis.merge_shards(StreamName=stream, ShardToMerge=left.shard_id, AdjacentShardToMerge=right.shard_id)
    (merged,) = [s for s in kinesis.list_shards(StreamName=stream)["Shards"] if "ParentShardId" in s]
    kinesis.split_shard(StreamName=stream, ShardToSplit=merged["ShardId"], NewStartingHashKey=str(2**127))
    grandchildren = [
        s["ShardId"]
        for s in kinesis.list_shards(StreamName=stream)["Shards"]
        if s.get("ParentShardId") == merged["ShardId"]
    ]
    assert len(grandchildren) == 2
    stack.cold_start()
    child = Shard(grandchildren[0], next_sequence=10_000, clock_ms=left.clock_ms + 1_000)
    state = stack.invoke(child.event([child.put(kpl(sale, order("store-1", 1)))]))["state"]
    assert (state["n"], state["dup"]) == (1, 1)
    close(stack, child, state, child.records)
    assert stack.store_totals() == {("store-1", "EUR"): Totals(orders=2, gross_minor=4201)}


def test_the_log_costs_one_put_per_invocation_and_a_list_only_when_needed(
    aggregator_stack: StackFactory,
) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    s3 = stack.app.log.s3
    puts, lists = count_calls(s3, "PutObject"), count_calls(s3, "ListObjectsV2")
    state = stack.invoke(shard.event([shard.put(kpl(*(order("store-1", n + 1) for n in range(50))))]))[
        "state"
    ]
    assert (len(puts), len(lists)) == (1, 1)  # a cold start lists once
    for _ in range(3):  # warm, and the state names the log object this process wrote: no list
        state = stack.invoke(shard.event([shard.put(order("store-2", 3))], state))["state"]
    assert (len(puts), len(lists)) == (4, 1)
    state = stack.invoke(shard.event([shard.put(b"junk")], state))["state"]  # nothing folded: nothing logged
    assert len(puts) == 4
    close(stack, shard, state, shard.records)
    assert len(lists) == 1  # a final invocation without records reads nothing
    # the next window starts from {}: it lists once, after the newest key it knows
    next_window = shard.put(order("store-2", 3), after_ms=60_000)
    state = stack.invoke(shard.event([next_window]))["state"]
    state = stack.invoke(shard.event([shard.put(order("store-2", 3))], state))["state"]
    assert (len(puts), len(lists)) == (6, 2)


def test_another_process_wrote_in_between(
    aggregator_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes take turns on a shard (Lambda may move it): each lists what the other wrote."""
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    sale = order("store-1", 10)
    state = stack.invoke(shard.event([shard.put(order("store-1", 1))]))["state"]
    first_process = stack.app
    stack.cold_start()
    state = stack.invoke(shard.event([shard.put(sale)], state))["state"]  # a second process
    # the first process gets the shard back, warm, with a state it did not produce
    monkeypatch.setattr(handler, "aggregator", lambda: first_process)
    lists = count_calls(first_process.log.s3, "ListObjectsV2")
    state = stack.invoke(shard.event([shard.put(sale)], state))["state"]
    assert len(lists) == 1
    assert (state["n"], state["dup"]) == (2, 1)
