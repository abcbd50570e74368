"""The hot path's shortcuts decide as the plain forms do: `DedupIndex.judge_accepted` as
`judge_all` over the same sightings, and the validator's memory of store and terminal ids never
lets a bad id through, whatever it remembered before or forgot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesstream.core import wire
from salesstream.core.aggregation import effect_of
from salesstream.core.dedup import DedupIndex
from salesstream.core.reasons import RejectedEvent
from salesstream.core.records import Accepted
from salesstream.core.wire import WireEvent, WireLine, decode_event

HORIZON_MS = 10_000


def wire_event(event_id: str, store: str, amount: int, *, refund: bool, day: int) -> WireEvent:
    return WireEvent(
        schema_version=1,
        event_id=event_id,
        event_type="order_refunded" if refund else "order_placed",
        order_id="ord-1",
        store_id=store,
        terminal_id="till-1",
        occurred_at=datetime(2026, 11, day, 12, tzinfo=UTC),
        currency="EUR",
        lines=(WireLine("SKU-1", 1, amount),),
        total_minor=amount,
    )


# a batch: (record, event id, store, amount, refund, day) per event, records in order
_EVENTS = st.tuples(
    st.sampled_from(["e1", "e2", "e3", "e4"]),
    st.sampled_from(["store-1", "store-2"]),
    st.sampled_from([100, 200]),
    st.booleans(),
    st.sampled_from([22, 23]),
)
_BATCHES = st.lists(
    st.tuples(
        st.sampled_from(["s0", "s1"]),
        st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20_000)), min_size=1, max_size=4),
        st.lists(_EVENTS, min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=6,
)


@given(_BATCHES)
def test_judging_decoded_events_gives_the_verdicts_of_judge_all(
    batches: list[tuple[str, list[tuple[int, int]], list[tuple[str, str, int, bool, int]]]],
) -> None:
    plain, fast = DedupIndex(HORIZON_MS), DedupIndex(HORIZON_MS)
    for shard, records, events in batches:
        # sequence numbers from a small range, so that positions repeat (replays)
        sequences = [str(sequence) for sequence, _ in records]
        arrivals = [arrival for _, arrival in records]
        accepted: list[Accepted] = []
        for number, (event_id, store, amount, refund, day) in enumerate(events):
            record = min(number * len(records) // len(events), len(records) - 1)
            accepted.append(
                (wire_event(event_id, store, amount, refund=refund, day=day), b"", record, number)
            )
        sightings = [
            (event.event_id, sequences[record], subsequence, effect_of(event), arrivals[record])
            for event, _, record, subsequence in accepted
        ]
        verdicts, effects = fast.judge_accepted(shard, accepted, sequences, arrivals)
        assert verdicts == plain.judge_all(shard, sightings)
        assert effects == [sighting[3] for sighting in sightings]
        assert len(fast) == len(plain)
        assert [fast.where(event_id) for event_id in ("e1", "e2", "e3", "e4")] == [
            plain.where(event_id) for event_id in ("e1", "e2", "e3", "e4")
        ]
        assert fast.evict(shard) == plain.evict(shard)


def payload(store: str, terminal: str) -> bytes:
    return (
        '{"schema_version":1,"event_id":"evt-1","event_type":"order_placed","order_id":"ord-1",'
        f'"store_id":"{store}","terminal_id":"{terminal}","occurred_at":"2026-11-23T11:00:00+01:00",'
        '"currency":"EUR","lines":[{"sku":"SKU-1","quantity":1,"unit_price_minor":100}],"total_minor":100}'
    ).encode()


@pytest.mark.parametrize(
    ("store", "terminal", "field"),
    [
        ("store-1", "till 1", "terminal_id"),
        ("-store", "till-1", "store_id"),
        ("store#1", "till-1", "store_id"),
    ],
)
def test_a_known_store_or_terminal_does_not_vouch_for_the_other(
    store: str, terminal: str, field: str
) -> None:
    assert decode_event(payload("store-1", "till-1")).store_id == "store-1"  # both now known
    with pytest.raises(RejectedEvent) as refused:
        decode_event(payload(store, terminal))
    assert refused.value.field == field


def test_the_memory_of_ids_is_bounded_and_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_MAX_KNOWN_PLACES", 4)
    wire._KNOWN_PLACES.clear()
    for number in range(5):
        assert decode_event(payload(f"store-{number}", "till-1")).store_id == f"store-{number}"
        assert len(wire._KNOWN_PLACES) <= 4
    assert {"store-4", "till-1"} <= wire._KNOWN_PLACES
    with pytest.raises(RejectedEvent):
        decode_event(payload("store-4", "till/1"))
