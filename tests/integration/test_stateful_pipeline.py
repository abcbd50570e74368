"""A stateful property test of the whole pipeline (docs/reliability.md: "nothing lost, nothing counted
twice"), with hypothesis's RuleBasedStateMachine.

Each example provisions its own stack on the embedded moto server and drives, in any order the
rules allow: the real producer (one long-lived instance, so a reshard leaves it with a stale shard
map), the local event-source-mapping runtime on a virtual clock running the real aggregator and
archiver through the stream, and the real snapshot job and reconciliation. The faults are armed
by rules and strike the next invocation that fits: a handler error or a batch item failure, a
batch delivered twice, a crash of the poller after the handler returned (with a cold Lambda
process), a shard split or merge under the producer's feet, and producer resends of accepted events.

The invariant, after every snapshot rule and at the end of every example, once every window has
closed: speed totals = batch totals = a model over the distinct accepted event ids, per store and
currency to the unit, and the reconciliation finds no difference at any key or window.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from consumers.speed.handler import lambda_handler
from salesstream.core.batch import Status
from salesstream.core.contract import OrderEvent
from salesstream.runtime import Call, Fault, Hooks
from salesstream.runtime.model import Outcome
from tests.batch_support import STREAM_FUNCTIONS, Pipeline, cold_start, manual_producer
from tests.stream_pipeline import model
from tests.window_events import order

# stores and their currencies: six partition keys spread over the shards
STORES = {
    "store-a": "EUR",
    "store-b": "USD",
    "store-c": "JPY",
    "store-d": "EUR",
    "store-e": "GBP",
    "store-f": "SEK",
}
MAX_OPEN_SHARDS = 4
AGGREGATOR, _ = STREAM_FUNCTIONS
ORDERS = st.lists(
    st.tuples(st.sampled_from(sorted(STORES)), st.integers(1, 10**7), st.booleans()), min_size=1, max_size=30
)
# a last put before the final check, so faults armed by the last steps still find an invocation
LAST_ORDERS = [
    ("store-a", 100, False),
    ("store-c", 2, True),
    ("store-e", 30_000, False),
    ("store-f", 7, False),
]


class InjectedFailure(RuntimeError):
    """The aggregator 'failed' this invocation (armed by the fail_batch rule)."""


@dataclass
class ArmedFaults(Hooks):
    """Faults armed by the rules; each strikes once, on the first invocation it fits."""

    after: list[tuple[Fault, str, bool]] = field(default_factory=list)  # (fault, mapping prefix, final only)
    failure: str | None = None  # "raise", "partial" or "final"
    struck: list[str] = field(default_factory=list)

    def after_invoke(self, call: Call, outcome: Outcome) -> Fault:
        for armed in self.after:
            fault, mapping, final_only = armed
            if call.mapping.startswith(mapping) and (call.batch.final or not final_only):
                self.after.remove(armed)
                self.struck.append(f"{fault.value} {call.mapping}{' final' if call.batch.final else ''}")
                if fault is Fault.CRASH:
                    cold_start()  # the Lambda process goes down with the poller
                return fault
        return Fault.NONE

    def aggregator(self, event: dict[str, Any], context: Any) -> Any:
        """The real handler, unless a failure is armed for this invocation."""
        records = event["Records"]
        if self.failure == "final" and event["isFinalInvokeForWindow"]:
            return self._fail("a final invocation raised")
        if self.failure == "raise" and records:
            return self._fail("a batch raised")
        if self.failure == "partial" and len(records) >= 2:
            self.failure = None
            half = len(records) // 2
            self.struck.append(f"batch item failure at {half} of {len(records)}")
            # the handler did the first half and reports the rest failed: Lambda resumes from there
            response = lambda_handler({**event, "Records": records[:half]}, context)
            return {
                **response,
                "batchItemFailures": [{"itemIdentifier": records[half]["kinesis"]["sequenceNumber"]}],
            }
        return lambda_handler(event, context)

    def _fail(self, what: str) -> Any:
        self.failure = None
        self.struck.append(what)
        raise InjectedFailure(what)


@dataclass
class Harness:
    """What the test function's fixtures give every example."""

    make_stack: Callable[..., Any]
    endpoint: Any
    folder: Path
    examples: int = 0
    merges: int = 0


