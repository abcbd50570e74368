"""One invocation's work on the window state, with no I/O: `plan`, then `apply`.

`plan` judges every accepted event against the dedup index and lists what must go to the
quarantine; the handler then writes the quarantine, which may fail for some records; `apply`
folds everything before the first record that could not be quarantined (`cutoff`) and returns
what the dedup log must record. Records from `cutoff` on are left out of the state entirely: the
handler names the first of them in batchItemFailures and Lambda redelivers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from salesstream.core.aggregation import Effect, WindowState
from salesstream.core.dedup import CONFLICT, DUPLICATE, DedupIndex, LoggedRecord, Verdict
from salesstream.core.reasons import Reason
from salesstream.core.records import Accepted, DecodedBatch, Refusal

_MS_PER_SECOND = 1000


@dataclass(slots=True)
class Plan:
    start: int  # the first record not already folded into this very state
    accepted: list[Accepted] = field(default_factory=list)  # from `start` on
    verdicts: list[Verdict] = field(default_factory=list)  # aligned with `accepted`
    effects: list[Effect] = field(default_factory=list)  # aligned with `accepted`
    to_quarantine: list[Refusal] = field(default_factory=list)  # refusals and conflicts from `start` on


def first_new_record(state: WindowState, batch: DecodedBatch) -> int:
    """Records at or before the state's last position are in the state already: a batch
    redelivered together with the state that folded it must not count twice."""
    if state.last is None:
        return 0
    start = 0
    while start < len(batch.records) and batch.records[start].first <= state.last:
        start += 1
    return start


def plan(state: WindowState, index: DedupIndex, shard: str, batch: DecodedBatch) -> Plan:
    start = first_new_record(state, batch)
    accepted = [item for item in batch.accepted if item[2] >= start] if start else batch.accepted
    sequences = [info.sequence_number for info in batch.records]
    arrivals = [info.arrival_ms for info in batch.records]
    verdicts, effects = index.judge_accepted(shard, accepted, sequences, arrivals)
    to_quarantine = [refusal for refusal in batch.refused if refusal.record >= start]
    if CONFLICT in verdicts:  # rare: one scan at C speed instead of a loop over every event
        for verdict, (event, raw, record, subsequence) in zip(verdicts, accepted, strict=True):
            if verdict is CONFLICT:
                to_quarantine.append(_conflict(index, raw, record, subsequence, event.event_id))
    return Plan(start, accepted, verdicts, effects, to_quarantine)


def _conflict(index: DedupIndex, raw: bytes, record: int, subsequence: int, event_id: str) -> Refusal:
    return Refusal(
        record,
        subsequence,
        Reason.DUPLICATE_CONFLICT,
        f"event_id counted before with another store, currency, day, type or amount: {index.where(event_id)}",
        raw,
        event_id,
    )


def apply(state: WindowState, batch: DecodedBatch, planned: Plan, cutoff: int) -> list[LoggedRecord]:
    """Fold the plan's records before `cutoff` into `state`; returns the dedup log's lines."""
    records = batch.records
    for info in records[planned.start : cutoff]:
        state.note_position(info.first, info.last, info.arrival_ms)
    for refusal in planned.to_quarantine:
        if refusal.record < cutoff:
            state.note_quarantined(refusal.reason)

    totals = state.totals
    folded = 0
    logged: list[LoggedRecord] = []
    users: list[tuple[str, int, Effect]] = []
    current = -1
    for (event, _, record, subsequence), verdict, effect in zip(
        planned.accepted, planned.verdicts, planned.effects, strict=True
    ):
        if record >= cutoff:
            break
        if verdict is DUPLICATE:
            state.duplicates += 1
            continue
        if verdict is CONFLICT:
            continue  # counted with the quarantine above
        # `aggregation.fold_all`, inline: this loop visits every event already
        key, is_refund, amount = effect
        counts = totals.get(key)
        if counts is None:
            counts = totals[key] = [0, 0, 0, 0]
        if is_refund:
            counts[1] += 1
            counts[3] += amount
        else:
            counts[0] += 1
            counts[2] += amount
        folded += 1
        if record != current:
            # lateness is sampled: the first folded event of each Kinesis record (an aware
            # datetime's timestamp() costs ~0.4 us, too much for every event)
            current = record
            info = records[record]
            users = []
            logged.append((info.sequence_number, info.arrival_ms, users))
            state.lateness.add(info.arrival_ms - round(event.occurred_at.timestamp() * _MS_PER_SECOND))
        users.append((event.event_id, subsequence, effect))
    state.events += folded
    return logged
