"""The load test's per-event ground truth (load_tests/truth.py): every event sent is counted
exactly once or quarantined, judged from the dedup log and the persisted segments."""

from __future__ import annotations

from typing import Any

import pytest

from load_tests.truth import SendLedger, reckon
from load_tests.visibility import Sighting
from salesstream.core.positions import Position

EFFECT: Any = (("store-1", "EUR", "2026-11-23"), False, 100)


class Ids:
    """Event ids as a fleet of run `r1` mints them: e.r1.<hex number>."""

    def event_id(self, number: int) -> str:
        return f"e.r1.{number:x}"

    def event_number(self, event_id: str) -> int | None:
        prefix = "e.r1."
        return int(event_id[len(prefix) :], 16) if event_id.startswith(prefix) else None


IDS = Ids()


def ledger(count: int, *, bad: set[int] = frozenset(), spooled: set[int] = frozenset()) -> SendLedger:  # type: ignore[assignment]
    sent = SendLedger()
    sent.note(1, count // 2, at=100.0)
    sent.note(count // 2 + 1, count - count // 2, at=101.0)
    sent.bad, sent.not_acknowledged = set(bad), set(spooled)
    return sent


def record(sequence: int, numbers: list[int], *, shard: str = "shard-0") -> tuple[str, list[Any]]:
    """One dedup-log object holding one Kinesis record whose user records are these events."""
    return shard, [(IDS.event_id(n), str(sequence), sub, EFFECT, 0) for sub, n in enumerate(numbers)]


def segment(
    first: int, last: int, events: int, *, shard: str = "shard-0", seen_at: float = 110.0
) -> Sighting:
    return Sighting(
        shard, f"k{first}", 0, 60_000, Position(first, 0), Position(last, 999), events, False, seen_at
    )


def test_every_event_counted_once_is_correct_and_timed() -> None:
    result = reckon(ledger(4), IDS, [record(10, [1, 2]), record(11, [3, 4])], [segment(10, 11, 4)], [])
    assert (result.counted, result.lost, result.double_counted, result.correct) == (4, 0, 0, True)
    assert sorted(result.put_to_counted) == [9.0, 9.0, 10.0, 10.0]  # seen at 110, sent at 100 / 101


def test_a_batch_logged_again_by_a_retried_invocation_counts_once() -> None:
    log = [record(10, [1, 2]), record(10, [1, 2]), record(11, [3, 4])]
    result = reckon(ledger(4), IDS, log, [segment(10, 11, 4)], [])
    assert (result.counted, result.double_counted, result.correct) == (4, 0, True)


def test_an_event_counted_at_two_positions_is_double_counted() -> None:
    log = [record(10, [1, 2]), record(11, [3, 4, 2])]
    result = reckon(ledger(4), IDS, log, [segment(10, 11, 5)], [])
    assert result.double_counted == 1
    assert result.examples["double_counted"] == [IDS.event_id(2)]
    assert not result.correct


def test_an_event_counted_nowhere_is_lost_unless_it_never_reached_the_stream() -> None:
    result = reckon(ledger(4), IDS, [record(10, [1, 2, 3])], [segment(10, 10, 3)], [])
    assert (result.lost, result.examples["lost"]) == (1, [IDS.event_id(4)])
    spooled = reckon(ledger(4, spooled={4}), IDS, [record(10, [1, 2, 3])], [segment(10, 10, 3)], [])
    assert (spooled.lost, spooled.acknowledged, spooled.correct) == (0, 3, True)


def test_corrupted_events_must_be_quarantined_and_never_counted() -> None:
    good = reckon(ledger(4, bad={4}), IDS, [record(10, [1, 2, 3])], [segment(10, 10, 3)], [IDS.event_id(4)])
    assert (good.quarantined, good.expected_quarantined, good.correct) == (1, 1, True)
    counted = reckon(ledger(4, bad={4}), IDS, [record(10, [1, 2, 3, 4])], [segment(10, 10, 4)], [])
    assert (counted.bad_counted, counted.correct) == (1, False)
    unseen = reckon(ledger(4, bad={4}), IDS, [record(10, [1, 2, 3])], [segment(10, 10, 3)], [])
    assert (unseen.lost, unseen.correct) == (1, False)


def test_a_valid_event_in_the_quarantine_is_an_error() -> None:
    result = reckon(ledger(2), IDS, [record(10, [1])], [segment(10, 10, 1)], [IDS.event_id(2)])
    assert (result.good_quarantined, result.lost, result.correct) == (1, 0, False)


def test_folded_but_not_in_a_persisted_segment_is_not_counted() -> None:
    result = reckon(ledger(2), IDS, [record(10, [1]), record(20, [2])], [segment(10, 10, 1)], [])
    assert (result.outside_segments, result.lost, result.correct) == (1, 1, False)


def test_ids_of_other_runs_are_ignored_and_unknown_numbers_are_phantoms() -> None:
    foreign = ("shard-0", [("e.r0.1", "10", 5, EFFECT, 0)])
    result = reckon(ledger(1), IDS, [record(10, [1, 7]), foreign], [segment(10, 10, 2)], [])
    assert (result.foreign, result.phantom, result.correct) == (1, 1, False)


def test_the_segments_must_account_for_what_the_log_says_they_counted() -> None:
    result = reckon(ledger(2), IDS, [record(10, [1, 2])], [segment(10, 10, 3)], [])
    assert (result.counted_sightings, result.segment_events, result.correct) == (2, 3, False)


def test_segments_are_looked_up_per_shard() -> None:
    log = [record(10, [1], shard="a"), record(10, [2], shard="b")]
    result = reckon(ledger(2), IDS, log, [segment(10, 10, 1, shard="a")], [])
    assert (result.counted, result.outside_segments) == (1, 1)


def test_the_ledger_takes_slots_in_order_only() -> None:
    sent = SendLedger()
    sent.note(1, 10, at=1.0)
    with pytest.raises(ValueError, match="expected 11"):
        sent.note(12, 5, at=2.0)
    assert (sent.total, sent.sent_at(10), sent.first_sent_at) == (10, 1.0, 1.0)
