"""The per-event ground truth of a load test: every event sent, counted exactly once or
quarantined, and how long each took to be counted. Pure: no AWS calls here.

What was sent is known exactly and cheaply: the load generator hands the producer slots of
consecutively numbered events (the fleet numbers its event ids), so the ledger keeps one entry
per slot (first number, count, when), not one per event.

What was counted is read back from the speed layer itself: the aggregator logs every event id it
folds, with its position in the shard (the dedup log, one object per invocation: see
salesstream/core/dedup.py), and an event is counted when its position lies inside a window
segment that was persisted (the SEGMENT items: first and last position). A position logged twice
(a batch retried after a failed invocation) counts once; an event id counted at two positions
is double-counted; an acknowledged event counted nowhere and not quarantined is lost.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from load_tests.visibility import Sighting
from salesstream.core.dedup import Sighting as LogSighting
from salesstream.core.positions import Position

EXAMPLES: Final = 20  # ids listed per kind of error in the report
SATURATED: Final = 255


class EventIds(Protocol):
    """How a fleet numbers the event ids it mints (producer/simulator.py's Fleet)."""

    def event_id(self, number: int) -> str: ...

    def event_number(self, event_id: str) -> int | None: ...


class SendLedger:
    """Which event numbers the load generator handed to the producer, and when."""

    def __init__(self) -> None:
        self._firsts = array("q")
        self._times = array("d")
        self.total = 0  # the highest event number handed over
        self.bad: set[int] = set()  # numbers sent corrupted, past the producer: must be quarantined
        self.not_acknowledged: set[int] = set()  # spooled by the producer: never reached the stream

    def note(self, first: int, count: int, at: float) -> None:
        if count <= 0:
            return
        if first != self.total + 1:
            raise ValueError(f"slot starts at event {first}, expected {self.total + 1}")
        self._firsts.append(first)
        self._times.append(at)
        self.total = first + count - 1

    def sent_at(self, number: int) -> float:
        index = bisect.bisect_right(self._firsts, number) - 1
        return self._times[index]

    def acknowledged(self, number: int) -> bool:
        return 1 <= number <= self.total and number not in self.not_acknowledged

    @property
    def first_sent_at(self) -> float | None:
        return self._times[0] if self._times else None


@dataclass
class Reckoning:
    sent: int = 0  # events handed over, good and bad
    acknowledged: int = 0  # of those, acknowledged by the stream (good + bad)
    expected_counted: int = 0  # acknowledged good events: each must be counted exactly once
    expected_quarantined: int = 0  # acknowledged bad events: each must be quarantined
    counted: int = 0  # distinct events counted
    counted_sightings: int = 0  # events counted, with repetitions (must equal the segments' events)
    segment_events: int = 0  # what the persisted segments say they counted
    quarantined: int = 0  # distinct events of this run quarantined
    lost: int = 0
    double_counted: int = 0
    bad_counted: int = 0  # corrupted events that were counted: must be 0
    good_quarantined: int = 0  # valid events quarantined: must be 0
    phantom: int = 0  # counted ids this run never sent: must be 0
    foreign: int = 0  # counted ids of other runs (a reused stack): ignored
    outside_segments: int = 0  # folded in an invocation but in no persisted segment (yet)
    examples: dict[str, list[str]] = field(default_factory=dict)
    put_to_counted: array[float] = field(default_factory=lambda: array("d"))  # seconds, per event

    @property
    def correct(self) -> bool:
        return (
            self.lost == 0
            and self.double_counted == 0
            and self.bad_counted == 0
            and self.good_quarantined == 0
            and self.phantom == 0
            and self.counted_sightings == self.segment_events
        )

    def _example(self, kind: str, event_id: str) -> None:
        found = self.examples.setdefault(kind, [])
        if len(found) < EXAMPLES:
            found.append(event_id)


class SegmentIndex:
    """Per shard, the persisted segments ordered by their first position."""

    def __init__(self, segments: Iterable[Sighting]) -> None:
        by_shard: dict[str, list[Sighting]] = {}
        for segment in segments:
            by_shard.setdefault(segment.shard_id, []).append(segment)
        self._segments = {shard: sorted(found, key=lambda s: s.first) for shard, found in by_shard.items()}
        self._firsts = {shard: [s.first for s in found] for shard, found in self._segments.items()}

    def holding(self, shard: str, position: Position) -> Sighting | None:
        firsts = self._firsts.get(shard)
        if not firsts:
            return None
        index = bisect.bisect_right(firsts, position) - 1
        if index < 0:
            return None
        segment = self._segments[shard][index]
        return segment if position <= segment.last else None


def reckon(
    ledger: SendLedger,
    ids: EventIds,
    log: Iterable[tuple[str, Iterable[LogSighting]]],
    segments: Sequence[Sighting],
    quarantined_ids: Iterable[str],
) -> Reckoning:
    """Match what was sent against what was counted and quarantined, event by event.

    `log`: per dedup-log object, its shard and its sightings (event id, sequence, sub-sequence,
    effect, arrival). `segments`: the persisted window segments of this run. `ids`: the fleet
    that minted this run's event ids (an id it did not mint belongs to another run)."""
    result = Reckoning(sent=ledger.total)
    counts = bytearray(ledger.total + 1)
    index = SegmentIndex(segments)
    seen_positions: dict[tuple[str, str], frozenset[int]] = {}
    for shard, sightings in log:
        for record_sequence, users in _by_record(sightings):
            done = seen_positions.get((shard, record_sequence), frozenset())
            fresh = [(event_id, sub) for event_id, sub in users if sub not in done]
            if not fresh:
                continue  # a batch logged again by a retried invocation: the same positions
            seen_positions[(shard, record_sequence)] = done | {sub for _, sub in fresh}
            segment = index.holding(shard, Position.of(record_sequence, fresh[0][1]))
            for event_id, _ in fresh:
                number = ids.event_number(event_id)
                if number is None:
                    result.foreign += 1
                    continue
                if number > ledger.total:
                    result.phantom += 1
                    result._example("phantom", event_id)
                    continue
                if segment is None:
                    result.outside_segments += 1
                    continue
                result.counted_sightings += 1
                counts[number] = min(SATURATED, counts[number] + 1)
                if counts[number] == 1:
                    result.put_to_counted.append(segment.seen_at - ledger.sent_at(number))
    result.segment_events = sum(s.events for s in segments)

    quarantined: set[int] = set()
    for event_id in quarantined_ids:
        number = ids.event_number(event_id)
        if number is not None and number <= ledger.total:
            quarantined.add(number)
    result.quarantined = len(quarantined)

    for number in range(1, ledger.total + 1):
        if not ledger.acknowledged(number):
            continue
        result.acknowledged += 1
        count = counts[number]
        if number in ledger.bad:
            result.expected_quarantined += 1
            if count:
                result.bad_counted += 1
                result._example("bad_counted", ids.event_id(number))
            elif number not in quarantined:
                result.lost += 1
                result._example("lost", ids.event_id(number))
            continue
        result.expected_counted += 1
        if count:
            result.counted += 1
        if count > 1:
            result.double_counted += 1
            result._example("double_counted", ids.event_id(number))
        if number in quarantined:
            result.good_quarantined += 1
            result._example("good_quarantined", ids.event_id(number))
        elif count == 0:
            result.lost += 1
            result._example("lost", ids.event_id(number))
    return result


def _by_record(sightings: Iterable[LogSighting]) -> Iterable[tuple[str, list[tuple[str, int]]]]:
    """Consecutive sightings of one Kinesis record (one line of a log object) grouped together."""
    current: str | None = None
    users: list[tuple[str, int]] = []
    for event_id, sequence, subsequence, _effect, _arrival in sightings:
        if sequence != current:
            if current is not None:
                yield current, users
            current, users = sequence, []
        users.append((event_id, subsequence))
    if current is not None:
        yield current, users
