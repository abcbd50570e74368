"""The contract of AWS Lambda's Kinesis event source mapping, rule by rule, on the runtime.

Every test runs the runtime on the embedded moto server through real Kinesis, DynamoDB and SQS
clients, with reference handlers that parse every event with the project's pydantic models. A
virtual clock closes windows on demand, so the suite takes seconds; where a window must hold
records of two real arrival seconds, a test sleeps into the next one-second window.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from typing import Any

import pytest

from salesstream.core.lambda_events import DynamodbTimeWindowEvent, KinesisTimeWindowEvent
from salesstream.core.windows import Window, parse_rfc3339, rfc3339
from salesstream.runtime import (
    CheckpointConflict,
    Fault,
    Hooks,
    Runtime,
    RuntimeOptions,
    SeededFaults,
    VirtualClock,
    WallClock,
)
from salesstream.runtime.log import logger
from tests.conftest import load_event
from tests.runtime_support import (
    Env,
    RecordLog,
    WindowSum,
    plain_function,
    sleep_into_next_window,
    template_with,
)
from tests.table_support import (
    CHILD_SHARD,
    TABLE_MAPPING,
    RollingStreams,
    TableEnv,
    TableWindowSum,
    amount_of,
    item,
    table_template,
)

AGGREGATOR = "AggregatorFunction.Orders"


@pytest.fixture
def esm(endpoint: Any, provision_template: Any) -> Any:
    """Factory: a fresh stack (one shard, 60 s windows unless told) with a runtime on it."""

    def make(
        handlers: Any,
        *,
        parameters: dict[str, Any] | None = None,
        aggregator: dict[str, Any] | None = None,
        extra_functions: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        hooks: Hooks | None = None,
        clock: Any = None,
    ) -> Env:
        template = template_with(
            endpoint,
            "t" + uuid.uuid4().hex[:10],
            parameters={"ShardCount": 1, "WindowSeconds": 60, **(parameters or {})},
            aggregator={"MaximumBatchingWindowInSeconds": 0, **(aggregator or {})},
            extra_functions=extra_functions,
        )
        provision_template(template)
        return Env(
            endpoint,
            template,
            handlers if isinstance(handlers, dict) else {"AggregatorFunction": handlers},
            clock or VirtualClock(),
            RuntimeOptions(**{"window_close_grace_seconds": 0, **(options or {})}),
            hooks,
        )

    return make


def close_windows(env: Env, seconds: float = 61) -> None:
    env.runtime.run_until_idle()
    env.clock.advance(seconds)
    env.runtime.run_until_idle()


def delivered(handler: Any) -> list[str]:
    """Sequence numbers of the records in every invocation, in order."""
    return [r["kinesis"]["sequenceNumber"] for event in handler.events for r in event["Records"]]


def stats_of(env: Env, mapping: str = AGGREGATOR) -> Any:
    (shard,) = [s for s in env.runtime.stats().shards if s.mapping == mapping]
    return shard


def checkpoint_of(env: Env, shard_id: str = "shardId-000000000000", mapping: str = AGGREGATOR) -> Any:
    return env.runtime.store.load(mapping, shard_id)


# --- event shape and batching --------------------------------------------------------------


def test_events_have_the_exact_aws_shape_and_validate_against_the_models(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler)
    placed = env.put([5, 7])
    close_windows(env)

    sample = load_event("kinesis_tumbling_window.json")
    first = handler.events[0]
    assert set(first) == set(sample)
    assert set(first["Records"][0]) == set(sample["Records"][0])
    assert set(first["Records"][0]["kinesis"]) == set(sample["Records"][0]["kinesis"])
    record = first["Records"][0]
    shard_id, sequence = placed[0]
    assert record["eventID"] == f"{shard_id}:{sequence}"
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventSourceARN"] == first["eventSourceARN"] == env.template.arn("OrdersStream")
    assert record["awsRegion"] == env.endpoint.region
    assert record["invokeIdentityArn"].startswith("arn:aws:iam::")
    assert base64.b64decode(record["kinesis"]["data"]) == b'{"amount": 5, "i": 0}'
    arrival = record["kinesis"]["approximateArrivalTimestamp"]
    assert isinstance(arrival, float)
    assert abs(arrival - time.time()) < 300
    assert (first["shardId"], first["state"]) == (shard_id, {})
    assert (first["isFinalInvokeForWindow"], first["isWindowTerminatedEarly"]) == (False, False)
    for event in handler.events:
        KinesisTimeWindowEvent.model_validate(event)
        assert event["window"]["start"].endswith("Z")
        assert event["window"]["end"].endswith("Z")


def test_a_batch_holds_at_most_batch_size_records(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler, parameters={"BatchSize": 3})
    env.put(list(range(10)))
    close_windows(env)
    sizes = [len(event["Records"]) for event in handler.events if event["Records"]]
    assert max(sizes) == 3
    assert sum(sizes) == 10


def test_the_batching_window_gathers_records_until_it_is_over_or_the_batch_is_full(esm: Any) -> None:
    handler = WindowSum()
    env = esm(
        handler,
        parameters={"BatchSize": 3, "WindowSeconds": 900},
        aggregator={"MaximumBatchingWindowInSeconds": 2},
    )
    env.put([1, 2])
    env.runtime.step()
    env.clock.advance(1)
    env.runtime.step()
    assert handler.events == []  # 2 of 3 records, 1 s of a 2 s batching window
    env.clock.advance(1)
    env.runtime.step()
    assert [len(e["Records"]) for e in handler.events] == [2]
    env.put([3, 4, 5])
    env.clock.advance(1)  # the next poll is due
    env.runtime.step()
    assert [len(e["Records"]) for e in handler.events] == [2, 3]  # full: no waiting


def test_a_batch_stays_within_the_invocation_payload_limit(esm: Any) -> None:
    handler = WindowSum(keep_sequences=False)
    env = esm(handler, options={"payload_limit_bytes": 4000})
    env.put(list(range(30)))
    close_windows(env)
    assert all(len(json.dumps(event)) <= 4000 for event in handler.events)
    assert sum(len(e["Records"]) for e in handler.events) == 30
    assert max(len(e["Records"]) for e in handler.events) > 1


def test_reading_follows_the_shard_iterator_across_get_records_calls(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler, options={"get_records_limit": 4})
    placed = env.put(list(range(23)))
    close_windows(env)
    assert delivered(handler) == [sequence for _, sequence in placed]


@pytest.mark.parametrize(("concurrent", "expected"), [(1, 1), (3, 3)])
def test_invocations_of_one_function_run_at_once_only_when_allowed(
    esm: Any, concurrent: int, expected: int
) -> None:
    """One warm sandbox by default; `concurrent_invocations` lets shards invoke at once, as on
    Lambda (one sandbox per shard), for thread-safe handlers."""
    in_flight = [0]
    most = [0]
    lock = threading.Lock()
    inner = WindowSum()

    def handler(event: dict[str, Any], context: Any) -> Any:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            time.sleep(0.3)  # long enough for the other shards' batches to be due meanwhile
            return inner(event, context)
        finally:
            with lock:
                in_flight[0] -= 1

    env = esm(
        handler,
        parameters={"ShardCount": 3},
        clock=WallClock(),
        options={"poll_interval_seconds": 0.05, "concurrent_invocations": concurrent},
    )
    env.put(list(range(30)))
    env.runtime.start()
    deadline = time.monotonic() + 30
    while len(delivered(inner)) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    env.runtime.stop()
    assert len(delivered(inner)) == 30
    assert most[0] == expected


def test_threads_invoke_each_shard_in_order_one_batch_at_a_time_and_stop_cleanly(esm: Any) -> None:
    in_flight: dict[str, int] = {}
    overlaps: list[str] = []
    lock = threading.Lock()
    inner = WindowSum()

    def handler(event: dict[str, Any], context: Any) -> Any:
        with lock:
            in_flight[event["shardId"]] = in_flight.get(event["shardId"], 0) + 1
            if in_flight[event["shardId"]] > 1:
                overlaps.append(event["shardId"])
        try:
            time.sleep(0.005)
            return inner(event, context)
        finally:
            with lock:
                in_flight[event["shardId"]] -= 1

    env = esm(
        handler,
        parameters={"ShardCount": 3, "BatchSize": 5},
        clock=WallClock(),
        options={"poll_interval_seconds": 0.1},
    )
    placed = env.put(list(range(60)))
    env.runtime.start()
    deadline = time.monotonic() + 30
    while len(delivered(inner)) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    env.runtime.stop()
    assert overlaps == []
    by_shard: dict[str, list[str]] = {}
    for event in inner.events:
        by_shard.setdefault(event["shardId"], []).extend(
            r["kinesis"]["sequenceNumber"] for r in event["Records"]
        )
    assert len(by_shard) == 3
    for shard_id, sequences in by_shard.items():
        assert sequences == [s for sh, s in placed if sh == shard_id]  # in order, once each


def test_two_mappings_on_one_stream_keep_their_own_positions(esm: Any) -> None:
    broken = {"yes": True}
    windowed = WindowSum(fail=lambda event: "raise" if broken["yes"] else None)
    plain = RecordLog()
    env = esm(
        {"AggregatorFunction": windowed, "ArchiverFunction": plain},
        extra_functions={"ArchiverFunction": plain_function("archiver")},
        aggregator={"BisectBatchOnFunctionError": False, "MaximumRetryAttempts": -1},
    )
    placed = env.put(list(range(10)))
    env.runtime.run_until_idle()
    assert len(plain.seen) == 10  # the plain mapping read everything ...
    assert checkpoint_of(env, mapping="ArchiverFunction.Orders").position == placed[-1][1]
    assert checkpoint_of(env).position is None  # ... while the windowed one retries its first batch
    broken["yes"] = False
    close_windows(env)
    assert sum(windowed.totals_by_window().values()) == sum(range(10))


# --- tumbling windows ------------------------------------------------------------------------


def test_windows_are_epoch_aligned_by_arrival_and_a_batch_never_spans_two(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler, parameters={"WindowSeconds": 1, "BatchSize": 100})
    env.put([1, 2, 3])
    sleep_into_next_window(1)
    env.put([10, 20])
    close_windows(env, seconds=3)
    for event in handler.events:
        start, end = (parse_rfc3339(event["window"][edge]) for edge in ("start", "end"))
        assert (start % 1000, end - start) == (0, 1000)
        for record in event["Records"]:
            assert start <= round(record["kinesis"]["approximateArrivalTimestamp"] * 1000) < end
    expected = env.expected_window_totals(1)
    assert len(expected) >= 2
    assert handler.totals_by_window() == expected
    assert len(handler.finals()) == len(expected)


def test_state_starts_empty_and_moves_forward_only_when_an_invocation_succeeds(esm: Any) -> None:
    calls = {"n": 0}

    def fail_second(event: Any) -> Any:
        calls["n"] += 1
        return "raise" if calls["n"] == 2 else None

    handler = WindowSum(fail=fail_second)
    env = esm(handler, parameters={"BatchSize": 2}, aggregator={"BisectBatchOnFunctionError": False})
    env.put([1, 2, 3, 4, 5, 6])
    close_windows(env)
    first, failed, retried = handler.events[:3]
    assert first["state"] == {}
    assert failed["state"] == retried["state"] == {"total": 3, "sequences": ["1", "2"]}
    assert failed["Records"] == retried["Records"]
    assert sum(handler.totals_by_window().values()) == 21


def test_a_response_without_state_is_a_failed_invocation(esm: Any) -> None:
    calls = {"n": 0}

    def no_state_once(event: Any) -> Any:
        calls["n"] += 1
        return "no-state" if calls["n"] == 1 else None

    handler = WindowSum(fail=no_state_once)
    env = esm(handler, aggregator={"BisectBatchOnFunctionError": False})
    env.put([4, 5])
    close_windows(env)
    assert handler.events[0]["Records"] == handler.events[1]["Records"]
    assert handler.events[1]["state"] == {}
    assert stats_of(env).function_errors == 1
    assert sum(handler.totals_by_window().values()) == 9


def test_the_final_invocation_comes_once_after_the_window_ends_by_the_clock(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler)
    env.put([1, 2, 3])
    env.runtime.run_until_idle()
    ((_, arrival_ms, _), *_) = env.stream_contents()["shardId-000000000000"]
    window = Window.containing(arrival_ms, 60)
    env.clock.set(max(env.clock.now_ms(), window.end_ms - 1))
    env.runtime.run_until_idle()
    assert handler.finals() == []
    env.clock.set(window.end_ms)
    env.runtime.run_until_idle()
    env.clock.advance(600)
    env.runtime.run_until_idle()
    (final,) = handler.finals()
    assert final["Records"] == []
    assert final["state"] == {"total": 6, "sequences": ["1", "2", "3"]}  # the last state returned
    assert final["window"] == window.as_event()


def test_a_quiet_shard_closes_its_window_by_the_wall_clock(esm: Any) -> None:
    handler = WindowSum()
    env = esm(
        handler,
        parameters={"WindowSeconds": 1},
        clock=WallClock(),
        options={"window_close_grace_seconds": 0.2, "poll_interval_seconds": 0.1},
    )
    env.put([7, 8])
    env.runtime.start()
    deadline = time.monotonic() + 10
    while not handler.finals() and time.monotonic() < deadline:
        time.sleep(0.05)
    env.runtime.stop()
    assert sum(handler.totals_by_window().values()) == 15


def one_second_window_read(esm: Any, grace_seconds: float) -> tuple[WindowSum, Any, int]:
    """A 1 s window holding 4 and 5, read and folded by a caught-up shard whose next regular poll is
    30 s away; returns the handler, the environment and the window's start (ms)."""
    handler = WindowSum()
    env = esm(
        handler,
        parameters={"WindowSeconds": 1},
        options={"window_close_grace_seconds": grace_seconds, "poll_interval_seconds": 30},
    )
    env.put([4, 5])
    env.runtime.step()  # reads both records, caught up: the next regular poll is 30 s away
    env.runtime.step()  # the batch (batching window 0)
    return handler, env, parse_rfc3339(stats_of(env).open_window)


