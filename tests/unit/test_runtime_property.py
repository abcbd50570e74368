"""Property: whatever the arrivals, batch sizes, read sizes and failures, every record's effect
is in exactly one persisted window segment, and the per-window totals equal a direct
computation grouped by (shard, floor(arrival / W)).

The consumer logic runs here on synthetic records (a live shard that only shows what has
arrived by the virtual clock), an in-memory checkpoint store and an in-process invoker, so
hypothesis can try hundreds of patterns in seconds; a smaller property on moto complements it
(tests/integration/test_runtime_pipeline.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from salesstream.core.windows import Window
from salesstream.deploy.template import Template, load_template_document
from salesstream.runtime import Fault, Hooks, RuntimeOptions, SimulatedCrash, VirtualClock
from salesstream.runtime.consumer import ShardConsumer
from salesstream.runtime.invoker import InvocationResult, Raised, Returned
from salesstream.runtime.mappings import mappings_of
from salesstream.runtime.model import Fetch, RawRecord, ShardStats
from tests.checkpoint_store import MemoryCheckpointStore
from tests.runtime_support import WindowSum

EPOCH_MS = 1_800_000_000_000  # a multiple of every window size used here
SHARD = "shardId-000000000000"


@dataclass
class LiveShard:
    """A shard that shows only the records that have arrived by the clock."""

    records: list[RawRecord]
    clock: VirtualClock
    after: int = 0

    def reset(self, after: str | None) -> None:
        self.after = int(after) if after else 0

    def read(self, limit: int) -> Fetch:
        now = self.clock.now_ms()
        visible = [r for r in self.records if r.arrival_ms <= now]
        chunk = [r for r in visible if int(r.sequence_number) > self.after][:limit]
        if chunk:
            self.after = int(chunk[-1].sequence_number)
        behind = visible[-1].arrival_ms - chunk[-1].arrival_ms if chunk and visible else 0
        return Fetch(
            chunk, behind, caught_up=int(visible[-1].sequence_number) <= self.after if visible else True
        )


@dataclass
class Collect:
    notices: list[dict[str, Any]] = field(default_factory=list)

    def send(self, record: dict[str, Any]) -> None:
        self.notices.append(record)


@dataclass
class Direct:
    """Invokes the handler in this thread (the invoker's thread guard is tested elsewhere)."""

    handler: Any
    function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:reference"

    def invoke(self, event: dict[str, Any]) -> InvocationResult:
        try:
            return Returned(self.handler(event, None))
        except RuntimeError as error:
            return Raised(type(error).__name__, str(error))


@dataclass
class Scripted(Hooks):
    """Faults in the order the test drew them, then none."""

    faults: list[Fault]

    def after_invoke(self, call: Any, outcome: Any) -> Fault:
        return self.faults.pop(0) if self.faults else Fault.NONE


def mapping_with(window_seconds: int, batch_size: int, bisect: bool, retries: int) -> Any:
    document = load_template_document()
    events = document["Resources"]["AggregatorFunction"]["Properties"]["Events"]
    events["Orders"]["Properties"].update(
        BatchSize=batch_size,
        TumblingWindowInSeconds=window_seconds,
        BisectBatchOnFunctionError=bisect,
        MaximumRetryAttempts=retries,
        MaximumRecordAgeInSeconds=-1,
        MaximumBatchingWindowInSeconds=0,
    )
    (mapping,) = mappings_of(Template(document, {"Target": "local"}), ["AggregatorFunction"])
    return mapping


@dataclass
class Run:
    """One drawn scenario, driven until the shard is idle after its last window."""

    records: list[RawRecord]
    amounts: list[int]
    window_seconds: int
    handler: WindowSum
    notices: list[dict[str, Any]]

    def expected(
        self, leave_out: Collection[str] = frozenset()
    ) -> tuple[dict[Any, list[str]], dict[Any, int]]:
        """Direct computation: records grouped by (shard, floor(arrival / W))."""
        sequences: dict[tuple[str, str], list[str]] = defaultdict(list)
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for record, amount in zip(self.records, self.amounts, strict=False):
            if record.sequence_number in leave_out:
                continue
            key = (SHARD, Window.containing(record.arrival_ms, self.window_seconds).as_event()["start"])
            sequences[key].append(record.sequence_number)
            totals[key] += amount
        return dict(sequences), dict(totals)


def drive(
    draw: Any,
    *,
    fail: Any,
    retries: int,
    faults: list[Fault],
    dedup_records: bool = False,
) -> Run:
    gaps = draw(st.lists(st.integers(0, 1500), min_size=1, max_size=50), label="gaps")
    amounts = draw(st.lists(st.integers(1, 1000), min_size=len(gaps), max_size=len(gaps)), label="amounts")
    window_seconds = draw(st.sampled_from([1, 2, 5]), label="window")
    batch_size = draw(st.integers(1, 8), label="batch size")
    bisect = draw(st.booleans(), label="bisect")
    # A state limit a fresh segment's first batch always fits, so segments end early often
    # (WindowSum's state grows ~5 bytes a record) but no batch is too large on its own.
    slack = draw(st.sampled_from([None, 0, 15, 40]), label="state slack")
    options = RuntimeOptions(
        window_close_grace_seconds=0,
        get_records_limit=draw(st.integers(1, 10), label="read limit"),
        final_invocation_carries_records=draw(st.booleans(), label="final carries records"),
        state_limit_bytes=1_048_576 if slack is None else 40 + 6 * batch_size + slack,
    )
    tick_ms = draw(st.integers(50, 2500), label="tick")
    arrivals, at = [], EPOCH_MS + 137
    for gap in gaps:
        at += gap
        arrivals.append(at)
    records = [
        RawRecord(str(i + 1), arrival, json.dumps({"amount": amounts[i]}).encode(), f"pk{i}")
        for i, arrival in enumerate(arrivals)
    ]
    clock = VirtualClock(EPOCH_MS)
    shard = LiveShard(records, clock)
    handler = WindowSum(fail=fail, dedup_records=dedup_records)
    store = MemoryCheckpointStore()
    mapping = mapping_with(window_seconds, batch_size, bisect, retries)
    hooks = Scripted(list(faults))
    destination = Collect()

    def consumer() -> ShardConsumer:
        return ShardConsumer(
            mapping,
            SHARD,
            reader=shard,
            store=store,
            destination=destination,
            invoker=Direct(handler),
            clock=clock,
            options=options,
            hooks=hooks,
            stats=ShardStats(mapping.id, SHARD),
        )

    worker = consumer()
    horizon = arrivals[-1] + 2 * window_seconds * 1000
    for _ in range(20_000):
        try:
            worker.step()
        except SimulatedCrash:
            worker = consumer()  # a new poller, from the persisted checkpoint only
        if clock.now_ms() > horizon and worker.is_idle():
            break
        clock.advance(tick_ms / 1000)
    else:
        raise AssertionError("the shard never became idle")
    if currently_in_test_context():  # a fixed draw (the regression test below) runs outside
        event(f"segments ended early: {worker.stats.segments_terminated_early > 0}")
    return Run(records, amounts, window_seconds, handler, destination.notices)


verdicts = st.sampled_from(["ok", "ok", "ok", "raise", "no-state", "partial"])
faults = st.lists(st.sampled_from([Fault.NONE, Fault.NONE, Fault.CRASH, Fault.REPLAY]), max_size=15)


def scripted(plan: list[str]) -> Any:
    """The handler's verdicts in the drawn order, then success."""

    def verdict(event: Any) -> Any:
        choice = plan.pop(0) if plan else "ok"
        if choice == "partial":
            return [event.Records[len(event.Records) // 2].kinesis.sequenceNumber] if event.Records else None
        return None if choice == "ok" else choice

    return verdict


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), script=st.lists(verdicts, max_size=30), faults=faults)
def test_every_record_counts_once_in_its_window_whatever_fails(
    data: Any, script: list[str], faults: list[Fault]
) -> None:
    run = drive(data.draw, fail=scripted(list(script)), retries=-1, faults=faults)
    sequences, totals = run.expected()
    assert run.notices == []  # unlimited retries: nothing was given up
    assert run.handler.sequences_by_window() == sequences  # each record in one segment, once
    assert run.handler.totals_by_window() == totals


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    poison=st.sets(st.integers(1, 50), max_size=4),
    retries=st.integers(0, 2),
    script=st.lists(verdicts, max_size=20),
    faults=faults,
)
def test_with_bounded_retries_what_is_given_up_is_reported_and_the_rest_counts_once(
    data: Any, poison: set[int], retries: int, script: list[str], faults: list[Fault]
) -> None:
    plan = list(script)
    transient = scripted(plan)

    def fail(event: Any) -> Any:
        if any(int(r.kinesis.sequenceNumber) in poison for r in event.Records):
            return "raise"  # a poison record fails every time
        return transient(event)

    # records given up after a crash re-form a replayed segment: the handler dedups per record,
    # as the aggregator does (tests/runtime_support.py says why the segment key is not enough)
    run = drive(data.draw, fail=fail, retries=retries, faults=faults, dedup_records=True)
    given_up = {
        str(sequence)
        for notice in run.notices
        for sequence in range(
            int(notice["KinesisBatchInfo"]["startSequenceNumber"]),
            int(notice["KinesisBatchInfo"]["endSequenceNumber"]) + 1,
        )
    }
    present = {r.sequence_number for r in run.records}
    assert {str(p) for p in poison} & present <= given_up  # every poison record was given up
    # A record given up may still have counted once: a crash after an invocation that succeeded
    # redelivers it, and if the retry fails for good it is reported too (at least once, as AWS).
    counted = run.handler.sequences_by_window()
    flat = [sequence for sequences in counted.values() for sequence in sequences]
    assert len(flat) == len(set(flat))  # nothing counted twice
    every, _ = run.expected()
    assert all(set(value) <= set(every[key]) for key, value in counted.items())  # in its own window
    kept = {key: [s for s in sequences if s not in given_up] for key, sequences in counted.items()}
    rest, _ = run.expected(leave_out=given_up)
    assert {key: value for key, value in kept.items() if value} == rest  # the rest exactly once
    amount = {r.sequence_number: a for r, a in zip(run.records, run.amounts, strict=False)}
    assert run.handler.totals_by_window() == {
        key: sum(amount[s] for s in value) for key, value in counted.items()
    }