class PipelineMachine(RuleBasedStateMachine):
    harness: ClassVar[Harness]

    def __init__(self) -> None:
        super().__init__()
        self.harness.examples += 1
        self.endpoint = self.harness.endpoint
        template, _ = self.harness.make_stack(ShardCount=2, WindowSeconds=1)
        cold_start()
        self.faults = ArmedFaults()
        spool = self.harness.folder / f"spool-{self.harness.examples}.jsonl"
        self.line = Pipeline(
            self.endpoint,
            template,
            spool,
            1,
            handlers={AGGREGATOR: self.faults.aggregator},
            hooks=self.faults,
        )
        self.producer = manual_producer(self.endpoint, self.line.stream, spool)
        self.accepted: dict[str, OrderEvent] = {}
        self.snapshots = 0

    # --- traffic -------------------------------------------------------------------------------

    @initialize(orders=ORDERS)
    def first_orders(self, orders: list[tuple[str, int, bool]]) -> None:
        self.put(orders)

    @rule(orders=ORDERS)
    def put(self, orders: list[tuple[str, int, bool]]) -> None:
        """Valid orders and refunds through the producer."""
        for store, amount, refund in orders:
            event = order(store, amount, refund=refund, currency=STORES[store])
            assert self.producer.submit(event) is None
            self.accepted[event.event_id] = event
        self.producer.flush()

    @precondition(lambda self: self.accepted)
    @rule(pick=st.integers(min_value=0))
    def duplicate(self, pick: int) -> None:
        """The producer sends an accepted event again (a lost response): same id, new position."""
        accepted = list(self.accepted.values())  # in the order they were put
        assert self.producer.submit(accepted[pick % len(accepted)]) is None
        self.producer.flush()

    @rule()
    def consume(self) -> None:
        self.line.runtime.run_until_idle()

    @rule()
    def close_windows(self) -> None:
        """The virtual clock catches up with the stream's: every window that has ended closes."""
        self.line.clock.set(max(self.line.clock.now_ms(), time.time_ns() // 1_000_000))
        self.line.runtime.run_until_idle()

    # --- faults --------------------------------------------------------------------------------

    @rule(mode=st.sampled_from(["raise", "partial", "final"]))
    def fail_a_batch(self, mode: str) -> None:
        self.faults.failure = mode

    @rule(mapping=st.sampled_from(STREAM_FUNCTIONS))
    def replay(self, mapping: str) -> None:
        self.faults.after.append((Fault.REPLAY, mapping, False))

    @rule(final_only=st.booleans())
    def crash_after_write(self, final_only: bool) -> None:
        """The poller dies after the aggregator returned (after its segment write, when final)."""
        self.faults.after.append((Fault.CRASH, AGGREGATOR, final_only))

    @precondition(lambda self: self.open_shards() < MAX_OPEN_SHARDS)
    @rule()
    def reshard(self) -> None:
        """Split the widest open shard in the middle of its hash range; the producer is not told."""
        kinesis = self.endpoint.client("kinesis")
        shards = kinesis.list_shards(StreamName=self.line.stream)["Shards"]
        widest = max(
            (s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]),
            key=lambda s: int(s["HashKeyRange"]["EndingHashKey"]) - int(s["HashKeyRange"]["StartingHashKey"]),
        )
        low, high = (int(widest["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
        kinesis.split_shard(
            StreamName=self.line.stream,
            ShardToSplit=widest["ShardId"],
            NewStartingHashKey=str((low + high) // 2),
        )

    @precondition(lambda self: self.adjacent_open_shards() is not None)
    @rule()
    def merge(self) -> None:
        """Merge two adjacent open shards; the producer is not told. The child is read only after
        both parents are read to their ends."""
        pair = self.adjacent_open_shards()
        assert pair is not None
        self.endpoint.client("kinesis").merge_shards(
            StreamName=self.line.stream, ShardToMerge=pair[0], AdjacentShardToMerge=pair[1]
        )
        self.harness.merges += 1

    # --- the batch layer and the invariant -----------------------------------------------------

    @precondition(lambda self: self.snapshots < 1)  # each costs up to a window of real time
    @rule()
    def snapshot(self) -> None:
        self.check_every_layer_against_the_model()

    @invariant()
    def the_runtime_reports_no_error(self) -> None:
        assert self.line.runtime.stats().errors == []

    def teardown(self) -> None:
        self.put(LAST_ORDERS)
        self.producer.close()
        assert self.producer.result.spooled == 0, self.producer.result.error
        self.check_every_layer_against_the_model()
        for struck in self.faults.struck:
            event(f"struck: {struck}")  # --hypothesis-show-statistics lists what the run exercised
        event(f"open shards at the end: {self.open_shards()}")

    def check_every_layer_against_the_model(self) -> None:
        self.snapshots += 1
        self.line.settle()  # every window closed, the archive complete ...
        for _ in range(5):  # ... once a final invocation that failed has been retried (the shard waited)
            if self.line.runtime.is_idle():
                break
            self.line.runtime.run_until_idle()
        assert self.line.runtime.is_idle()
        snapshot = self.line.snapshot().snapshot
        assert snapshot is not None
        reconciliation = self.line.reconcile()
        assert reconciliation.summary.status is Status.CLEAN, (
            self.faults.struck,
            reconciliation.differences[:3],
        )
        expected = model(self.accepted.values())
        assert self.line.speed_totals() == self.line.batch_totals(snapshot) == expected, self.faults.struck
        assert snapshot.counts["events"] == len(self.accepted)
        counters = [i for i in self.line.items("AggregatesTable") if i["sk"] == "COUNTERS"]
        assert sum(int(c["events"]) for c in counters) == len(self.accepted)  # each id folded once

    def adjacent_open_shards(self) -> tuple[str, str] | None:
        shards = self.endpoint.client("kinesis").list_shards(StreamName=self.line.stream)["Shards"]
        open_ = sorted(
            (int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]), s["ShardId"])
            for s in shards
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        )
        for (_, end, left), (start, _, right) in itertools.pairwise(open_):
            if end + 1 == start:
                return left, right
        return None

    def open_shards(self) -> int:
        shards = self.endpoint.client("kinesis").list_shards(StreamName=self.line.stream)["Shards"]
        return sum("EndingSequenceNumber" not in s["SequenceNumberRange"] for s in shards)


@pytest.mark.long
def test_any_interleaving_of_traffic_and_faults_counts_every_accepted_event_once(
    make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path
) -> None:
    PipelineMachine.harness = harness = Harness(make_stack, endpoint, tmp_path)
    run_state_machine_as_test(
        PipelineMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            # no shrinking: every example costs a stack and up to a window of real time, and the
            # windows follow the stream's real arrival times; a failure prints its steps as run
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            report_multiple_bugs=False,
        ),
    )
    assert harness.examples >= 12
    # ~120 steps over a dozen rules: a run without a single merge is a ~1e-5 chance
    assert harness.merges >= 1