def test_an_open_window_is_read_again_as_soon_as_it_can_close(esm: Any) -> None:
    """The read that proves a window complete comes at its end plus the grace, not at the next
    regular poll: the window's result does not wait up to a poll interval."""
    handler, env, window_start = one_second_window_read(esm, 0.2)
    env.clock.set(window_start + 1_000 + 200)  # the window's end plus the grace
    env.runtime.step()  # the closing read
    env.runtime.step()  # the final invocation
    assert [e["window"]["start"] for e in handler.finals()] == [rfc3339(window_start)]
    assert sum(handler.totals_by_window().values()) == 9


def test_a_busy_shard_closes_its_window_once_a_record_past_the_end_is_read_without_the_grace(
    esm: Any,
) -> None:
    """A record past the end proves the window complete (a batch never takes a record behind it):
    the final invocation comes at the next read after the end, not after the grace."""
    handler, env, window_start = one_second_window_read(esm, 5)
    time.sleep(max(0.0, (window_start + 1_000) / 1000 - time.time()) + 0.05)  # arrivals are real time
    env.put([6])  # the next window's first record
    env.clock.set(window_start + 1_000 + 100)  # the end plus one closing-read interval, in the grace
    for _ in range(4):
        env.runtime.step()
    assert [e["window"]["start"] for e in handler.finals()] == [rfc3339(window_start)]
    assert [
        total for (_, start), total in handler.totals_by_window().items() if start == rfc3339(window_start)
    ] == [9]


