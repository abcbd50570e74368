"""The batch recompute, step by step and as properties: the global dedup rule, the prediction
of what the speed layer's own rule counted (checked against salesstream/core/dedup.py itself),
partition-independent totals, the horizon; and the segments' per-day totals it is compared with."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from salesstream.core.aggregation import Effect, Lateness, Segment, WindowState, fold_all, result
from salesstream.core.batch import ShardState
from salesstream.core.dedup import NEW, DedupIndex
from salesstream.core.positions import Position
from salesstream.core.recompute import (
    Probe,
    ProbeRead,
    Sighting,
    add_rows,
    decode_sightings,
    encode_sighting,
    judge,
    partition_of,
    reduce_partition,
    shard_horizon,
    snapshot_horizon,
    table_stream_probe,
)
from salesstream.core.windows import Window

DAY = date(2026, 11, 23).toordinal()
WINDOW_MS = 60_000
T0 = 1_795_428_000_000


def effect(amount: int, store: str = "s1", *, refund: bool = False, day: int = DAY) -> Effect:
    return ((store, "EUR", day), refund, amount)


def seen(
    event_id: str, arrival: int, sequence: int, amount: int = 100, *, shard: str = "sh-0", sub: int = 0
) -> Sighting:
    return (event_id, T0 + arrival, shard, str(sequence), sub, effect(amount))


def test_the_first_sighting_in_stream_order_counts_and_the_rest_is_named() -> None:
    plain = judge("e", [seen("e", 10, 1)], 300_000)
    assert plain.is_plain
    assert plain.counted == seen("e", 10, 1)

    # given in any order: the first by arrival (then shard, sequence, sub-sequence) counts
    verdict = judge(
        "e", [seen("e", 30, 3, 999), seen("e", 20, 2), seen("e", 10, 1), seen("e", 10, 1)], 300_000
    )
    assert verdict.counted == seen("e", 10, 1)
    assert (verdict.replays, verdict.duplicates, verdict.conflicts) == (1, 1, 1)
    assert [s[3] for s in verdict.sightings] == ["1", "2", "3"]

    # a copy on any other shard is a duplicate too: the batch layer's rule is global
    elsewhere = judge("e", [seen("e", 20, 1, shard="sh-2"), seen("e", 10, 7, shard="sh-1")], 300_000)
    assert elsewhere.counted == seen("e", 10, 7, shard="sh-1")
    assert (elsewhere.duplicates, elsewhere.conflicts) == (1, 0)


def test_a_finding_names_every_shard_its_event_was_seen_on() -> None:
    reduced = reduce_partition(
        [seen("e", 10, 1, shard="sh-1"), seen("e", 20, 4, shard="sh-3"), seen("f", 10, 2)],
        window_ms=WINDOW_MS,
        dedup_horizon_ms=300_000,
    )
    (finding,) = reduced.findings
    assert (finding["event_id"], finding["shards"], finding["duplicates"]) == ("e", ["sh-1", "sh-3"], 1)
    assert [s["batch_counted"] for s in finding["sightings"]] == [True, False]
    assert (reduced.counts["events"], reduced.counts["copies_on_other_shards"]) == (2, 1)


def test_the_speed_layers_rule_counts_a_resend_after_the_dedup_horizon_again() -> None:
    verdict = judge("e", [seen("e", 0, 1), seen("e", 50, 2), seen("e", 120, 3), seen("e", 200, 4)], 100)
    # 50: within 100 ms of 0, a duplicate; 120: 120 ms after 0, new again; 200: within 100 ms of 120
    assert [s[3] for s in verdict.speed_counted] == ["1", "3"]
    assert [s[3] for s in verdict.late_resends] == ["3"]
    assert verdict.counted == seen("e", 0, 1)  # the batch layer counts it once whatever the delay


sightings_strategy = st.lists(
    st.tuples(
        st.sampled_from([f"e{i}" for i in range(8)]),
        st.integers(0, 400_000),  # arrival offset ms
        st.sampled_from(["sh-0", "sh-1"]),
        st.integers(1, 30),  # sequence
        st.integers(0, 2),  # sub-sequence
        st.sampled_from([100, 250]),  # amount
        st.booleans(),  # refund
    ),
    max_size=40,
)


def build(raw: list[tuple[str, int, str, int, int, int, bool]]) -> list[Sighting]:
    """Sightings as the stream would show them: one position is one record, whatever the id."""
    by_position: dict[tuple[str, int, int], Sighting] = {}
    for event_id, arrival, shard, sequence, sub, amount, refund in raw:
        key = (shard, sequence, sub)
        by_position.setdefault(
            key,
            (
                event_id,
                T0 + arrival,
                shard,
                str(sequence),
                sub,
                effect(amount, refund=refund),
            ),
        )
    return list(by_position.values())


@settings(max_examples=300)
@given(raw=sightings_strategy, horizon=st.sampled_from([0, 1000, 300_000]))
def test_the_predicted_speed_counts_are_what_the_speed_layers_own_index_decides(
    raw: list[tuple[str, int, str, int, int, int, bool]], horizon: int
) -> None:
    sightings = build(raw)
    accepted = sorted(sightings, key=lambda s: (s[1], s[2], int(s[3]), s[4]))
    index = DedupIndex(horizon_ms=horizon)
    decided: dict[str, list[Sighting]] = {}
    for event_id, arrival, shard, sequence, sub, effect_ in accepted:
        (verdict,) = index.judge_all(shard, [(event_id, sequence, sub, effect_, arrival)])
        if verdict is NEW:
            decided.setdefault(event_id, []).append((event_id, arrival, shard, sequence, sub, effect_))
    for event_id in {s[0] for s in accepted}:
        predicted = judge(event_id, [s for s in sightings if s[0] == event_id], horizon).speed_counted
        assert list(predicted) == decided[event_id]


@settings(max_examples=200)
@given(raw=sightings_strategy, partitions=st.integers(1, 5), seed=st.integers(0, 1000))
def test_totals_do_not_depend_on_partitions_or_order_and_count_each_id_once(
    raw: list[tuple[str, int, str, int, int, int, bool]], partitions: int, seed: int
) -> None:
    sightings = build(raw)
    random.Random(seed).shuffle(sightings)
    rows: dict[tuple[str, int, str, str, str], list[int]] = {}
    events = 0
    for partition in range(partitions):
        mine = [s for s in sightings if partition_of(s[0], partitions) == partition]
        reduced = reduce_partition(
            decode_sightings("".join(map(encode_sighting, mine))), window_ms=WINDOW_MS, dedup_horizon_ms=1000
        )
        add_rows(rows, reduced.rows.items())
        events += reduced.counts["events"]

    # the model: per id, the first accepted sighting in stream order, folded by (shard, window)
    expected: dict[tuple[str, int], WindowState] = {}
    first: dict[str, Sighting] = {}
    for s in sorted(sightings, key=lambda s: (s[1], s[2], int(s[3]), s[4])):
        if s[0] not in first:
            first[s[0]] = s
    for _, arrival, shard, _, _, effect_ in first.values():
        fold_all(expected.setdefault((shard, arrival - arrival % WINDOW_MS), WindowState()), [effect_])
    model = {
        (shard, start, store, currency, day): [t.orders, t.refunds, t.gross_minor, t.refunds_minor]
        for (shard, start), state in expected.items()
        for (store, day, currency), t in result(state).by_store_day.items()
    }
    assert rows == model
    assert events == len(first)


@given(
    st.lists(
        st.tuples(st.text("abcXYZ019._:-", min_size=1, max_size=12), st.integers(0, 2**45), st.booleans())
    )
)
def test_sightings_survive_their_text_form(items: list[tuple[str, int, bool]]) -> None:
    sightings = [
        (
            event_id,
            arrival,
            "shardId-000000000001",
            "4959033827149025660855969253836157109592157598913658",
            7,
            effect(arrival % 10**12, refund=refund),
        )
        for event_id, arrival, refund in items
    ]
    assert list(decode_sightings("".join(map(encode_sighting, sightings)))) == sightings


def test_the_horizon_per_shard_and_for_the_snapshot() -> None:
    now = T0 + 3_725_000
    behind = shard_horizon("a", "5", Probe(T0 + 1_234, False, False), now_ms=now, fallback_ms=0)
    assert (behind.state, behind.horizon_ms) == (
        ShardState.BEHIND,
        T0 + 1_234,
    )  # just before the unarchived record
    quiet = shard_horizon("b", "9", Probe(None, False, True), now_ms=now, fallback_ms=0)
    assert (quiet.state, quiet.horizon_ms) == (ShardState.CAUGHT_UP, now)  # a quiet shard holds nothing back
    closed = shard_horizon("c", "7", Probe(None, True, True), now_ms=now, fallback_ms=0)
    assert (closed.state, closed.horizon_ms) == (ShardState.CLOSED, None)
    unsure = shard_horizon("d", "3", Probe(None, False, False), now_ms=now, fallback_ms=T0)
    assert (unsure.state, unsure.horizon_ms) == (ShardState.BEHIND, T0)

    # the earliest shard, down to a window boundary; a closed shard does not count
    assert snapshot_horizon([behind, quiet, closed], now_ms=now, window_seconds=60) == T0
    assert snapshot_horizon([quiet, closed], now_ms=now, window_seconds=60) == now - now % 60_000
    assert snapshot_horizon([closed], now_ms=now, window_seconds=1) == now - now % 1000


def pages(*reads: ProbeRead) -> Iterator[ProbeRead]:
    """A probe's pages, refusing to be read past what the test scripted."""
    yield from reads
    raise AssertionError("the probe read past its last scripted page")


