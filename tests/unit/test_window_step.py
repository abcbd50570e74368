"""One invocation's pure work (salesstream/core/window_fold.py): judged, quarantined, folded.

Step by step first (a duplicate straddling a window boundary, a resend into a child shard, a
batch redelivered with the state that already holds it, a cutoff), then the property: any split
of the same records into batches, any replay of a failed batch, with or without a cold start,
gives the totals computed directly over the distinct event ids."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from salesstream.core.aggregation import Totals, WindowState, effect_of, result
from salesstream.core.contract import OrderEvent, validate_wire
from salesstream.core.dedup import DedupIndex, decode_log, encode_log
from salesstream.core.lambda_events import KinesisTimeWindowEvent
from salesstream.core.reasons import Reason
from salesstream.core.records import decode_records
from salesstream.core.window_fold import apply, plan
from tests.window_events import Record, Shard, kpl, order

HORIZON_MS = 3_600_000


@dataclass
class Process:
    """The pure side of an aggregator process: its dedup index, plus the dedup log it shares
    with every other process (here the encoded payloads themselves; the S3 calls are
    exercised by the integration tests)."""

    log: dict[str, bytes] = field(default_factory=dict)
    index: DedupIndex = field(default_factory=lambda: DedupIndex(HORIZON_MS))

    def cold_start(self) -> None:
        self.index = DedupIndex(HORIZON_MS)
        for key in sorted(self.log):
            shard = key.split("/")[0]
            self.index.load(shard, decode_log(self.log[key]))

    def invoke(
        self, shard: Shard, records: list[Record], state: dict[str, Any], *, cutoff: int | None = None
    ) -> tuple[dict[str, Any], list[Reason]]:
        event = KinesisTimeWindowEvent.model_validate(shard.event(records, state))
        working = WindowState.resume(event.state)
        batch = decode_records(event.Records)
        planned = plan(working, self.index, shard.shard_id, batch)
        logged = apply(working, batch, planned, len(batch.records) if cutoff is None else cutoff)
        if logged:
            key = f"{shard.shard_id}/{logged[0][1]:015d}-{logged[0][0]}-{len(self.log)}"
            self.log[key] = encode_log(logged)
        return working.to_json(), [r.reason for r in planned.to_quarantine]


def totals_of(*states: dict[str, Any]) -> dict[tuple[str, str], Totals]:
    summed: dict[tuple[str, str], Totals] = {}
    for state in states:
        for key, totals in result(WindowState.resume(state)).by_store.items():
            summed[key] = summed.get(key, Totals()) + totals
    return summed


def test_a_resend_after_the_window_boundary_is_not_counted_again() -> None:
    process, shard = Process(), Shard(window_seconds=60)
    sale = order("store-1", 1000)
    first = shard.put(sale)
    shard.clock_ms = shard.window_of(first).end_ms - 5  # the resend lands in the next window
    shard.put(order("store-1", 200))
    resend = shard.put(sale, after_ms=10)
    assert shard.window_of(resend) != shard.window_of(first)
    one, _ = process.invoke(shard, shard.records[:2], {})
    two, _ = process.invoke(shard, [resend], {})
    assert totals_of(one, two) == {("store-1", "EUR"): Totals(orders=2, gross_minor=1200)}
    assert WindowState.resume(two).duplicates == 1


def test_a_resend_into_a_child_shard_is_not_counted_again() -> None:
    process = Process()
    parent, child = Shard("shardId-000000000000"), Shard("shardId-000000000001", next_sequence=900)
    sale = order("store-1", 1000)
    one, _ = process.invoke(parent, [parent.put(sale)], {})
    child.clock_ms = parent.clock_ms
    process.cold_start()  # even from the log alone
    two, _ = process.invoke(child, [child.put(kpl(sale, order("store-1", 1)))], {})
    assert totals_of(one, two) == {("store-1", "EUR"): Totals(orders=2, gross_minor=1001)}


def test_a_conflict_is_quarantined_and_the_first_sighting_stays() -> None:
    process, shard = Process(), Shard()
    sale = order("store-1", 1000, event_id="evt-conflict")
    changed = order("store-1", 900, event_id="evt-conflict")
    state, reasons = process.invoke(shard, [shard.put(sale), shard.put(kpl(changed, b"junk"))], {})
    assert reasons == [Reason.NOT_JSON, Reason.DUPLICATE_CONFLICT]
    assert totals_of(state) == {("store-1", "EUR"): Totals(orders=1, gross_minor=1000)}
    assert WindowState.resume(state).quarantined == {"not_json": 1, "duplicate_conflict": 1}


def test_a_batch_redelivered_with_the_state_that_holds_it_counts_once() -> None:
    process, shard = Process(), Shard()
    records = [shard.put(order("store-1", 100)), shard.put(kpl(order("store-1", 10), order("store-2", 1)))]
    once, _ = process.invoke(shard, records, {})
    again, _ = process.invoke(shard, [*records, shard.put(order("store-2", 7))], once)
    assert totals_of(again) == {
        ("store-1", "EUR"): Totals(orders=2, gross_minor=110),
        ("store-2", "EUR"): Totals(orders=2, gross_minor=8),
    }


def test_records_from_the_cutoff_on_are_left_out_and_redelivered() -> None:
    process, shard = Process(), Shard()
    records = [
        shard.put(order("store-1", 100)),
        shard.put(order("store-1", 20)),
        shard.put(order("store-1", 3)),
    ]
    partial, _ = process.invoke(shard, records, {}, cutoff=1)
    assert totals_of(partial) == {("store-1", "EUR"): Totals(orders=1, gross_minor=100)}
    assert WindowState.resume(partial).last is not None
    redelivered, _ = process.invoke(shard, records[1:], partial)
    assert totals_of(redelivered) == {("store-1", "EUR"): Totals(orders=3, gross_minor=123)}


# --- the property ---------------------------------------------------------------------------------

STORES = ("store-1", "store-2", "store-3")


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[OrderEvent], list[list[int]], list[tuple[int, int, int]]]:
    """Distinct orders, the stream of sends (an order may be sent again as it was, or with another
    amount: a conflict), sends grouped into Kinesis records, and records grouped into batches
    with what happens to each batch."""
    count = draw(st.integers(1, 12))
    originals = [
        order(
            draw(st.sampled_from(STORES)),
            draw(st.integers(1, 5_000)),
            refund=draw(st.booleans()),
            currency=draw(st.sampled_from(("EUR", "USD"))),
            day=draw(st.integers(0, 1)),
            event_id=f"evt-p{number}",
        )
        for number in range(count)
    ]
    conflicting = [
        order(o.store_id, o.total_minor + 1, currency=o.currency, event_id=o.event_id) for o in originals
    ]
    sends = draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, 5)), min_size=1, max_size=30))
    events = [conflicting[i] if variant == 0 else originals[i] for i, variant in sends]
    sizes = draw(st.lists(st.integers(1, 4), min_size=len(events), max_size=len(events)))
    records: list[list[int]] = []
    position = 0
    for size in sizes:
        if position >= len(events):
            break
        records.append(list(range(position, min(position + size, len(events)))))
        position += size
    # per record: the gap before it (ms), whether a batch ends after it, what happens to that batch
    plan_ = draw(
        st.lists(
            st.tuples(st.integers(1, 40_000), st.integers(0, 2), st.integers(0, 4)),
            min_size=len(records),
            max_size=len(records),
        )
    )
    return events, records, plan_


def expected_totals(events: list[OrderEvent]) -> tuple[dict[tuple[str, str], Totals], int, int]:
    """Directly over the distinct event ids: the first sighting counts, an equal resend is a
    duplicate, a different one a conflict."""
    first: dict[str, OrderEvent] = {}
    duplicates = conflicts = 0
    for event in events:
        if event.event_id not in first:
            first[event.event_id] = event
        else:
            seen = first[event.event_id]
            same = effect_of(validate_wire(seen.to_json_bytes())) == effect_of(
                validate_wire(event.to_json_bytes())
            )
            duplicates += same
            conflicts += not same
    totals: dict[tuple[str, str], Totals] = {}
    for event in first.values():
        amount = (
            Totals(refunds=1, refunds_minor=event.total_minor)
            if event.is_refund
            else Totals(orders=1, gross_minor=event.total_minor)
        )
        key = (event.store_id, event.currency)
        totals[key] = totals.get(key, Totals()) + amount
    return totals, duplicates, conflicts


@settings(max_examples=150, deadline=None)
@given(streams())
def test_any_split_and_any_replay_gives_the_direct_totals(
    stream: tuple[list[OrderEvent], list[list[int]], list[tuple[int, int, int]]],
) -> None:
    events, grouping, plan_ = stream
    process, shard = Process(), Shard(window_seconds=60)
    finished: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    batch: list[Record] = []
    current = None
    for members, (gap, batch_ends, fate) in zip(grouping, plan_, strict=True):
        payloads = [events[i] for i in members]
        data = kpl(*payloads) if len(payloads) > 1 else payloads[0].to_json_bytes()
        record = shard.put(data, after_ms=gap)
        if current is not None and shard.window_of(record) != current:
            if batch:
                state = run_batch(process, shard, batch, state, fate)
                batch = []
            finished.append(state)  # the final invocation: the window's segment is persisted
            state = {}
        current = shard.window_of(record)
        batch.append(record)
        if batch_ends == 0:
            state = run_batch(process, shard, batch, state, fate)
            batch = []
    if batch:
        state = run_batch(process, shard, batch, state, 0)
    finished.append(state)

    totals, duplicates, conflicts = expected_totals(events)
    assert {k: v for k, v in totals_of(*finished).items()} == totals
    counted = Counter[str]()
    for done in finished:
        resumed = WindowState.resume(done)
        counted["duplicates"] += resumed.duplicates
        counted["conflicts"] += resumed.conflicts
    assert (counted["duplicates"], counted["conflicts"]) == (duplicates, conflicts)


def run_batch(
    process: Process, shard: Shard, batch: list[Record], state: dict[str, Any], fate: int
) -> dict[str, Any]:
    """fate 0: fine; 1: fails after its work, replayed; 2: the same with a cold start before the
    replay; 3: succeeds, then is redelivered with its own new state; 4: a bisected replay."""
    if fate in (1, 2):
        process.invoke(shard, batch, state)  # its state is lost: Lambda retries the batch
        if fate == 2:
            process.cold_start()
    if fate == 4 and len(batch) > 1:
        process.invoke(shard, batch, state)
        half = len(batch) // 2
        state, _ = process.invoke(shard, batch[:half], state)
        batch = batch[half:]
    new_state, _ = process.invoke(shard, batch, state)
    if fate == 3:
        new_state, _ = process.invoke(shard, batch, new_state)
    return new_state