def test_a_quiet_shard_waits_for_the_grace_before_it_closes_a_window(esm: Any) -> None:
    handler, env, window_start = one_second_window_read(esm, 0.5)
    for after_end_ms in (100, 200, 400):  # closing reads find nothing past the end
        env.clock.set(window_start + 1_000 + after_end_ms)
        env.runtime.step()
        env.runtime.step()
        assert handler.finals() == []
    env.clock.set(window_start + 1_000 + 500)
    env.runtime.step()
    env.runtime.step()
    assert [e["window"]["start"] for e in handler.finals()] == [rfc3339(window_start)]


def test_the_final_invocation_can_carry_the_windows_last_records(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler, options={"final_invocation_carries_records": True})
    env.put([1, 2, 3])
    env.clock.advance(3600)  # the window is over before the runtime first reads it
    env.runtime.run_until_idle()
    assert [len(e["Records"]) for e in handler.finals()] == [3]
    assert all(e["Records"] for e in handler.events)  # no record-less final as well
    assert sum(handler.totals_by_window().values()) == 6


def test_a_failing_final_invocation_holds_the_shard_until_it_succeeds(esm: Any) -> None:
    broken = {"yes": True}
    handler = WindowSum(
        fail=lambda event: "raise" if event.isFinalInvokeForWindow and broken["yes"] else None
    )
    env = esm(handler, parameters={"WindowSeconds": 1})
    env.put([1])
    sleep_into_next_window(1)
    env.put([2])
    env.clock.advance(5)
    for _ in range(3):
        env.runtime.run_until_idle()
    first_final = next(i for i, e in enumerate(handler.events) if e["isFinalInvokeForWindow"])
    held = handler.events[first_final:]
    assert len(held) == 3  # one failed attempt per pass, nothing else
    assert all(e["isFinalInvokeForWindow"] and e["window"] == held[0]["window"] for e in held)
    assert stats_of(env).final_invocation_failures == 3
    broken["yes"] = False
    env.runtime.run_until_idle()
    assert handler.totals_by_window() == env.expected_window_totals(1)


def test_a_state_over_the_limit_ends_the_window_segment_early_and_the_window_goes_on(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler, parameters={"BatchSize": 2}, options={"state_limit_bytes": 60})
    placed = env.put(list(range(1, 21)))
    close_windows(env)
    ends = [i for i, e in enumerate(handler.events) if e["isWindowTerminatedEarly"]]
    assert ends
    for i in ends:
        end = handler.events[i]
        assert end["isFinalInvokeForWindow"]
        assert end["Records"] == []
        assert len(json.dumps(end["state"], separators=(",", ":"))) <= 60
        assert handler.events[i + 1]["state"] == {}  # the next segment starts fresh
    assert len(handler.segments) == len(ends) + 1
    (sequences,) = handler.sequences_by_window().values()
    assert sequences == [s for _, s in placed]  # each record in exactly one segment
    assert sum(handler.totals_by_window().values()) == sum(range(1, 21))


