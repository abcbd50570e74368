"""The KPL aggregated-record format, read strictly and written exactly.

Format (awslabs/amazon-kinesis-producer, aggregation-format.md): 4 magic bytes, a protobuf
`AggregatedRecord` (tables of partition keys and explicit hash keys, then the user records),
and the MD5 digest of the protobuf bytes. The schema comes from aws-kinesis-agg.

aws-kinesis-agg's own de-aggregator is lenient in two dangerous ways: a record whose checksum
does not match is passed through as if it were not aggregated, and a protobuf parse error is
printed and the rest of the aggregate silently dropped. `deaggregate` here refuses both with a
`BrokenAggregate` carrying a reason code, so the caller can quarantine the whole record.

The compressed envelope (salesstream's own, written by the producer when compression is on):
a Kinesis record's data may be one gzip member (RFC 1952) whose content is exactly one KPL
aggregate. It is recognised by its first three bytes, `1f 8b 08` (gzip's magic and "deflate"),
which neither a KPL aggregate (`f3 89 9a c2`) nor a UTF-8 JSON event (`{`, or whitespace) can
start with. The producer writes the header `1f 8b 08 00`, mtime `00 00 00 00` (so the same
aggregate gives the same bytes), XFL and OS as its deflate sets them (zlib's `compress` here, or
ISA-L's in the producer: any deflate will do); then the deflate stream, then the CRC-32 and the
length of the aggregate (little-endian, 4 bytes each). gzip rather than a bare zlib stream: its
magic cannot be mistaken for text, its CRC-32 checks the content, and an operator can read a
record with `base64 -d | gunzip`. The reader (`unwrap`) refuses a record
whose envelope is truncated, corrupt (deflate error, CRC or length mismatch), followed by
anything (a second member included) or whose content is not a KPL aggregate (`corrupt_envelope`),
and stops inflating past `MAX_INFLATED_BYTES`, 1 MiB, the most the producer ever compresses
(Kinesis's record limit), so a small record cannot make a consumer inflate gigabytes
(`envelope_oversize`).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

# aws-kinesis-agg's generated modules import each other as top-level modules; importing its
# aggregator first puts their folder on sys.path (the library's own arrangement).
import aws_kinesis_agg.aggregator  # noqa: F401
from aws_kinesis_agg import MAGIC, messages_pb2
from google.protobuf.message import DecodeError

from salesstream.core.reasons import Reason

DIGEST_SIZE: Final = 16
# An aggregate with no user records, or one too short to hold magic + digest, is broken.
_MIN_AGGREGATE: Final = len(MAGIC) + DIGEST_SIZE
GZIP_MAGIC: Final = b"\x1f\x8b\x08"  # gzip's two magic bytes, then compression method 8 (deflate)
_GZIP_WBITS: Final = 31  # zlib's window bits for "a gzip member, 32 KiB window"
MAX_INFLATED_BYTES: Final = 1024 * 1024  # the producer compresses no aggregate above Kinesis's record limit


class BrokenAggregate(ValueError):
    """A KPL aggregate that cannot be trusted: every user record in it goes to quarantine."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One record as the producer wrote it; `subsequence` is its index in the aggregate
    (0 for a record that was not aggregated)."""

    data: bytes
    partition_key: str
    explicit_hash_key: str | None
    subsequence: int
    aggregated: bool


def is_aggregated(data: bytes) -> bool:
    return data[:4] == MAGIC


def is_compressed(data: bytes) -> bool:
    return data[:3] == GZIP_MAGIC


def compress(aggregate: bytes, level: int) -> bytes:
    """The compressed envelope of one KPL aggregate: one gzip member with mtime 0."""
    if not is_aggregated(aggregate):
        raise ValueError("only a KPL aggregate goes into a compressed envelope")
    packer = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    return packer.compress(aggregate) + packer.flush()


def unwrap(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """The KPL aggregate inside a compressed envelope, or `data` itself when it is not one;
    raises `BrokenAggregate` (corrupt_envelope, envelope_oversize). Inflates at most `limit` + 1
    bytes, whatever the envelope claims."""
    if not is_compressed(data):
        return data
    inflater = zlib.decompressobj(_GZIP_WBITS)
    try:
        content = inflater.decompress(data, limit + 1)
    except zlib.error as error:  # bad header, bad deflate data, CRC-32 or length mismatch
        raise BrokenAggregate(Reason.CORRUPT_ENVELOPE, f"gzip: {error}") from None
    if len(content) > limit:
        raise BrokenAggregate(Reason.ENVELOPE_OVERSIZE, f"inflates past {limit} bytes")
    if not inflater.eof:
        raise BrokenAggregate(Reason.CORRUPT_ENVELOPE, "gzip member is truncated")
    if inflater.unused_data:
        raise BrokenAggregate(
            Reason.CORRUPT_ENVELOPE, f"{len(inflater.unused_data)} bytes after the gzip member"
        )
    if not is_aggregated(content):
        raise BrokenAggregate(Reason.CORRUPT_ENVELOPE, "the envelope does not hold a KPL aggregate")
    return content


def _parse(data: bytes) -> messages_pb2.AggregatedRecord:
    """The aggregate's protobuf message, checked: length, MD5 trailer, protobuf, at least one
    user record, and every table index in range. Raises `BrokenAggregate`."""
    if len(data) < _MIN_AGGREGATE:
        raise BrokenAggregate(Reason.BROKEN_AGGREGATE, f"{len(data)} bytes is too short for an aggregate")
    body, digest = data[len(MAGIC) : -DIGEST_SIZE], data[-DIGEST_SIZE:]
    if hashlib.md5(body).digest() != digest:  # noqa: S324 - the KPL format's checksum, not security
        raise BrokenAggregate(Reason.BAD_AGGREGATE_CHECKSUM, "MD5 trailer does not match the body")
    try:
        message = messages_pb2.AggregatedRecord.FromString(body)
    except DecodeError as error:
        raise BrokenAggregate(Reason.BROKEN_AGGREGATE, f"protobuf: {error}") from None
    if not message.records:
        raise BrokenAggregate(Reason.BROKEN_AGGREGATE, "aggregate holds no user records")
    partition_keys = len(message.partition_key_table)
    hash_keys = len(message.explicit_hash_key_table)
    for index, record in enumerate(message.records):
        if record.partition_key_index >= partition_keys:
            raise BrokenAggregate(
                Reason.BROKEN_AGGREGATE, f"user record {index}: partition key index out of range"
            )
        # an unset optional index reads as 0, so HasField is only needed when 0 is out of range
        if record.explicit_hash_key_index >= hash_keys and record.HasField("explicit_hash_key_index"):
            raise BrokenAggregate(
                Reason.BROKEN_AGGREGATE, f"user record {index}: explicit hash key index out of range"
            )
    return message


def deaggregate(data: bytes, partition_key: str) -> list[UserRecord]:
    """The user records in a Kinesis record's data (compressed or not), in order; raises
    `BrokenAggregate`."""
    data = unwrap(data)
    if not is_aggregated(data):
        return [UserRecord(data, partition_key, None, 0, aggregated=False)]
    message = _parse(data)
    partition_keys = list(message.partition_key_table)
    hash_keys = list(message.explicit_hash_key_table)
    return [
        UserRecord(
            record.data,
            partition_keys[record.partition_key_index],
            hash_keys[record.explicit_hash_key_index] if record.HasField("explicit_hash_key_index") else None,
            index,
            aggregated=True,
        )
        for index, record in enumerate(message.records)
    ]


def payloads(data: bytes) -> list[bytes]:
    """Only the user records' data, in sub-sequence order: the consumers' hot path, with the same
    checks as `deaggregate` but no object per record (a frozen dataclass costs ~0.4 us each).

    Every user record counts on the shard it was read from, whatever its partition key or
    explicit hash key: a foreign producer's aggregate with mixed keys, or a record an on-demand
    stream placed by itself, is never resent elsewhere. A compressed envelope is opened first
    (`unwrap`)."""
    data = unwrap(data)
    if not is_aggregated(data):
        return [data]
    return [record.data for record in _parse(data).records]


def aggregate(records: Sequence[tuple[str, bytes]], explicit_hash_key: str | None = None) -> bytes:
    """One aggregate of (partition key, data) pairs, all with the same explicit hash key.

    This is the plain reference encoder (tests and fixtures); the producer has its own
    size-aware batching on top of the same schema."""
    message = messages_pb2.AggregatedRecord()
    key_index: dict[str, int] = {}
    if explicit_hash_key is not None:
        message.explicit_hash_key_table.append(explicit_hash_key)
    for partition_key, data in records:
        if partition_key not in key_index:
            key_index[partition_key] = len(key_index)
            message.partition_key_table.append(partition_key)
        entry = message.records.add(partition_key_index=key_index[partition_key], data=data)
        if explicit_hash_key is not None:
            entry.explicit_hash_key_index = 0
    body = message.SerializeToString()
    return MAGIC + body + hashlib.md5(body).digest()  # noqa: S324 - the format's checksum