EMPTY = ProbeRead(None, more=True)


def table_probe(*reads: ProbeRead, after: str | None = "10", ending: str | None = None) -> Probe:
    return table_stream_probe(pages(*reads), after_sequence=after, ending_sequence=ending, empty_reads=3)


def test_a_table_shard_is_behind_up_to_the_first_record_even_after_empty_pages() -> None:
    # AWS: a read can return no records while records follow; the probe keeps reading
    assert table_probe(ProbeRead(T0, more=True)) == Probe(T0, shard_ended=False, caught_up=False)
    assert table_probe(EMPTY, EMPTY, ProbeRead(T0, more=True)) == Probe(
        T0, shard_ended=False, caught_up=False
    )
    closed = table_probe(EMPTY, ProbeRead(T0, more=True), ending="99")
    assert closed == Probe(T0, shard_ended=False, caught_up=False)  # a parent the archiver lags on


def test_an_open_table_shard_is_caught_up_only_after_enough_empty_pages_in_a_row() -> None:
    assert table_probe(EMPTY, EMPTY, EMPTY) == Probe(None, shard_ended=False, caught_up=True)
    # pages that stop before the rule's count of empty ones give no answer
    short = table_stream_probe(iter([EMPTY, EMPTY]), after_sequence="10", ending_sequence=None, empty_reads=3)
    assert short == Probe(None, shard_ended=False, caught_up=False)
    # nothing archived yet: read from the trim horizon by the same rule
    assert table_probe(EMPTY, EMPTY, ProbeRead(T0, more=True), after=None).next_arrival_ms == T0