def test_a_first_batch_whose_state_alone_is_over_the_limit_is_a_function_error(esm: Any) -> None:
    handler = WindowSum()
    env = esm(
        handler,
        aggregator={"BisectBatchOnFunctionError": False, "MaximumRetryAttempts": 0},
        options={"state_limit_bytes": 10},
    )
    env.put([1])
    close_windows(env)
    (notice,) = env.failure_notices()
    assert notice["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert stats_of(env).function_errors == 1


# --- failures --------------------------------------------------------------------------------


def test_batch_item_failures_retry_from_the_lowest_failed_sequence_number(esm: Any) -> None:
    calls = {"n": 0}
    placed: list[tuple[str, str]] = []

    def report_two(event: Any) -> Any:
        calls["n"] += 1
        return [placed[6][1], placed[3][1]] if calls["n"] == 1 else None

    handler = WindowSum(fail=report_two)
    env = esm(handler, parameters={"BatchSize": 10})
    placed += env.put(list(range(1, 11)))
    close_windows(env)
    retried = handler.events[1]
    assert retried["Records"][0]["kinesis"]["sequenceNumber"] == placed[3][1]
    assert retried["state"] == {"total": 6, "sequences": [s for _, s in placed[:3]]}
    (sequences,) = handler.sequences_by_window().values()
    assert sequences == [s for _, s in placed]
    assert stats_of(env).partial_failures == 1


@pytest.mark.parametrize(
    "failures",
    [[{"itemIdentifier": ""}], [{"itemIdentifier": None}], [{"itemId": "1"}], [{"itemIdentifier": "999"}]],
    ids=["empty", "null", "bad-key", "not-in-batch"],
)
def test_a_malformed_batch_item_failure_fails_the_whole_batch(esm: Any, failures: list[Any]) -> None:
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        seen.append(event)
        if len(seen) == 1:
            return {"state": {"total": 99}, "batchItemFailures": failures}
        return {"state": {"total": 1}, "batchItemFailures": []}

    env = esm(handler, aggregator={"BisectBatchOnFunctionError": False})
    env.put([1, 2, 3])
    env.runtime.run_until_idle()
    assert seen[1]["Records"] == seen[0]["Records"]  # the whole batch again ...
    assert seen[1]["state"] == {}  # ... with the state from before it
    assert stats_of(env).function_errors == 1


@pytest.mark.parametrize("failures", [[], None], ids=["empty-list", "null"])
def test_an_empty_batch_item_failures_list_is_full_success(esm: Any, failures: Any) -> None:
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        seen.append(event)
        return {"state": {"n": len(event["Records"])}, "batchItemFailures": failures}

    env = esm(handler)
    placed = env.put([1, 2, 3])
    env.runtime.run_until_idle()
    assert len(seen) == 1
    assert checkpoint_of(env).position == placed[-1][1]


def test_bisect_on_function_error_splits_the_batch_until_the_poison_record_is_alone(esm: Any) -> None:
    def poison(event: Any) -> Any:
        amounts = [json.loads(r.kinesis.raw_data())["amount"] for r in event.Records]
        return "raise" if 5 in amounts else None

    handler = WindowSum(fail=poison)
    env = esm(handler, parameters={"BatchSize": 8}, aggregator={"MaximumRetryAttempts": 2})
    env.put(list(range(8)))
    close_windows(env)
    sizes = [len(e["Records"]) for e in handler.events if e["Records"]]
    assert sizes == [8, 4, 4, 2, 1, 1, 1, 1, 2]  # splits are free; the lone poison gets 1 + 2 retries
    (notice,) = env.failure_notices()
    assert notice["KinesisBatchInfo"]["batchSize"] == 1
    assert notice["requestContext"]["approximateInvokeCount"] == 3
    assert sum(handler.totals_by_window().values()) == sum(range(8)) - 5


def test_exhausted_retries_send_only_metadata_to_the_on_failure_destination(esm: Any) -> None:
    handler = WindowSum(
        fail=lambda event: "raise" if any(b"42" in r.kinesis.raw_data() for r in event.Records) else None
    )
    env = esm(
        handler,
        parameters={"BatchSize": 3},
        aggregator={"BisectBatchOnFunctionError": False, "MaximumRetryAttempts": 1},
    )
    placed = env.put([1, 42, 3])
    env.put([4])
    close_windows(env)
    (notice,) = env.failure_notices()
    assert set(notice) == {"requestContext", "responseContext", "version", "timestamp", "KinesisBatchInfo"}
    assert notice["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert notice["requestContext"]["approximateInvokeCount"] == 2  # the call and one retry
    assert notice["requestContext"]["functionArn"] == env.template.arn("AggregatorFunction")
    assert notice["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    info = notice["KinesisBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"]) == (
        placed[0][0],
        placed[0][1],
        placed[2][1],
    )
    assert (info["batchSize"], info["streamArn"]) == (3, env.template.arn("OrdersStream"))
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    body = json.dumps(notice)
    assert "amount" not in body
    assert base64.b64encode(b'{"amount": 42').decode()[:12] not in body
    assert sum(handler.totals_by_window().values()) == 4  # the shard moved on


def test_records_older_than_the_maximum_age_go_to_the_destination_without_invocation(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler, aggregator={"MaximumRecordAgeInSeconds": 60})
    placed = env.put([1, 2, 3])
    env.clock.advance(61)
    env.runtime.run_until_idle()
    assert handler.events == []
    (notice,) = env.failure_notices()
    assert notice["requestContext"]["condition"] == "RecordAgeExceeded"
    assert notice["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in notice  # never invoked
    assert notice["KinesisBatchInfo"]["batchSize"] == 3
    assert checkpoint_of(env).position == placed[-1][1]


def test_a_handler_that_overruns_its_timeout_has_failed(esm: Any) -> None:
    remaining: list[int] = []
    inner = WindowSum()

    def slow_once(event: dict[str, Any], context: Any) -> Any:
        remaining.append(context.get_remaining_time_in_millis())
        if len(remaining) == 1:
            time.sleep(0.6)
        return inner(event, context)

    env = esm(slow_once, options={"timeout_seconds": 0.3}, aggregator={"BisectBatchOnFunctionError": False})
    env.put([1, 2])
    env.runtime.run_until_idle()
    assert 0 < remaining[0] <= 300
    assert stats_of(env).function_errors == 1
    assert inner.events[-1]["state"] == {}  # the retry starts from the state before the timeout
    assert inner.events[-1]["Records"] == inner.events[0]["Records"]


def test_the_handler_runs_with_a_lambda_like_context_and_the_template_environment(esm: Any) -> None:
    seen: list[tuple[Any, dict[str, str]]] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        seen.append((context, dict(os.environ)))
        return {"state": {}}

    env = esm(handler, parameters={"BatchSize": 1})
    env.put([1, 2])
    env.runtime.run_until_idle()
    (first, environment), (second, _) = seen
    function = env.template.function("AggregatorFunction")
    assert (first.function_name, first.memory_limit_in_mb) == (function.name, 1024)
    assert first.invoked_function_arn == env.template.arn("AggregatorFunction")
    assert first.aws_request_id != second.aws_request_id
    assert 59_000 < first.get_remaining_time_in_millis() <= 60_000  # the template's Timeout
    assert environment["STREAM_NAME"] == env.stream
    assert environment["AGGREGATES_TABLE"] == function.environment["AGGREGATES_TABLE"]
    assert environment["WINDOW_SECONDS"] == "60"


def test_building_and_running_a_runtime_leaves_the_process_environment_as_it_was(esm: Any) -> None:
    before = dict(os.environ)
    seen: list[dict[str, str]] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        seen.append(dict(os.environ))
        return {"state": {}}

    env = esm(
        handler,
        parameters={"BatchSize": 1, "ShardCount": 2},
        clock=WallClock(),
        options={"poll_interval_seconds": 0.05, "concurrent_invocations": 2},
    )
    assert dict(os.environ) == before  # built: nothing set yet
    env.put([1, 2])
    env.runtime.run_until_idle()
    function = env.template.function("AggregatorFunction")
    assert len(seen) == 2
    assert all(e["AGGREGATES_TABLE"] == function.environment["AGGREGATES_TABLE"] for e in seen)
    assert dict(os.environ) == before  # run: restored after every invocation

    env.runtime.start()  # threaded, as the CLI runs it
    env.put([3, 4, 5, 6])
    deadline = time.monotonic() + 30
    while len(seen) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    env.runtime.stop()
    assert len(seen) == 6, "the threaded runtime did not deliver the other four records"
    assert seen[-1]["STREAM_NAME"] == env.stream
    assert dict(os.environ) == before


# --- filtering -------------------------------------------------------------------------------


def test_filter_criteria_drop_records_before_batching_and_checkpoint_past_them(esm: Any) -> None:
    handler = WindowSum()
    pattern = {"data": {"amount": [{"numeric": [">", 10]}]}}
    env = esm(handler, aggregator={"FilterCriteria": {"Filters": [{"Pattern": json.dumps(pattern)}]}})
    placed = env.put([5, 20, 7, 30, 1])
    close_windows(env)
    assert delivered(handler) == [placed[1][1], placed[3][1]]
    assert sum(handler.totals_by_window().values()) == 50
    assert stats_of(env).records_filtered == 3
    assert checkpoint_of(env).position == placed[-1][1]  # the trailing dropped record too


# --- resharding ------------------------------------------------------------------------------


def test_a_split_finishes_the_parents_window_and_children_start_after_it(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler)
    env.put([1, 2, 3, 4, 5])
    env.runtime.run_until_idle()
    kinesis = env.endpoint.client("kinesis")
    kinesis.split_shard(
        StreamName=env.stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127)
    )
    env.put(list(range(10, 30)))
    env.runtime.run_until_idle()  # no clock move: the parent's window closes at shard end
    parent_final = next(
        i
        for i, e in enumerate(handler.events)
        if e["shardId"] == "shardId-000000000000" and e["isFinalInvokeForWindow"]
    )
    children = [i for i, e in enumerate(handler.events) if e["shardId"] != "shardId-000000000000"]
    assert children
    assert min(children) > parent_final
    assert {handler.events[i]["shardId"] for i in children} == {
        "shardId-000000000001",
        "shardId-000000000002",
    }
    assert all(handler.events[i]["state"] == {} for i in children[:1])  # fresh windows
    assert checkpoint_of(env).finished
    close_windows(env)
    assert handler.totals_by_window() == env.expected_window_totals(60)


def test_a_merged_shard_starts_only_after_both_parents_are_finished(esm: Any) -> None:
    broken = {"yes": True}
    handler = WindowSum(
        fail=lambda e: (
            "raise" if broken["yes"] and e.isFinalInvokeForWindow and e.shardId.endswith("0") else None
        )
    )
    env = esm(handler, parameters={"ShardCount": 2})
    env.put(list(range(10)))
    env.runtime.run_until_idle()
    kinesis = env.endpoint.client("kinesis")
    kinesis.merge_shards(
        StreamName=env.stream,
        ShardToMerge="shardId-000000000000",
        AdjacentShardToMerge="shardId-000000000001",
    )
    env.put(list(range(100, 105)))
    env.runtime.run_until_idle()
    assert not [e for e in handler.events if e["shardId"] == "shardId-000000000002"]  # a parent is held
    broken["yes"] = False
    env.runtime.run_until_idle()
    child = [i for i, e in enumerate(handler.events) if e["shardId"] == "shardId-000000000002"]
    parent_finals = [
        i
        for i, e in enumerate(handler.events)
        if e["isFinalInvokeForWindow"] and e["shardId"] != "shardId-000000000002"
    ]
    assert child
    assert min(child) > max(parent_finals)
    close_windows(env)
    assert handler.totals_by_window() == env.expected_window_totals(60)


# --- checkpoints and restarts ----------------------------------------------------------------


def test_a_restart_resumes_from_the_checkpoint_with_its_window_state(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler)
    placed = env.put([1, 2, 3])
    env.runtime.run_until_idle()
    state_before = handler.events[-1]["state"]
    env.restart()
    placed += env.put([4, 5])
    close_windows(env)
    after = handler.events[1]
    assert after["state"] == {"total": 6, "sequences": ["1", "2", "3"]}
    assert state_before == {}
    assert after["Records"][0]["kinesis"]["sequenceNumber"] == placed[3][1]
    assert delivered(handler) == [s for _, s in placed]  # nothing read twice, nothing skipped
    assert sum(handler.totals_by_window().values()) == 15


class CrashAfterFirstInvocation(Hooks):
    def __init__(self) -> None:
        self.crashed = False

    def after_invoke(self, call: Any, outcome: Any) -> Fault:
        if not self.crashed:
            self.crashed = True
            return Fault.CRASH
        return Fault.NONE


def test_a_crash_before_the_checkpoint_delivers_the_batch_again_with_the_previous_state(esm: Any) -> None:
    handler = WindowSum()
    env = esm(handler, hooks=CrashAfterFirstInvocation())
    env.put([1, 2, 3])
    close_windows(env)
    first, again = handler.events[:2]
    assert first["Records"] == again["Records"]
    assert again["state"] == {}
    assert stats_of(env).crashes == 1
    assert sum(handler.totals_by_window().values()) == 6


def test_a_large_window_state_is_checkpointed_atomically_in_chunks(esm: Any) -> None:
    payload = base64.b64encode(os.urandom(600_000)).decode()  # ~800 KB that does not compress
    big = {"yes": True}
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        seen.append(event)
        return {"state": {"blob": payload} if big["yes"] else {"small": 1}}

    # windows by arrival time on the wall clock: the longest window, so both records share one
    env = esm(handler, parameters={"BatchSize": 1, "WindowSeconds": 900})
    env.put([1])
    env.runtime.run_until_idle()
    assert json.loads(checkpoint_of(env).state) == {"blob": payload}
    env.restart()
    env.put([2])
    big["yes"] = False
    env.runtime.run_until_idle()
    if seen[-1]["window"] != seen[0]["window"]:
        pytest.skip("the two records arrived on either side of a 900 s window boundary")
    assert seen[-1]["state"] == {"blob": payload}  # reloaded whole from its chunks
    dynamodb = env.endpoint.client("dynamodb")
    table = env.runtime.store.table_name
    chunks = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": AGGREGATOR}, ":prefix": {"S": "shardId-000000000000#state#"}},
    )["Items"]
    assert chunks == []  # a small state again: the chunks went in the same transaction


def test_two_runtimes_on_one_shard_conflict_loudly(esm: Any) -> None:
    env = esm(WindowSum(), parameters={"BatchSize": 1})
    env.put([1])
    first = env.runtime
    first.run_until_idle()
    second = Runtime(env.template, env.endpoint, handlers=env.handlers, clock=env.clock, options=env.options)
    second.step(flush=True)  # loads the checkpoint
    env.put([2])
    first.run_until_idle()
    env.put([3])
    with pytest.raises(CheckpointConflict):
        second.run_until_idle()


# --- fault hooks and observability ------------------------------------------------------------


def test_seeded_faults_are_reproducible_and_windows_still_come_out_right(esm: Any) -> None:
    runs = []
    for _ in range(2):
        faults = SeededFaults(7, crash_before=0.1, crash_after=0.2, replay=0.2, defer_final=0.5)
        handler = WindowSum()
        env = esm(handler, parameters={"BatchSize": 3}, hooks=faults)
        env.put(list(range(1, 16)))
        env.runtime.run_until_idle()
        env.clock.advance(61)
        while not handler.finals():
            env.runtime.run_until_idle()
        runs.append([(fault, first) for fault, _, _, first in faults.injected])
        assert handler.totals_by_window() == env.expected_window_totals(60)
    assert runs[0] == runs[1]
    assert runs[0]


def test_stats_report_lag_invocations_failures_and_windows(esm: Any) -> None:
    env = esm(WindowSum(), parameters={"BatchSize": 3}, options={"get_records_limit": 4})
    env.put([1, 2, 3, 4])
    time.sleep(0.2)
    env.put([5, 6])
    # the virtual clock a little past the 4th record's arrival (within its window): that record
    # stays pending, so the iterator age is exactly the clock minus its arrival
    fourth_arrival = env.stream_contents()["shardId-000000000000"][3][1]
    window_end = Window.containing(fourth_arrival, 60).end_ms
    env.clock.set(max(env.clock.now_ms(), min(fourth_arrival + 250, window_end - 1)))
    env.runtime.step(flush=True)
    shard = stats_of(env)
    assert (shard.records_read, shard.invocations, shard.pending_records) == (4, 1, 1)
    assert shard.millis_behind_latest is not None
    assert shard.millis_behind_latest >= 150
    assert shard.iterator_age_ms == env.clock.now_ms() - fourth_arrival
    assert shard.open_window is not None
    close_windows(env)
    shard = stats_of(env)
    assert (shard.records_read, shard.records_delivered, shard.windows_closed) == (6, 6, 1)
    assert (shard.pending_records, shard.millis_behind_latest, shard.open_window) == (0, 0, None)
    snapshot = env.runtime.stats().as_dict()
    assert snapshot["idle"] is True
    assert snapshot["totals"]["windows_closed"] == 1
    json.dumps(snapshot)


def test_the_runtime_logs_structured_json_lines(esm: Any, caplog: Any) -> None:
    env = esm(WindowSum())
    env.put([1])
    close_windows(env)
    formatter = logger.registered_formatter
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.name == "salesstream-runtime"]
    closed = [line for line in lines if line["message"] == "window closed"]
    assert closed
    assert closed[0]["mapping"] == AGGREGATOR
    assert closed[0]["shard_id"] == "shardId-000000000000"
    assert closed[0]["level"] == "INFO"
    assert closed[0]["service"] == "salesstream-runtime"


