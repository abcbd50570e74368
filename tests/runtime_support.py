"""Reference handlers and helpers for the event-source-mapping runtime's tests.

The reference handlers are ordinary Lambda handlers: they parse every event with the same
pydantic models the real consumers use (so every event the runtime builds is checked against
them), fold records into the window state, and on a final invocation "persist" the segment in a
dict keyed by (shard, window start, first sequence number of the segment): keyed, so a replayed
final invocation changes nothing, as the real aggregator's conditional write.

That key is not enough once retries are bounded: a crash after a final invocation redelivers its
segment, and if the retry then gives up the segment's first record, the segment comes back with
another first record and counts the others again. AWS allows it (delivery is at least once); the
aggregator survives it by its dedup index over event ids. `WindowSum(dedup_records=True)` does
the same over sequence numbers, for the tests that give records up.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from salesstream.core.lambda_events import KinesisEvent, KinesisTimeWindowEvent
from salesstream.deploy.template import Template, load_template_document


def amount_of(data: bytes) -> int:
    return int(json.loads(data)["amount"])


@dataclass
class Segment:
    shard_id: str
    window_start: str
    total: int
    sequences: list[str]
    terminated_early: bool


@dataclass
class WindowSum:
    """Windowed reference handler: sums `amount`; fails on demand.

    `fail` decides per invocation: return "raise", "no-state", a list of sequence numbers to
    report as batchItemFailures, or None for success."""

    fail: Callable[[KinesisTimeWindowEvent], Any] | None = None
    keep_sequences: bool = True
    # persist only records no earlier segment of the shard holds (the aggregator's dedup index)
    dedup_records: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    amounts: dict[tuple[str, str], int] = field(default_factory=dict)
    segments: dict[tuple[str, str, str], Segment] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.events.append(copy.deepcopy(event))
        parsed = KinesisTimeWindowEvent.model_validate(event)
        verdict = self.fail(parsed) if self.fail else None
        if verdict == "raise":
            raise RuntimeError("reference handler told to fail")
        state = dict(parsed.state) or {"total": 0, "sequences": []}
        failed = set(verdict) if isinstance(verdict, list) else set()
        failures = []
        for record in parsed.Records:
            if failed and record.kinesis.sequenceNumber in failed:
                failures = [{"itemIdentifier": s} for s in sorted(failed, key=int)]
                break
            amount = amount_of(record.kinesis.raw_data())
            self.amounts[(parsed.shardId, record.kinesis.sequenceNumber)] = amount
            state["total"] += amount
            state["sequences"] = [*state["sequences"], record.kinesis.sequenceNumber]
        if verdict == "no-state":
            return {"batchItemFailures": []}
        if (
            (parsed.isFinalInvokeForWindow or parsed.isWindowTerminatedEarly)
            and state["sequences"]
            and not failures
        ):
            key = (parsed.shardId, parsed.window.start, state["sequences"][0])
            with self.lock:
                total, sequences = state["total"], list(state["sequences"])
                if self.dedup_records:
                    sequences = [s for s in sequences if not self._persisted(parsed.shardId, s, key)]
                    total = sum(self.amounts[(parsed.shardId, s)] for s in sequences)
                self.segments[key] = Segment(
                    parsed.shardId,
                    parsed.window.start,
                    total,
                    sequences,
                    parsed.isWindowTerminatedEarly,
                )
        if not self.keep_sequences:
            state["sequences"] = state["sequences"][:1]
        return {"state": state, "batchItemFailures": failures}

    def _persisted(self, shard_id: str, sequence: str, key: tuple[str, str, str]) -> bool:
        """Whether another segment of the shard holds the record (a replay of `key` is no other)."""
        return any(
            other[0] == shard_id and other != key and sequence in segment.sequences
            for other, segment in self.segments.items()
        )

    def totals_by_window(self) -> dict[tuple[str, str], int]:
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for segment in self.segments.values():
            totals[(segment.shard_id, segment.window_start)] += segment.total
        return dict(totals)

    def sequences_by_window(self) -> dict[tuple[str, str], list[str]]:
        sequences: dict[tuple[str, str], list[str]] = defaultdict(list)
        for segment in self.segments.values():
            sequences[(segment.shard_id, segment.window_start)].extend(segment.sequences)
        return {key: sorted(value, key=int) for key, value in sequences.items()}

    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["isFinalInvokeForWindow"]]


@dataclass
class RecordLog:
    """Plain (no window) reference handler: remembers every record by (shard, sequence)."""

    fail: Callable[[KinesisEvent], Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[tuple[str, str], int] = field(default_factory=dict)
    deliveries: int = 0

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(copy.deepcopy(event))
        parsed = KinesisEvent.model_validate(event)
        verdict = self.fail(parsed) if self.fail else None
        if verdict == "raise":
            raise RuntimeError("reference handler told to fail")
        for record in parsed.Records:
            shard = record.eventID.split(":", 1)[0]
            self.seen[(shard, record.kinesis.sequenceNumber)] = amount_of(record.kinesis.raw_data())
            self.deliveries += 1
        return {"batchItemFailures": verdict if isinstance(verdict, list) else []}


BATCH_FUNCTIONS = ("ArchiverFunction", "SnapshotFunction")


def template_with(
    endpoint: Any,
    stage: str,
    *,
    parameters: dict[str, Any] | None = None,
    aggregator: dict[str, Any] | None = None,
    extra_functions: dict[str, dict[str, Any]] | None = None,
) -> Template:
    """The project template with the aggregator's mapping changed and functions added; every
    setting still goes through the template reader, as in production."""
    document = load_template_document()
    for batch_function in BATCH_FUNCTIONS:  # these tests are about the aggregator's mapping
        document["Resources"].pop(batch_function)
    events = document["Resources"]["AggregatorFunction"]["Properties"]["Events"]
    events["Orders"]["Properties"].update(aggregator or {})
    for logical_id, properties in (extra_functions or {}).items():
        document["Resources"][logical_id] = {"Type": "AWS::Serverless::Function", "Properties": properties}
    return Template(
        document,
        {"Stage": stage, "Target": "local", **(parameters or {})},
        region=endpoint.region,
        account_id=endpoint.account_id(),
        endpoint_url=endpoint.url,
    )


def plain_function(name: str, **event_properties: Any) -> dict[str, Any]:
    """A second function on the orders stream, without a window."""
    return {
        "FunctionName": {"Fn::Sub": "${Stage}-" + name},
        "Handler": "tests.runtime_support.not_imported",
        "Events": {
            "Orders": {
                "Type": "Kinesis",
                "Properties": {
                    "Stream": {"Fn::GetAtt": ["OrdersStream", "Arn"]},
                    "StartingPosition": "TRIM_HORIZON",
                    "BatchSize": 10,
                    **event_properties,
                },
            }
        },
    }


@dataclass
class Env:
    """A provisioned stack with a runtime on it, and what tests do to it."""

    endpoint: Any
    template: Template
    handlers: dict[str, Any]
    clock: Any
    options: Any
    hooks: Any = None
    runtime: Any = None

    def __post_init__(self) -> None:
        if self.runtime is None:
            self.restart()

    def restart(self) -> Any:
        """A new runtime on the same stack: what survives is only what it persisted."""
        from salesstream.runtime import Runtime

        self.runtime = Runtime(
            self.template,
            self.endpoint,
            handlers=self.handlers,
            clock=self.clock,
            options=self.options,
            hooks=self.hooks,
        )
        return self.runtime

    @property
    def stream(self) -> str:
        return self.template.streams()[0].name

    def put(self, amounts: list[int], *, key: str = "pk") -> list[tuple[str, str]]:
        """put_records (the producer lands with its own issue); returns (shard, sequence)."""
        kinesis = self.endpoint.client("kinesis")
        placed = []
        for start in range(0, len(amounts), 500):
            chunk = amounts[start : start + 500]
            response = kinesis.put_records(
                StreamName=self.stream,
                Records=[
                    {
                        "Data": json.dumps({"amount": a, "i": start + i}).encode(),
                        "PartitionKey": f"{key}{start + i}",
                    }
                    for i, a in enumerate(chunk)
                ],
            )
            assert response["FailedRecordCount"] == 0
            placed += [(entry["ShardId"], entry["SequenceNumber"]) for entry in response["Records"]]
        return placed

    def stream_contents(self) -> dict[str, list[tuple[str, int, int]]]:
        """Every record of every shard, read directly: (sequence, arrival ms, amount)."""
        kinesis = self.endpoint.client("kinesis")
        contents = {}
        for shard in kinesis.list_shards(StreamName=self.stream)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=self.stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
            contents[shard["ShardId"]] = [
                (
                    r["SequenceNumber"],
                    round(r["ApproximateArrivalTimestamp"].timestamp() * 1000),
                    amount_of(r["Data"]),
                )
                for r in records
            ]
        return contents

    def expected_window_totals(self, window_seconds: int) -> dict[tuple[str, str], int]:
        """The direct computation: totals grouped by (shard, floor(arrival / W))."""
        from salesstream.core.windows import Window

        totals: dict[tuple[str, str], int] = defaultdict(int)
        for shard, records in self.stream_contents().items():
            for _, arrival_ms, amount in records:
                window = Window.containing(arrival_ms, window_seconds)
                totals[(shard, window.as_event()["start"])] += amount
        return dict(totals)

    def failure_notices(self) -> list[dict[str, Any]]:
        sqs = self.endpoint.client("sqs")
        queue = sqs.get_queue_url(QueueName=self.template.physical_name("ConsumerFailuresQueue"))["QueueUrl"]
        notices: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return notices
            for message in messages:
                notices.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def sleep_into_next_window(window_seconds: int) -> None:
    """Real time, since Kinesis stamps arrivals: wait until the next window has begun."""
    import time

    now = time.time()
    time.sleep((int(now // window_seconds) + 1) * window_seconds - now + 0.05)
