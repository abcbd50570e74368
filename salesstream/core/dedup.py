"""Exactly once under duplicates, without a database write per event.

The index remembers, for every event id seen within the horizon, where it was seen (shard,
sequence number, sub-sequence number), when it arrived, and its *effect* (the fields that change
a total, see `aggregation.effect_of`). A new sighting of a known id is judged by one rule:

- same shard, sequence and sub-sequence: the very record again (at-least-once redelivery after a
  failed invocation, whose state did not keep it) -> REPLAY: fold it again;
- another position, same effect: a producer resend -> DUPLICATE: count it, do not fold;
- another position, another effect: -> CONFLICT: quarantine it (`duplicate_conflict`); the first
  sighting stays counted.

A sighting more than `horizon_ms` after the remembered one is judged NEW: the speed layer forgets
after the horizon (the batch layer's reconciliation catches later resends). The rule depends only
on what was seen, never on what happens to be in memory, so a replay after a cold start decides
exactly as the first attempt did, provided the index was caught up from the durable log (the S3
objects encoded and decoded here; consumers/speed/dedup_log.py reads and writes them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Final

import msgspec

from salesstream.core.aggregation import Effect
from salesstream.core.positions import Position
from salesstream.core.wire import REFUND

if TYPE_CHECKING:
    from salesstream.core.records import Accepted


class Verdict(IntEnum):
    NEW = 0
    REPLAY = 1
    DUPLICATE = 2
    CONFLICT = 3


NEW: Final = Verdict.NEW
REPLAY: Final = Verdict.REPLAY
DUPLICATE: Final = Verdict.DUPLICATE
CONFLICT: Final = Verdict.CONFLICT

# What the index keeps per event id: shard, sequence number, sub-sequence number, effect, arrival ms.
Entry = tuple[str, str, int, Effect, int]
# One sighting to judge or to load: event id, sequence number, sub-sequence number, effect, arrival ms.
Sighting = tuple[str, str, int, Effect, int]


class DedupIndex:
    """Recently seen event ids (one per process, kept across warm invocations).

    Entries are grouped per shard in the order they were added (one group per invocation or per
    loaded log object), so eviction drops whole groups once the shard's own clock has moved a
    horizon past them; a lagging shard never loses entries because another shard is ahead."""

    def __init__(self, horizon_ms: int, slack_ms: int = 0) -> None:
        self.horizon_ms = horizon_ms
        # entries are kept slack_ms longer than the horizon: a replayed batch can start up to a
        # window before the newest arrival the shard has shown
        self.slack_ms = slack_ms
        self._entries: dict[str, Entry] = {}
        self._groups: dict[str, deque[tuple[int, list[str]]]] = {}
        self._clock: dict[str, int] = {}
        self._logs: dict[str, dict[str, int]] = {}  # shard -> log object key -> first arrival ms

    def __len__(self) -> int:
        return len(self._entries)

    # --- judging ----------------------------------------------------------------------------

    def judge_all(self, shard: str, sightings: Iterable[Sighting]) -> list[Verdict]:
        """The verdict for each sighting, in order; NEW ones are remembered from then on (so the
        second of two equal ids in one batch is a DUPLICATE of the first)."""
        entries = self._entries
        horizon = self.horizon_ms
        verdicts: list[Verdict] = []
        added: list[str] = []
        latest = self._clock.get(shard, 0)
        for event_id, sequence, subsequence, effect, arrival in sightings:
            seen = entries.get(event_id)
            if seen is None or arrival - seen[4] > horizon:
                if seen is not None:
                    del entries[event_id]  # re-inserted at the end, where eviction expects it
                entries[event_id] = (shard, sequence, subsequence, effect, arrival)
                added.append(event_id)
                verdicts.append(NEW)
            elif seen[2] == subsequence and seen[1] == sequence and seen[0] == shard:
                verdicts.append(REPLAY)
            elif seen[3] == effect:
                verdicts.append(DUPLICATE)
            else:
                verdicts.append(CONFLICT)
            if arrival > latest:
                latest = arrival
        self._clock[shard] = latest
        if added:
            self._groups.setdefault(shard, deque()).append((latest, added))
        return verdicts

    def judge_accepted(
        self, shard: str, accepted: Sequence[Accepted], sequences: Sequence[str], arrivals: Sequence[int]
    ) -> tuple[list[Verdict], list[Effect]]:
        """`judge_all` over decoded events (`records.Accepted`, whose record index points into
        `sequences` and `arrivals`): the verdicts and the effects, both aligned with `accepted`."""
        # `aggregation.effect_of`, spelled out on the struct's attributes
        effects: list[Effect] = [
            (
                (event.store_id, event.currency, event.occurred_at.toordinal()),
                event.event_type == REFUND,
                event.total_minor,
            )
            for event, _, _, _ in accepted
        ]
        sightings = (
            (event.event_id, sequences[record], subsequence, effect, arrivals[record])
            for (event, _, record, subsequence), effect in zip(accepted, effects, strict=True)
        )
        return self.judge_all(shard, sightings), effects

    def where(self, event_id: str) -> str:
        """Where an id was first seen, for a conflict's detail (no values, only the position)."""
        seen = self._entries.get(event_id)
        if seen is None:
            return "not indexed"
        return f"shard {seen[0]}, sequence {seen[1]}, sub-sequence {seen[2]}"

    # --- the durable log ----------------------------------------------------------------------

    def load(self, shard: str, sightings: Iterable[Sighting]) -> int:
        """Entries another invocation logged; the earliest sighting of an id wins. Returns how
        many were new to this index."""
        entries = self._entries
        added: list[str] = []
        latest = 0
        for event_id, sequence, subsequence, effect, arrival in sightings:
            seen = entries.get(event_id)
            if seen is None or arrival < seen[4]:
                entries[event_id] = (shard, sequence, subsequence, effect, arrival)
                added.append(event_id)
            latest = max(latest, arrival)
        if added:
            self._groups.setdefault(shard, deque()).append((latest, added))
        return len(added)

    def note_log(self, shard: str, key: str) -> None:
        """A log object of this shard is now reflected in the index (written or loaded)."""
        self._logs.setdefault(shard, {})[key] = log_first_arrival(key)

    def track(self, shard: str) -> None:
        """The shard's log has been read (from the cutoff on): from now on only newer keys matter."""
        self._logs.setdefault(shard, {})

    def knows_log(self, shard: str, key: str) -> bool:
        return key in self._logs.get(shard, {})

    def knows_shard(self, shard: str) -> bool:
        """False until the shard's log has been read once by this process (a cold start)."""
        return shard in self._logs

    def last_log(self, shard: str) -> str | None:
        keys = self._logs.get(shard)
        return max(keys) if keys else None

    # --- forgetting ---------------------------------------------------------------------------

    def evict(self, shard: str) -> int:
        """Forget the shard's entries that are a horizon (plus slack) behind its newest arrival.
        Returns how many were dropped."""
        groups = self._groups.get(shard)
        if not groups:
            return 0
        cutoff = self._clock.get(shard, 0) - self.horizon_ms - self.slack_ms
        dropped = 0
        while groups and groups[0][0] < cutoff:
            _, event_ids = groups.popleft()
            for event_id in event_ids:
                entry = self._entries.get(event_id)
                # an id re-sighted later (or on another shard) has a newer entry: keep that one
                if entry is not None and entry[0] == shard and entry[4] < cutoff:
                    del self._entries[event_id]
                    dropped += 1
        logs = self._logs.get(shard, {})
        newest = self.last_log(shard)
        for key in [key for key, first_arrival in logs.items() if first_arrival < cutoff and key != newest]:
            del logs[key]
        return dropped