def fixed(values: dict[str, Any]) -> Any:
    """A `draw` that answers each labelled draw of `drive` with a chosen value."""
    return lambda strategy, label: values[label]


@pytest.mark.parametrize("dedup_records", [False, True])
def test_a_crash_after_a_final_invocation_then_its_first_record_given_up_redelivers_the_rest(
    dedup_records: bool,
) -> None:
    """Found by the property above: two records of one window, a final invocation that succeeds
    and crashes before its checkpoint, then a retry that fails, bisects and gives record 1 up.
    The runtime redelivers record 2 in a segment that starts at 2, as AWS may: a handler keyed
    by the segment's first record counts 2 twice; one that dedups per record counts it once."""
    draws = {
        "gaps": [0, 0],
        "amounts": [1, 1],
        "window": 1,
        "batch size": 2,
        "bisect": True,
        "state slack": None,
        "read limit": 3,
        "final carries records": True,
        "tick": 50,
    }
    script = ["ok", "raise", "partial", "no-state"]
    run = drive(
        fixed(draws), fail=scripted(script), retries=1, faults=[Fault.CRASH], dedup_records=dedup_records
    )
    assert [
        (n["KinesisBatchInfo"]["startSequenceNumber"], n["KinesisBatchInfo"]["endSequenceNumber"])
        for n in run.notices
    ] == [("1", "1")]
    finals = [[r["kinesis"]["sequenceNumber"] for r in e["Records"]] for e in run.handler.finals()]
    assert finals[0] == ["1", "2"]  # the final invocation that crashed before its checkpoint
    assert finals[-1] == ["2"]  # record 2 again, in a segment of its own
    counted = run.handler.sequences_by_window()
    assert list(counted.values()) == ([["1", "2"]] if dedup_records else [["1", "2", "2"]])