# --- the same rules on a DynamoDB table's stream -----------------------------------------------
# Each test below is the twin of a Kinesis test above, on the orders table's stream through
# moto's real DynamoDB and DynamoDB Streams APIs (the consumer loop is the same code).


@pytest.fixture
def table_esm(endpoint: Any, provision_template: Any) -> Any:
    """Factory: a fresh stack with the orders table on and the aggregator on its stream only."""

    def make(
        handlers: Any,
        *,
        parameters: dict[str, Any] | None = None,
        mapping: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        hooks: Hooks | None = None,
    ) -> TableEnv:
        template = table_template(
            endpoint,
            "t" + uuid.uuid4().hex[:10],
            parameters={"ShardCount": 1, "WindowSeconds": 60, **(parameters or {})},
            mapping={
                "MaximumBatchingWindowInSeconds": 0,
                "FilterCriteria": {"Filters": []},
                **(mapping or {}),
            },
        )
        provision_template(template)
        return TableEnv(
            endpoint,
            template,
            {"AggregatorFunction": handlers},
            VirtualClock(),
            RuntimeOptions(**{"window_close_grace_seconds": 0, **(options or {})}),
            hooks,
        )

    return make


def table_delivered(handler: Any) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for event in handler.events for r in event["Records"]]


def test_table_events_have_the_exact_aws_shape_and_validate_against_the_models(table_esm: Any) -> None:
    handler = TableWindowSum()
    env = table_esm(handler)
    placed = env.put([5, 7])
    env.endpoint.client("dynamodb").put_item(TableName=env.table, Item=item(9, 0))  # a MODIFY of e-00000
    close_windows(env)

    first = handler.events[0]
    assert set(first) == {
        "Records",
        "window",
        "state",
        "shardId",
        "eventSourceARN",
        "isFinalInvokeForWindow",
        "isWindowTerminatedEarly",
    }
    insert, _, modify = first["Records"]
    assert set(insert) == {
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    }
    assert set(insert["dynamodb"]) == {
        "ApproximateCreationDateTime",
        "Keys",
        "NewImage",
        "SequenceNumber",
        "SizeBytes",
        "StreamViewType",
    }
    assert (insert["eventSource"], insert["eventName"], modify["eventName"]) == (
        "aws:dynamodb",
        "INSERT",
        "MODIFY",
    )
    assert insert["eventSourceARN"] == first["eventSourceARN"] == env.stream_arn
    assert insert["awsRegion"] == env.endpoint.region
    assert insert["dynamodb"]["Keys"] == {"event_id": {"S": "e-00000"}}
    assert insert["dynamodb"]["NewImage"] == item(5, 0)
    assert insert["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert (modify["dynamodb"]["OldImage"], modify["dynamodb"]["NewImage"]) == (item(5, 0), item(9, 0))
    created = insert["dynamodb"]["ApproximateCreationDateTime"]
    assert created == int(created)  # epoch seconds, whole: not Kinesis's milliseconds
    assert abs(created - time.time()) < 300
    assert (first["shardId"], first["state"]) == (placed[0][0], {})
    for event in handler.events:
        DynamodbTimeWindowEvent.model_validate(event)


def test_table_a_batch_holds_at_most_batch_size_records(table_esm: Any) -> None:
    handler = TableWindowSum()
    env = table_esm(handler, mapping={"BatchSize": 3})
    env.put(list(range(10)))
    close_windows(env)
    sizes = [len(event["Records"]) for event in handler.events if event["Records"]]
    assert max(sizes) == 3
    assert sum(handler.totals_by_window().values()) == sum(range(10))


def test_table_the_final_invocation_comes_once_after_the_window_ends_by_the_clock(table_esm: Any) -> None:
    handler = TableWindowSum()
    env = table_esm(handler)
    placed = env.put([1, 2, 3])
    env.runtime.run_until_idle()
    assert handler.finals() == []
    env.clock.advance(61)
    env.runtime.run_until_idle()
    env.runtime.run_until_idle()
    (final,) = handler.finals()
    assert final["Records"] == []
    assert final["state"]["total"] == 6
    start, end = (parse_rfc3339(final["window"][edge]) for edge in ("start", "end"))
    assert (start % 60_000, end - start) == (0, 60_000)
    assert handler.sequences() == [s for _, s in placed]


def test_table_a_state_over_the_limit_ends_the_window_segment_early_and_the_window_goes_on(
    table_esm: Any,
) -> None:
    handler = TableWindowSum()
    env = table_esm(handler, mapping={"BatchSize": 2}, options={"state_limit_bytes": 120})
    placed = env.put(list(range(1, 13)))
    close_windows(env)
    ends = [i for i, e in enumerate(handler.events) if e["isWindowTerminatedEarly"]]
    assert ends
    for i in ends:
        assert handler.events[i]["isFinalInvokeForWindow"]
        assert handler.events[i + 1]["state"] == {}
    assert handler.sequences() == [s for _, s in placed]  # each record in exactly one segment
    assert sum(handler.totals_by_window().values()) == sum(range(1, 13))


def test_table_batch_item_failures_retry_from_the_lowest_failed_sequence_number(table_esm: Any) -> None:
    calls = {"n": 0}
    placed: list[tuple[str, str]] = []

    def report_two(event: Any) -> Any:
        calls["n"] += 1
        return [placed[6][1], placed[3][1]] if calls["n"] == 1 else None

    handler = TableWindowSum(fail=report_two)
    env = table_esm(handler, mapping={"BatchSize": 10})
    placed += env.put(list(range(1, 11)))
    close_windows(env)
    retried = handler.events[1]
    assert retried["Records"][0]["dynamodb"]["SequenceNumber"] == placed[3][1]
    assert retried["state"] == {"total": 6, "sequences": [s for _, s in placed[:3]]}
    assert handler.sequences() == [s for _, s in placed]
    assert stats_of(env, TABLE_MAPPING).partial_failures == 1


def test_table_bisect_on_function_error_splits_the_batch_until_the_poison_record_is_alone(
    table_esm: Any,
) -> None:
    def poison(event: Any) -> Any:
        return "raise" if 5 in [amount_of(r) for r in event.Records] else None

    handler = TableWindowSum(fail=poison)
    env = table_esm(handler, mapping={"BatchSize": 8, "MaximumRetryAttempts": 2})
    env.put(list(range(8)))
    close_windows(env)
    sizes = [len(e["Records"]) for e in handler.events if e["Records"]]
    assert sizes == [8, 4, 4, 2, 1, 1, 1, 1, 2]
    (notice,) = env.failure_notices()
    assert notice["DDBStreamBatchInfo"]["batchSize"] == 1
    assert sum(handler.totals_by_window().values()) == sum(range(8)) - 5


def test_table_exhausted_retries_send_only_metadata_to_the_on_failure_destination(table_esm: Any) -> None:
    handler = TableWindowSum(
        fail=lambda event: "raise" if 42 in [amount_of(r) for r in event.Records] else None
    )
    env = table_esm(
        handler,
        mapping={"BatchSize": 3, "BisectBatchOnFunctionError": False, "MaximumRetryAttempts": 1},
    )
    placed = env.put([1, 42, 3])
    env.put([4])
    close_windows(env)
    (notice,) = env.failure_notices()
    # AWS names the same fields DDBStreamBatchInfo for a DynamoDB stream (with-ddb)
    assert set(notice) == {"requestContext", "responseContext", "version", "timestamp", "DDBStreamBatchInfo"}
    assert notice["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert notice["requestContext"]["approximateInvokeCount"] == 2
    info = notice["DDBStreamBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"]) == (
        placed[0][0],
        placed[0][1],
        placed[2][1],
    )
    assert (info["batchSize"], info["streamArn"]) == (3, env.stream_arn)
    assert "amount" not in json.dumps(notice)
    assert sum(handler.totals_by_window().values()) == 4


def test_table_records_older_than_the_maximum_age_go_to_the_destination_without_invocation(
    table_esm: Any,
) -> None:
    handler = TableWindowSum()
    env = table_esm(handler, mapping={"MaximumRecordAgeInSeconds": 60})
    placed = env.put([1, 2, 3])
    env.clock.advance(62)  # creation times are whole seconds: up to 1 s older than the put
    env.runtime.run_until_idle()
    assert handler.events == []
    (notice,) = env.failure_notices()
    assert notice["requestContext"]["condition"] == "RecordAgeExceeded"
    assert notice["DDBStreamBatchInfo"]["batchSize"] == 3
    assert checkpoint_of(env, placed[0][0], TABLE_MAPPING).position == placed[-1][1]


def test_table_filter_criteria_apply_to_the_dynamodb_record_shape(table_esm: Any) -> None:
    handler = TableWindowSum()
    # typed attributes as the record carries them: a number is a string under "N"
    pattern = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"amount": {"N": [{"prefix": "2"}, "30"]}}}}
    env = table_esm(handler, mapping={"FilterCriteria": {"Filters": [{"Pattern": json.dumps(pattern)}]}})
    placed = env.put([5, 20, 7, 30, 1])
    env.endpoint.client("dynamodb").put_item(TableName=env.table, Item=item(50, 1))  # MODIFY: filtered
    env.endpoint.client("dynamodb").delete_item(TableName=env.table, Key={"event_id": {"S": "e-00003"}})
    close_windows(env)
    assert table_delivered(handler) == [placed[1][1], placed[3][1]]
    assert sum(handler.totals_by_window().values()) == 50
    stats = stats_of(env, TABLE_MAPPING)
    assert (stats.records_read, stats.records_filtered) == (7, 5)
    last = env.stream_records()[-1][1]["dynamodb"]["SequenceNumber"]
    assert checkpoint_of(env, placed[0][0], TABLE_MAPPING).position == last  # past the dropped ones