def test_a_closed_table_shard_ends_when_read_to_its_end_or_when_its_last_record_is_archived() -> None:
    ended = Probe(None, shard_ended=True, caught_up=True)
    # GetRecords without NextShardIterator: "the shard has been closed" and holds nothing more
    assert table_probe(EMPTY, ProbeRead(None, more=False), ending="99") == ended
    # its EndingSequenceNumber is the last archived record: ended without a read (sequence
    # numbers compare as numbers, not as strings)
    assert table_probe(after="100", ending="99") == ended
    assert table_probe(after="100", ending="100") == ended
    # closed, but empty pages and no end: not known to be archived to its end
    assert table_probe(EMPTY, EMPTY, EMPTY, ending="200") == Probe(None, shard_ended=False, caught_up=False)
    # and what the shard horizon makes of each
    now = T0 + 60_000
    for probe, state in (
        (ended, ShardState.CLOSED),
        (table_probe(EMPTY, EMPTY, EMPTY), ShardState.CAUGHT_UP),
    ):
        assert shard_horizon("t", "100", probe, now_ms=now, fallback_ms=T0).state is state


def test_a_segment_carries_its_totals_per_business_day_too() -> None:
    state = fold_all(
        WindowState(), [effect(100), effect(40, refund=True), effect(7, day=DAY + 1), effect(5, "s2")]
    )
    segment = Segment(
        "sh-0",
        Window(T0, T0 + WINDOW_MS),
        Position(1),
        Position(4),
        T0,
        T0 + 10,
        False,
        Lateness(),
        result(state),
    )
    days = segment.content()["days"]
    assert days == {
        "s1/EUR/2026-11-23": {
            "orders": 1,
            "refunds": 1,
            "gross_minor": 100,
            "refunds_minor": 40,
            "net_minor": 60,
        },
        "s1/EUR/2026-11-24": {
            "orders": 1,
            "refunds": 0,
            "gross_minor": 7,
            "refunds_minor": 0,
            "net_minor": 7,
        },
        "s2/EUR/2026-11-23": {
            "orders": 1,
            "refunds": 0,
            "gross_minor": 5,
            "refunds_minor": 0,
            "net_minor": 5,
        },
    }
