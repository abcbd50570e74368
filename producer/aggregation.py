"""KPL aggregates for one shard, sized to one PUT payload unit.

The bytes are aws-kinesis-agg's format, written by driving its protobuf schema
(`messages_pb2.AggregatedRecord`) directly: magic, the protobuf body, the MD5 of the body.
aws-kinesis-agg's own `RecordAggregator` writes the same bytes, but it is ~3.5x slower here
(it re-encodes every key and deep-copies each finished record); see load_tests/bench_producer.py.

Sizing. Kinesis bills a record in PUT payload units of 25 KB, counting its data and its partition
key. An aggregate is closed when the next user record would take it past one unit, so each
aggregate costs exactly one unit; 25 KB is read as 25,000 bytes so it stays one unit under either
reading of "KB". The size of the protobuf body is tracked as records are added (protobuf's wire
format makes it exact), so nothing is serialised twice. User records carry no explicit hash key of
their own: the aggregate's explicit hash key routes them all.

Compression (`Compression`, on by default): a finished aggregate is sent as salesstream's
compressed envelope, one gzip member holding the aggregate (the exact bytes are described in
salesstream/core/kpl.py), which the consumers open before de-aggregating. Kinesis bills and
limits the record's bytes, so the aggregate may then grow until its envelope fills its payload
units: it is closed at `units` x 25,000 bytes x the running compression ratio x a margin (a
bytes-weighted, decaying ratio of the aggregates compressed so far; 1 before the first), and never
above the 1 MiB record limit before compression. An envelope that would not be smaller than the
aggregate is not used (the plain aggregate goes), so the record limit holds after it as well.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

# Importing the aggregator first puts aws-kinesis-agg's generated modules on sys.path
# (they import each other as top-level modules).
import aws_kinesis_agg.aggregator  # noqa: F401
from aws_kinesis_agg import DIGEST_SIZE, MAGIC, messages_pb2

from producer.shards import Shard
from salesstream.core.kpl import compress

PAYLOAD_UNIT_BYTES: Final = 25_000
MAX_RECORD_BYTES: Final = 1024 * 1024  # data + partition key, per Kinesis record
_FRAMING: Final = len(MAGIC) + DIGEST_SIZE
# How much of the running ratio's forecast to fill: room for the next aggregate compressing a
# little worse than the last few (an envelope past its units costs one more unit).
_FILL: Final = 0.9
# Each new aggregate weighs as much as all earlier ones together, in bytes: a change in the
# traffic shows within a few aggregates, and a small flush leftover barely moves the ratio.
_DECAY: Final = 0.5


class Accepted(NamedTuple):
    """An event that passed the contract, held until Kinesis acknowledges it."""

    raw: bytes
    event_id: str
    store_id: str
    currency: str
    is_refund: bool
    total_minor: int


@dataclass(slots=True)
class Entry:
    """One PutRecords entry: a KPL aggregate bound for `shard_id`, or one plain event."""

    partition_key: str
    data: bytes
    explicit_hash_key: str | None
    shard_id: str | None
    events: list[Accepted]

    @property
    def size(self) -> int:
        """What Kinesis counts against its limits: data plus partition key."""
        return len(self.data) + len(self.partition_key.encode())

    @property
    def payload_units(self) -> int:
        return -(-self.size // PAYLOAD_UNIT_BYTES)

    def request(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"Data": self.data, "PartitionKey": self.partition_key}
        if self.explicit_hash_key is not None:
            entry["ExplicitHashKey"] = self.explicit_hash_key
        return entry


@dataclass(slots=True)
class Compression:
    """Compressed envelopes for finished aggregates, and the plain size at which to close an
    aggregate so that its envelope fills `units` payload units."""

    level: int = 1  # zlib level: 1 is ~3x cheaper than 6 per event and still ~8x smaller
    units: int = 1
    _plain: float = field(default=0.0, init=False)  # decaying byte sums in and out: the running ratio
    _packed: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.level <= 9:  # zlib's levels
            raise ValueError("the compression level is 1 (fastest) to 9 (smallest)")
        if self.units < 1:
            raise ValueError("an envelope aims at 1 payload unit or more")

    @property
    def ratio(self) -> float:
        return self._plain / self._packed if self._packed else 1.0

    def limit(self) -> int:
        """Where to close the next aggregate (data + partition key, before compression)."""
        target = self.units * PAYLOAD_UNIT_BYTES
        return min(MAX_RECORD_BYTES, max(target, int(target * self.ratio * _FILL)))

    def seal(self, aggregate: bytes) -> bytes:
        """The record data for a finished aggregate: its envelope, unless that is no smaller."""
        packed = compress(aggregate, self.level)
        self._plain = self._plain * _DECAY + len(aggregate)
        self._packed = self._packed * _DECAY + len(packed)
        return packed if len(packed) < len(aggregate) else aggregate


def plain_entry(event: Accepted) -> Entry:
    """Aggregation off: the event is the record, its store is the partition key."""
    return Entry(event.store_id, event.raw, None, None, [event])


def varint_size(value: int) -> int:
    return 1 if value < 0x80 else (value.bit_length() + 6) // 7


def record_size(partition_key_index: int, data_length: int) -> int:
    """Bytes one user record adds to the body: field 3 holding (key index, data). Called per
    event, so the common one- and two-byte varints are spelled out."""
    inner = (
        2
        + data_length
        + (1 if partition_key_index < 0x80 else varint_size(partition_key_index))
        + (1 if data_length < 0x80 else 2 if data_length < 0x4000 else varint_size(data_length))
    )
    return inner + (2 if inner < 0x80 else 3 if inner < 0x4000 else 1 + varint_size(inner))


def key_table_size(partition_key: bytes) -> int:
    return 1 + varint_size(len(partition_key)) + len(partition_key)


class AggregateBuilder:
    """User records bound for one shard, packed into aggregates of at most `limit` bytes
    (data + the aggregate's partition key, which is its first record's); with `compression`,
    of at most its `limit()` as it stands when each aggregate starts, sent compressed."""

    __slots__ = (
        "_add_record",
        "_compression",
        "_events",
        "_key_index",
        "_limit",
        "_message",
        "_size",
        "_unit_limit",
        "shard",
    )

    def __init__(
        self, shard: Shard, limit: int = PAYLOAD_UNIT_BYTES, compression: Compression | None = None
    ) -> None:
        if limit > MAX_RECORD_BYTES:
            raise ValueError(f"an aggregate cannot exceed {MAX_RECORD_BYTES} bytes")
        self.shard = shard
        self._unit_limit = limit
        self._compression = compression
        self._reset()

    def _reset(self) -> None:
        self._limit = self._unit_limit if self._compression is None else self._compression.limit()
        self._message = messages_pb2.AggregatedRecord()
        self._add_record = self._message.records.add  # bound once: upb makes a new proxy per access
        self._key_index: dict[str, int] = {}
        self._events: list[Accepted] = []
        self._size = _FRAMING  # what the aggregate counts so far: framing, outer key, body

    def __len__(self) -> int:
        return len(self._events)

    @property
    def size(self) -> int:
        """The size the aggregate would have now (data + partition key), without serialising it."""
        return self._size

    def add(self, event: Accepted) -> Entry | None:
        """Add one event; returns the finished aggregate when the event did not fit and
        starts the next one with it."""
        key, data = event.store_id, event.raw
        index = self._key_index.get(key)
        if index is None:
            growth = key_table_size(key.encode()) + record_size(len(self._key_index), len(data))
        else:
            growth = record_size(index, len(data))
        if self._events and self._size + growth > self._limit:
            finished = self.take()
            self.add(event)
            return finished
        if index is None:
            index = self._key_index[key] = len(self._key_index)
            self._message.partition_key_table.append(key)
            if not self._events:
                growth += len(key.encode())  # the first key is also the aggregate's partition key
        self._add_record(partition_key_index=index, data=data)
        self._events.append(event)
        self._size += growth
        return None

    def take(self) -> Entry | None:
        """The aggregate so far (None if empty); the builder starts afresh."""
        if not self._events:
            return None
        body = self._message.SerializeToString()
        data = MAGIC + body + hashlib.md5(body).digest()  # noqa: S324 - the format's checksum
        if self._compression is not None:
            data = self._compression.seal(data)
        entry = Entry(
            self._message.partition_key_table[0],
            data,
            self.shard.explicit_hash_key,
            self.shard.shard_id,
            self._events,
        )
        self._reset()
        return entry
