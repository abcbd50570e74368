"""KPL aggregates for one shard, sized to one PUT payload unit.

The bytes are aws-kinesis-agg's format: magic, the protobuf body of its `AggregatedRecord`
schema, the MD5 of the body. The body is written here field by field, byte for byte as protobuf
serialises it (a unit test compares the two on random aggregates): each user record costs one
cached header and two list appends instead of a protobuf message object. aws-kinesis-agg's own
`RecordAggregator` writes the same bytes several times slower (it re-encodes every key and
deep-copies each finished record); see load_tests/bench_producer.py.

Sizing. Kinesis bills a record in PUT payload units of 25 KB, counting its data and its partition
key. An aggregate is closed when the next user record would take it past one unit, so each
aggregate costs exactly one unit; 25 KB is read as 25,000 bytes so it stays one unit under either
reading of "KB". The size of the body is tracked as records are added (protobuf's wire format
makes it exact), so nothing is serialised twice. User records carry no explicit hash key of their
own: the aggregate's explicit hash key routes them all.

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

from aws_kinesis_agg import DIGEST_SIZE, MAGIC
from isal import isal_zlib

from producer.shards import Shard
from salesstream.core.kpl import compress, is_aggregated

PAYLOAD_UNIT_BYTES: Final = 25_000
MAX_RECORD_BYTES: Final = 1024 * 1024  # data + partition key, per Kinesis record
_FRAMING: Final = len(MAGIC) + DIGEST_SIZE
# How much of the running ratio's forecast to fill: room for the next aggregate compressing a
# little worse than the last few (an envelope past its units costs one more unit).
_FILL: Final = 0.9
# Each new aggregate weighs as much as all earlier ones together, in bytes: a change in the
# traffic shows within a few aggregates, and a small flush leftover barely moves the ratio.
_DECAY: Final = 0.5
_GZIP_WBITS: Final = 31  # a gzip member, 32 KiB window: the envelope's format
# Record headers by data length << 32 | key index: few stores, event sizes in a band, so a few
# thousand cover the traffic; looked up inline in `AggregateBuilder.add`.
_HEADERS: dict[int, bytes] = {}
_MAX_HEADERS: Final = 1 << 14
_MAX_KEY_ENTRIES: Final = 1 << 16  # per builder: the stores routed to its shard


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

    # 1 (fastest) to 9 (smallest), zlib's scale. Level 1 is written by ISA-L, whose level 1 is
    # ~4.5x cheaper than zlib's and a little smaller (~9x on simulator events); 2-9 by zlib.
    level: int = 1
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
        packed = envelope(aggregate, self.level)
        self._plain = self._plain * _DECAY + len(aggregate)
        self._packed = self._packed * _DECAY + len(packed)
        return packed if len(packed) < len(aggregate) else aggregate


def envelope(aggregate: bytes, level: int) -> bytes:
    """The compressed envelope of one KPL aggregate (salesstream/core/kpl.py): one gzip member,
    mtime 0, the same format whichever deflate writes it."""
    if level != 1:
        return compress(aggregate, level)
    if not is_aggregated(aggregate):
        raise ValueError("only a KPL aggregate goes into a compressed envelope")
    return isal_zlib.compress(aggregate, 1, wbits=_GZIP_WBITS)


def plain_entry(event: Accepted) -> Entry:
    """Aggregation off: the event is the record, its store is the partition key."""
    return Entry(event.store_id, event.raw, None, None, [event])


def varint(value: int) -> bytes:
    """protobuf's base-128 varint."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def record_header(partition_key_index: int, data_length: int) -> bytes:
    """What precedes a user record's data in the body: `records` (field 3) holding a `Record` of
    `partition_key_index` (field 1) and `data` (field 3), as protobuf serialises it."""
    header = _HEADERS.get(data_length << 32 | partition_key_index)
    if header is None:
        record = b"\x08" + varint(partition_key_index) + b"\x1a" + varint(data_length)
        header = b"\x1a" + varint(len(record) + data_length) + record
        if len(_HEADERS) >= _MAX_HEADERS:
            _HEADERS.clear()
        _HEADERS[data_length << 32 | partition_key_index] = header
    return header


def key_table_entry(partition_key: bytes) -> bytes:
    """One `partition_key_table` (field 1) entry."""
    return b"\x0a" + varint(len(partition_key)) + partition_key


class AggregateBuilder:
    """User records bound for one shard, packed into aggregates of at most `limit` bytes
    (data + the aggregate's partition key, which is its first record's); with `compression`,
    of at most its `limit()` as it stands when each aggregate starts, sent compressed.

    The body is written as protobuf serialises an `AggregatedRecord` (the partition key table,
    then the records; no explicit hash key table: the aggregate's own key routes it), from
    pieces kept as they come, so its size is known exactly and nothing is serialised twice."""

    __slots__ = (
        "_compression",
        "_events",
        "_key_entries",
        "_key_index",
        "_keys",
        "_limit",
        "_records",
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
        # each store's key table entry, kept across aggregates: a store is new to most of them
        self._key_entries: dict[str, bytes] = {}
        self._reset()

    def _reset(self) -> None:
        self._limit = self._unit_limit if self._compression is None else self._compression.limit()
        self._key_index: dict[str, int] = {}
        self._keys: list[bytes] = []  # partition key table entries, in index order
        self._records: list[bytes] = []  # each record's header, then its data
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
        index = self._key_index.get(event.store_id)
        if index is None:
            return self._add_with_new_key(event)
        data = event.raw  # the common case, kept short: a known key, a cached header
        length = len(data)
        header = _HEADERS.get(length << 32 | index) or record_header(index, length)
        size = self._size + len(header) + length
        if size > self._limit:  # a known key: never the first record
            return self._cut(event)
        self._size = size
        self._records += (header, data)
        self._events.append(event)
        return None

    def _add_with_new_key(self, event: Accepted) -> Entry | None:
        key, data = event.store_id, event.raw
        key_entry = self._key_entries.get(key)
        if key_entry is None:
            if len(self._key_entries) >= _MAX_KEY_ENTRIES:
                self._key_entries.clear()
            key_entry = self._key_entries[key] = key_table_entry(key.encode())
        header = record_header(len(self._keys), len(data))
        growth = len(key_entry) + len(header) + len(data)
        if not self._events:
            growth += len(key.encode())  # the first key is also the aggregate's partition key
        elif self._size + growth > self._limit:
            return self._cut(event)
        self._key_index[key] = len(self._keys)
        self._keys.append(key_entry)
        self._records += (header, data)
        self._events.append(event)
        self._size += growth
        return None

    def _cut(self, event: Accepted) -> Entry | None:
        """The aggregate so far, finished; `event` starts the next one."""
        finished = self.take()
        self.add(event)
        return finished

    def take(self) -> Entry | None:
        """The aggregate so far (None if empty); the builder starts afresh."""
        if not self._events:
            return None
        body = b"".join(self._keys) + b"".join(self._records)
        data = MAGIC + body + hashlib.md5(body).digest()  # noqa: S324 - the format's checksum
        if self._compression is not None:
            data = self._compression.seal(data)
        entry = Entry(
            self._events[0].store_id, data, self.shard.explicit_hash_key, self.shard.shard_id, self._events
        )
        self._reset()
        return entry