def test_table_a_restart_resumes_from_the_checkpoint_with_its_window_state(table_esm: Any) -> None:
    handler = TableWindowSum()
    env = table_esm(handler)
    placed = env.put([1, 2, 3])
    env.runtime.run_until_idle()
    env.restart()
    placed += env.put([4, 5])
    close_windows(env)
    after = handler.events[1]
    assert after["state"] == {"total": 6, "sequences": [s for _, s in placed[:3]]}
    assert after["Records"][0]["dynamodb"]["SequenceNumber"] == placed[3][1]
    assert table_delivered(handler) == [s for _, s in placed]
    assert sum(handler.totals_by_window().values()) == 15


def test_table_a_rolled_shard_finishes_its_window_and_its_child_starts_after_it(
    table_esm: Any, provision_template: Any, endpoint: Any
) -> None:
    # the emulator never rolls a stream's shards (DynamoDB does about every 4 hours): the roll
    # is simulated over the real API (tests.table_support.RollingStreams)
    handler = TableWindowSum()
    env = table_esm(handler)
    other = table_template(endpoint, "t" + uuid.uuid4().hex[:10])
    provision_template(other)
    child_table = other.physical_name("OrdersTable")
    child_arn = endpoint.client("dynamodb").describe_table(TableName=child_table)["Table"]["LatestStreamArn"]
    streams = RollingStreams(endpoint.client("dynamodbstreams"), env.stream_arn, child_arn)
    env.runtime._table_streams = streams  # the runtime's DynamoDB Streams client, with the roll
    placed = env.put([1, 2, 3])
    env.runtime.run_until_idle()
    assert handler.finals() == []
    streams.roll()
    dynamodb = endpoint.client("dynamodb")
    for index, amount in enumerate([10, 20]):
        dynamodb.put_item(TableName=child_table, Item=item(amount, 100 + index))
    env.runtime.run_until_idle()  # no clock move: the parent's window closes at shard end
    parent = placed[0][0]
    parent_final = next(
        i for i, e in enumerate(handler.events) if e["shardId"] == parent and e["isFinalInvokeForWindow"]
    )
    children = [i for i, e in enumerate(handler.events) if e["shardId"] == CHILD_SHARD]
    assert children
    assert min(children) > parent_final
    assert handler.events[children[0]]["state"] == {}
    assert checkpoint_of(env, parent, TABLE_MAPPING).finished
    close_windows(env)
    totals = {shard: total for (shard, _), total in handler.totals_by_window().items()}
    assert totals == {parent: 6, CHILD_SHARD: 30}