# --- the log's object keys and payload (pure; the S3 calls live in the adapter) -------------------

LOG_PREFIX: Final = "dedup/"
_ARRIVAL_DIGITS: Final = 15
_LOG_SUFFIX: Final = ".jsonl"

# What one invocation logs per Kinesis record: sequence number, arrival ms, and the folded user
# records of it as (event id, sub-sequence number, effect).
LoggedRecord = tuple[str, int, list[tuple[str, int, Effect]]]


def log_prefix(shard: str) -> str:
    return f"{LOG_PREFIX}{shard}/"


def log_key(shard: str, first_arrival_ms: int, first: Position, last: Position) -> str:
    """Sortable by first arrival, then position: `dedup/<shard>/<arrival ms>-<first>-<last>.jsonl`."""
    return f"{log_prefix(shard)}{first_arrival_ms:0{_ARRIVAL_DIGITS}d}-{first.key}-{last.key}{_LOG_SUFFIX}"


def log_start_after(shard: str, arrival_ms: int) -> str:
    """A ListObjectsV2 StartAfter that lists every object whose first arrival is >= arrival_ms."""
    if arrival_ms <= 0:
        return log_prefix(shard)
    # "~" sorts after the "-" that follows the arrival in every key of arrival_ms - 1
    return f"{log_prefix(shard)}{arrival_ms - 1:0{_ARRIVAL_DIGITS}d}~"


def log_first_arrival(key: str) -> int:
    name = key.rsplit("/", 1)[-1]
    return int(name[:_ARRIVAL_DIGITS])


def encode_log(records: Iterable[LoggedRecord]) -> bytes:
    """One JSON line per Kinesis record, not compressed: every invocation writes one, only cold
    starts read them, and S3 bills requests, not bytes (gzip level 1 would cost ~0.5 us per event
    on every invocation to save download time on the rare cold start). msgspec writes the bytes
    `json.dumps(record, separators=(",", ":"))` would (every string in it is ASCII: identifiers,
    sequence numbers, currency codes), several times faster."""
    return b"\n".join(map(_ENCODE_LINE, records))


def decode_log(payload: bytes) -> Iterator[Sighting]:
    """The sightings of a log object, line by line; a line of another shape raises
    `msgspec.ValidationError` (a `ValueError`)."""
    for sequence, arrival, users in _DECODE_LINES(payload):
        for event_id, subsequence, effect in users:
            yield event_id, sequence, subsequence, effect, arrival


_ENCODE_LINE: Final = msgspec.json.Encoder().encode
# the line's exact shape, so the effects come out as the tuples the index compares
_DECODE_LINES: Final = msgspec.json.Decoder(
    tuple[str, int, list[tuple[str, int, tuple[tuple[str, str, int], bool, int]]]]
).decode_lines
