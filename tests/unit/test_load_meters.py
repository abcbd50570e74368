"""What the load test counts without the network: DynamoDB item sizes and units, merged request
counts, the Lambda-like invocation meter, report percentiles and the HTML page."""

from __future__ import annotations

import math
from typing import Any

import pytest

from load_tests.meters import InvocationMeter, RequestCounts, ShardSecond, item_size, write_units
from load_tests.report_model import Percentiles
from salesstream.core.windows import parse_rfc3339


def test_item_sizes_follow_dynamodbs_rules() -> None:
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"n": {"N": "12345"}}) == 1 + 4  # 3 bytes for 5 significant digits + 1
    assert item_size({"b": {"B": b"\x00" * 10}, "t": {"BOOL": True}}) == 1 + 10 + 1 + 1
    assert item_size({"m": {"M": {"a": {"S": "x"}}}}) == 1 + 3 + 1 + 1 + 1
    assert item_size({"é": {"S": "é"}}) == 4  # UTF-8 bytes, names included


def test_write_units_are_per_started_kilobyte() -> None:
    assert write_units({"pk": {"S": "a"}}) == 1
    assert write_units({"pk": {"S": "a" * 1022}}) == 1  # 2 + 1022 bytes
    assert write_units({"pk": {"S": "a" * 1023}}) == 2


def test_counts_of_two_processes_add_up() -> None:
    mine, theirs = RequestCounts(), RequestCounts()
    mine.calls[("kinesis", "PutRecords", "s")] = 2
    theirs.calls[("kinesis", "PutRecords", "s")] = 3
    theirs.read_units["t"] = 0.5
    mine.kinesis_seconds["shard-0"] = {0: ShardSecond(1, 100)}
    theirs.kinesis_seconds["shard-0"] = {0: ShardSecond(2, 50), 1: ShardSecond(1, 1)}
    theirs.latencies[("kinesis", "PutRecords")] = [0.01]
    mine.add(theirs)
    assert mine.calls[("kinesis", "PutRecords", "s")] == 5
    assert mine.read_units["t"] == 0.5
    assert mine.kinesis_seconds["shard-0"][0] == ShardSecond(3, 150)
    assert mine.operations("kinesis") == {"PutRecords": 5}
    assert mine.latencies[("kinesis", "PutRecords")] == [0.01]


def window_event(final: bool, early: bool = False) -> dict[str, Any]:
    return {
        "shardId": "shard-0",
        "window": {"start": "2026-11-23T10:00:00Z", "end": "2026-11-23T10:01:00Z"},
        "isFinalInvokeForWindow": final,
        "isWindowTerminatedEarly": early,
        "Records": [],
        "state": {},
    }


def test_the_invocation_meter_counts_bills_and_notes_when_windows_closed() -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event.get("fail"):
            raise RuntimeError("boom")
        return {"state": {}, "batchItemFailures": []}

    meter = InvocationMeter(handler, memory_mb=2048, function="F")
    meter(window_event(final=False), None)
    meter(window_event(final=True, early=True), None)  # a segment ended early: the window goes on
    meter(window_event(final=True), None)
    with pytest.raises(RuntimeError):
        meter({**window_event(final=True), "fail": True}, None)
    assert [(i.final, i.failed) for i in meter.invocations] == [
        (False, False),
        (True, False),
        (True, False),
        (True, True),
    ]
    assert list(meter.windows_closed) == [("shard-0", parse_rfc3339("2026-11-23T10:01:00Z"))]
    billed_ms = sum(math.ceil(i.seconds * 1000) for i in meter.invocations)  # rounded up per invocation
    assert billed_ms >= 4  # even a microsecond is a billed millisecond
    assert meter.billed_gb_seconds() == pytest.approx(billed_ms / 1000 * 2)


def test_percentiles_are_values_that_were_measured() -> None:
    figures = Percentiles.of([float(v) for v in range(1, 101)])
    assert (figures.samples, figures.p50, figures.p95, figures.p99, figures.max) == (100, 50, 95, 99, 100)
    assert Percentiles.of([]).p95 is None
    assert Percentiles.of([3.0]).p99 == 3.0
