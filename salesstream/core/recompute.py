"""The batch recompute, pure: sightings -> one verdict per event id -> totals.

A sighting is one archived user record as the aggregator's own decoding pipeline read it
(consumers/batch/archive_reader.py: the accepted events, each on the shard it was read from; refused ones
are no sighting).

Memory stays bounded however big the archive: the scan writes each sighting (one line of text)
to one of P partitions by a stable hash of its event id, and each partition is then judged on
its own, so at most ~N/P sightings are in memory at once (the job picks P from the archive's
size). All sightings of an event id meet in one partition, so the global rule holds:

- every event id counts once: its first sighting in stream order (arrival time, then shard,
  sequence and sub-sequence number) is counted, in the (shard, window) of its arrival;
- the same position seen again (a replayed archiver invocation) is the same record;
- another position with the same effect is a duplicate (a producer resend);
- another position with another effect is a conflict: reported, never silently picked (the
  first sighting stays counted, as in the speed layer).

The rule is global: a copy on any shard is a duplicate, whichever shard it landed on. The speed
layer dedups per lineage (a shard and its ancestors), so a foreign producer's resend that lands
on an unrelated shard (an on-demand stream placing records by itself) may be counted there a
second time; the finding names every shard an event id was seen on, and the reconciliation
explains such a difference from the speed layer's dedup log.

Each event id's sightings are also replayed through the speed layer's own rule
(salesstream/core/dedup.py: a sighting more than the dedup horizon after the one remembered is
new again), to predict where the speed layer counted a late resend a second time. The
reconciliation uses that prediction to explain differences.

Totals go through the speed layer's reducer (`fold_all`, `result`) per (shard, window).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from salesstream.core.aggregation import Effect, WindowState, fold_all, result
from salesstream.core.batch import ShardHorizon, ShardState

# One sighting: event id, arrival ms, shard, sequence number (text), sub-sequence, effect.
# A tuple: one is made per archived event.
Sighting = tuple[str, int, str, str, int, Effect]
# (shard, window start ms, store, currency, business day ISO) -> [orders, refunds, gross, refunds_minor]
RowKey = tuple[str, int, str, str, str]


# --- partition lines ----------------------------------------------------------------------


def partition_of(event_id: str, partitions: int) -> int:
    """Stable across processes (Python's own str hash is salted per process)."""
    return zlib.crc32(event_id.encode()) % partitions


def encode_sighting(sighting: Sighting) -> str:
    event_id, arrival, shard, sequence, subsequence, ((store, currency, day), refund, amount) = sighting
    return (
        f"{event_id}\t{arrival}\t{shard}\t{sequence}\t{subsequence}"
        f"\t{store}\t{currency}\t{day}\t{1 if refund else 0}\t{amount}\n"
    )


def route(sightings: Iterable[Sighting], horizon_ms: int, buffers: list[list[str]]) -> int:
    """The scan's step for one archive object: each sighting before the horizon (later ones are
    the next snapshot's), as its line, into its event id's partition; how many were routed.
    `encode_sighting` and `partition_of` written out: this runs once per archived event."""
    partitions = len(buffers)
    routed = 0
    for event_id, arrival, shard, sequence, subsequence, (
        (store, currency, day),
        refund,
        amount,
    ) in sightings:
        if arrival < horizon_ms:
            buffers[zlib.crc32(event_id.encode()) % partitions].append(
                f"{event_id}\t{arrival}\t{shard}\t{sequence}\t{subsequence}"
                f"\t{store}\t{currency}\t{day}\t{1 if refund else 0}\t{amount}\n"
            )
            routed += 1
    return routed


def decode_sightings(text: str) -> Iterator[Sighting]:
    for line in text.splitlines():
        try:
            event_id, arrival, shard, sequence, subsequence, store, currency, day, refund, amount = (
                line.split("\t")
            )
        except ValueError:  # not ten fields
            raise ValueError(f"not a sighting line: {line[:80]!r}") from None
        yield (
            event_id,
            int(arrival),
            shard,
            sequence,
            int(subsequence),
            ((store, currency, int(day)), refund == "1", int(amount)),
        )


# --- one event id ---------------------------------------------------------------------------


def _order(sighting: Sighting) -> tuple[int, str, int, int]:
    return sighting[1], sighting[2], int(sighting[3]), sighting[4]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What happened to one event id: `counted` is its first sighting in stream order."""

    event_id: str
    sightings: tuple[Sighting, ...]  # distinct positions, in stream order
    counted: Sighting
    replays: int  # the same position archived again
    duplicates: int
    conflicts: int
    speed_counted: tuple[Sighting, ...]  # what the speed layer's rule counts (first, and late resends)

    @property
    def late_resends(self) -> tuple[Sighting, ...]:
        return self.speed_counted[1:]

    @property
    def is_plain(self) -> bool:
        """One sighting, counted by both layers alike: nothing to report."""
        return len(self.sightings) == 1


def judge(event_id: str, sightings: Iterable[Sighting], dedup_horizon_ms: int) -> Verdict:
    ordered = sorted(sightings, key=_order)
    distinct: list[Sighting] = []
    seen: set[tuple[str, str, int]] = set()
    for sighting in ordered:
        position = (sighting[2], sighting[3], sighting[4])
        if position not in seen:
            seen.add(position)
            distinct.append(sighting)
    first = distinct[0]
    duplicates = sum(1 for s in distinct[1:] if s[5] == first[5])
    # the speed layer's rule, sighting by sighting (salesstream/core/dedup.py: judge_all)
    remembered, speed_counted = first, [first]
    for sighting in distinct[1:]:
        if sighting[1] - remembered[1] > dedup_horizon_ms:
            remembered = sighting
            speed_counted.append(sighting)
    return Verdict(
        event_id,
        tuple(distinct),
        first,
        len(ordered) - len(distinct),
        duplicates,
        len(distinct) - 1 - duplicates,
        tuple(speed_counted),
    )


# --- one partition ----------------------------------------------------------------------------


def finding_of(verdict: Verdict, window_ms: int) -> dict[str, Any]:
    """An event id worth reporting (several sightings), as JSON; `shards` are the shards it was
    seen on (more than one: a resend that landed elsewhere, see the module's docstring)."""
    return {
        "event_id": verdict.event_id,
        "sightings": [_sighting_json(s, verdict, window_ms) for s in verdict.sightings],
        "duplicates": verdict.duplicates,
        "conflicts": verdict.conflicts,
        "shards": sorted({s[2] for s in verdict.sightings}),
    }


def _sighting_json(sighting: Sighting, verdict: Verdict, window_ms: int) -> dict[str, Any]:
    _, arrival, shard, sequence, subsequence, effect = sighting
    return {
        "shard_id": shard,
        "sequence_number": sequence,
        "subsequence": subsequence,
        "arrival_ms": arrival,
        "window_start_ms": arrival - arrival % window_ms,
        "effect": _effect_json(effect),
        "batch_counted": sighting == verdict.counted,
        "speed_counted": sighting in verdict.speed_counted,
    }


def _effect_json(effect: Effect) -> dict[str, Any]:
    (store, currency, day), refund, amount = effect
    return {
        "store_id": store,
        "currency": currency,
        "business_day": date.fromordinal(day).isoformat(),
        "refund": refund,
        "amount_minor": amount,
    }


@dataclass
class PartitionResult:
    rows: dict[RowKey, list[int]] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def reduce_partition(
    sightings: Iterable[Sighting], *, window_ms: int, dedup_horizon_ms: int
) -> PartitionResult:
    """Judge every event id of a partition and fold the counted sightings, per (shard, window),
    through the speed layer's reducer."""
    grouped: dict[str, Sighting | list[Sighting]] = {}
    for sighting in sightings:
        event_id = sighting[0]
        seen = grouped.get(event_id)
        if seen is None:
            grouped[event_id] = sighting  # most ids are seen once: no list for them
        elif isinstance(seen, list):
            seen.append(sighting)
        else:
            grouped[event_id] = [seen, sighting]

    effects: dict[tuple[str, int], list[Effect]] = {}
    outcome = PartitionResult()
    counts = dict.fromkeys(
        (
            "events",
            "duplicates",
            "conflicts",
            "replays",
            "late_resends",
            "copies_on_other_shards",
        ),
        0,
    )
    for event_id, seen in grouped.items():
        if not isinstance(seen, list):
            arrival = seen[1]
            effects.setdefault((seen[2], arrival - arrival % window_ms), []).append(seen[5])
            counts["events"] += 1
            continue
        verdict = judge(event_id, seen, dedup_horizon_ms)
        _, arrival, shard, _, _, effect = verdict.counted
        effects.setdefault((shard, arrival - arrival % window_ms), []).append(effect)
        counts["events"] += 1
        counts["replays"] += verdict.replays
        counts["duplicates"] += verdict.duplicates
        counts["conflicts"] += verdict.conflicts
        counts["late_resends"] += len(verdict.late_resends)
        counts["copies_on_other_shards"] += sum(1 for s in verdict.sightings if s[2] != shard)
        if not verdict.is_plain:
            outcome.findings.append(finding_of(verdict, window_ms))
    outcome.counts = counts
    for (shard, window_start), window_effects in effects.items():
        state = fold_all(WindowState(), window_effects)
        for (store, day, currency), totals in result(state).by_store_day.items():
            outcome.rows[(shard, window_start, store, currency, day)] = [
                totals.orders,
                totals.refunds,
                totals.gross_minor,
                totals.refunds_minor,
            ]
    return outcome


def add_rows(into: dict[RowKey, list[int]], rows: Iterable[tuple[RowKey, list[int]]]) -> None:
    for key, counts in rows:
        present = into.get(key)
        if present is None:
            into[key] = list(counts)
        else:
            for index, count in enumerate(counts):
                present[index] += count


# --- the horizon ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """What the stream holds after the last archived record of a shard."""

    next_arrival_ms: int | None  # the first record after it, if any
    shard_ended: bool  # the shard is closed and was read to its end
    caught_up: bool  # the read reached the tip of an open shard (MillisBehindLatest 0)


def shard_horizon(
    shard_id: str, last_archived_sequence: str | None, probe: Probe, *, now_ms: int, fallback_ms: int
) -> ShardHorizon:
    """Up to which arrival time (exclusive) the archive holds every record of the shard.

    The archiver reads a shard in order, so everything before the first record it has not
    archived is archived. `fallback_ms` is used when the stream neither showed the next record
    nor said it was caught up (a read can come back empty while behind): a time known to be
    complete (the start of the hour of the last archived object)."""
    if probe.next_arrival_ms is not None:
        return ShardHorizon(shard_id, ShardState.BEHIND, probe.next_arrival_ms, last_archived_sequence)
    if probe.shard_ended:
        return ShardHorizon(shard_id, ShardState.CLOSED, None, last_archived_sequence)
    if probe.caught_up:
        return ShardHorizon(shard_id, ShardState.CAUGHT_UP, now_ms, last_archived_sequence)
    return ShardHorizon(shard_id, ShardState.BEHIND, fallback_ms, last_archived_sequence)


@dataclass(frozen=True, slots=True)
class ProbeRead:
    """One GetRecords page of a probe on a DynamoDB Streams shard."""

    first_arrival_ms: int | None  # the page's first record's creation time, if it held one
    more: bool  # it gave a NextShardIterator (null: the shard is closed and read to its end)


def table_stream_probe(
    reads: Iterable[ProbeRead], *, after_sequence: str | None, ending_sequence: str | None, empty_reads: int
) -> Probe:
    """The probe of a table stream's shard after its last archived record (`after_sequence`).

    DynamoDB Streams reports no MillisBehindLatest, and a read can come back empty while records
    follow: it "might take multiple calls to get to a portion of the shard that contains stream
    records" (DynamoDB Streams API reference, GetRecords). So, in this order:
    - a closed shard (`ending_sequence`, its EndingSequenceNumber) whose last record is archived
      has ended, unread;
    - the first page holding a record: behind, up to that record;
    - a page without a next iterator: the shard is closed and was read to its end;
    - `empty_reads` empty pages in a row, each following the one before: an open shard is
      caught up; a closed one is not known to be read to its end (it gives no answer).
    `reads` is consumed only as far as needed."""
    if (
        ending_sequence is not None
        and after_sequence is not None
        and int(after_sequence) >= int(ending_sequence)
    ):
        return Probe(None, shard_ended=True, caught_up=True)
    empty = 0
    for read in reads:
        if read.first_arrival_ms is not None:
            return Probe(read.first_arrival_ms, shard_ended=False, caught_up=False)
        if not read.more:
            return Probe(None, shard_ended=True, caught_up=True)
        empty += 1
        if empty >= empty_reads:
            break
    return Probe(None, shard_ended=False, caught_up=ending_sequence is None and empty >= empty_reads)


def snapshot_horizon(shards: Iterable[ShardHorizon], *, now_ms: int, window_seconds: int) -> int:
    """The snapshot's horizon: the earliest shard horizon (a closed, fully archived shard has
    none), down to a window boundary so no window is split between batch and speed."""
    horizons = [shard.horizon_ms for shard in shards if shard.horizon_ms is not None]
    earliest = min(horizons, default=now_ms)
    window_ms = window_seconds * 1000
    return earliest - earliest % window_ms
