"""Good events written the way a producer we did not write sends them (docs/integrators.md), by
name: each shape turns events into PutRecords entries, past our producer.

    shape = FOREIGN_SHAPES["mixed_key_aggregate"]
    entries = shape.make(events, rng)      # [{"PartitionKey", "Data", maybe "ExplicitHashKey"}]

Every shape is valid input: every event in it must be counted exactly once, on the shard it
landed on (the consumers' placement rule), and none quarantined.
- mixed_key_aggregate: aws-kinesis-agg's `RecordAggregator`, one for every store, no explicit
  hash key (the library's default use): partition keys mixed in one aggregate, placed by the
  first one's hash;
- pinned_aggregate: the same, with one explicit hash key per aggregate;
- auto_placed: what an on-demand stream with AUTO distribution does: plain records and
  aggregates placed at random, whatever their keys (a random explicit hash key);
- plain_records: one event per record, partition key = store id.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aws_kinesis_agg.aggregator import RecordAggregator

from salesstream.core.sharding import HASH_KEY_MAX

Entry = dict[str, Any]  # one PutRecords entry
EVENTS_PER_AGGREGATE: Final = 25


@dataclass(frozen=True)
class ForeignShape:
    name: str
    make: Callable[[Sequence[bytes], random.Random], list[Entry]]


def aggregated(
    events: Sequence[bytes], hash_key: Callable[[], str | None], per_aggregate: int = EVENTS_PER_AGGREGATE
) -> list[Entry]:
    """aws-kinesis-agg's aggregates of `per_aggregate` events each, keys mixed as they come."""
    aggregator = RecordAggregator()
    entries: list[Entry] = []

    def emit() -> None:
        record = aggregator.clear_and_get()
        if record is None:
            return
        partition_key, _, data = record.get_contents()
        entry: Entry = {"PartitionKey": _text(partition_key), "Data": data}
        if (key := hash_key()) is not None:
            entry["ExplicitHashKey"] = key
        entries.append(entry)

    for index, raw in enumerate(events):
        full = aggregator.add_user_record(_store_of(raw), raw)
        if full is not None:  # over the record limit: the library hands back the full one
            partition_key, _, data = full.get_contents()
            entries.append({"PartitionKey": _text(partition_key), "Data": data})
        if (index + 1) % per_aggregate == 0:
            emit()
    emit()
    return entries


def _random_hash_key(rng: random.Random) -> str:
    return str(rng.randint(0, HASH_KEY_MAX))


def _plain(events: Sequence[bytes]) -> list[Entry]:
    return [{"PartitionKey": _store_of(raw), "Data": raw} for raw in events]


def _auto_placed(events: Sequence[bytes], rng: random.Random) -> list[Entry]:
    half = len(events) // 2
    placed = [{**entry, "ExplicitHashKey": _random_hash_key(rng)} for entry in _plain(events[:half])]
    return placed + aggregated(events[half:], lambda: _random_hash_key(rng))


def _store_of(raw: bytes) -> str:
    return str(json.loads(raw)["store_id"])


def _text(key: str | bytes) -> str:
    return key.decode() if isinstance(key, bytes) else key


_SHAPES: Final = (
    ForeignShape("mixed_key_aggregate", lambda events, _: aggregated(events, lambda: None)),
    ForeignShape("pinned_aggregate", lambda events, rng: aggregated(events, lambda: _random_hash_key(rng))),
    ForeignShape("auto_placed", _auto_placed),
    ForeignShape("plain_records", lambda events, _: _plain(events)),
)
FOREIGN_SHAPES: Final[dict[str, ForeignShape]] = {shape.name: shape for shape in _SHAPES}
