"""The archive layer's use case: one batch of the order stream kept in S3 as one object, the
batch layer's master dataset, as Kinesis Data Firehose would keep it.

Per batch: the Kinesis records as received (no de-aggregation, no validation: one card scan per
record's bytes, `screen`), encoded as one gzip JSON-lines object and put at its key (the format
and the key: salesstream/core/archive.py, which the batch layer reads them with). The key and
bytes depend only on the batch, so a retried or replayed invocation writes the same object
again. A batch of the orders table's stream keeps its new items (`table_archive_object`). What
Lambda hands in and gets back is consumers/archive/handler.py's.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

import boto3

from consumers.archive.settings import ArchiverSettings
from consumers.common.clients import CLIENT_CONFIG
from consumers.common.shards import StreamShards
from salesstream.core.archive import ArchivedRecord, archive_key, encode_object, screen
from salesstream.core.lambda_events import DynamodbEventRecord, KinesisEventRecord
from salesstream.core.sharding import HASH_KEY_MAX, Shard
from salesstream.core.table_records import ChangeKind, read_change
from salesstream.core.windows import to_millis


@dataclass(frozen=True)
class Archived:
    key: str
    records: int
    masked: int  # records whose card numbers were masked (no producer of ours sends one)
    bytes: int


@dataclass
class Archiver:
    """What one process keeps between invocations."""

    s3: Any
    bucket: str
    shards: StreamShards

    @classmethod
    def from_environment(cls) -> Archiver:
        settings = ArchiverSettings()  # every field comes from the environment
        session = boto3.session.Session()
        s3, kinesis = (session.client(name, config=CLIENT_CONFIG) for name in ("s3", "kinesis"))
        return cls(s3, settings.archive_bucket, StreamShards(kinesis, settings.stream_name))

    def archive(self, shard_id: str, records: list[KinesisEventRecord]) -> Archived:
        return self._put(*archive_object(self.shards.get(shard_id), records))

    def archive_table(self, shard_id: str, records: list[DynamodbEventRecord]) -> Archived | None:
        made = table_archive_object(shard_id, records)
        return None if made is None else self._put(*made)

    def _put(self, archived: Archived, body: bytes) -> Archived:
        # keyed by the batch's first and last sequence number: a replay puts the same key and bytes
        self.s3.put_object(Bucket=self.bucket, Key=archived.key, Body=body, ContentEncoding="gzip")
        return archived


def archive_object(shard: Shard, records: list[KinesisEventRecord]) -> tuple[Archived, bytes]:
    """A batch's archive object, key and bytes (no I/O: load_tests/bench_archiver.py times it)."""
    received = [record.kinesis for record in records]
    kept = [screen(k.sequenceNumber, k.approximateArrivalTimestamp, k.partitionKey, k.data) for k in received]
    masked = sum(
        1
        for k, r in zip(kept, received, strict=True)
        if (k.data, k.partition_key) != (r.data, r.partitionKey)
    )
    return _object(shard, kept, masked)


def _object(shard: Shard, kept: list[ArchivedRecord], masked: int) -> tuple[Archived, bytes]:
    first, last = kept[0], kept[-1]
    key = archive_key(shard.shard_id, to_millis(first.arrival), first.sequence_number, last.sequence_number)
    body = encode_object(shard, kept)
    return Archived(key, len(kept), masked, len(body)), body


# what the archive keeps of the table's stream: new items, and images that cannot hold an order
# event (kept as they came, typed, so the batch layer refuses them as the aggregator did)
_ARCHIVED_AS_IS: Final = frozenset({ChangeKind.INSERTED, ChangeKind.UNREADABLE})


def table_archive_object(shard_id: str, records: list[DynamodbEventRecord]) -> tuple[Archived, bytes] | None:
    """A batch of the orders table's stream in the archive's format (None when it holds no new
    item). The one decode step of the table (salesstream/core/table_records.py `read_change`)
    picks the records: a new item becomes one record whose bytes are its event's compact JSON,
    the bytes the aggregator validated, so the batch layer judges them with the same contract.
    A change or a removal is no event: the speed layer counts none of them, and archived as
    events, the batch layer's rules for Kinesis resends would judge them otherwise."""
    kept: list[ArchivedRecord] = []
    masked = 0
    for record in records:
        change = read_change(record)
        if change.kind not in _ARCHIVED_AS_IS:
            continue
        raw = change.raw if change.kind is ChangeKind.INSERTED else _typed_image(record)
        data = binascii.b2a_base64(raw, newline=False).decode()
        stream_record = record.dynamodb
        event_id = stream_record.Keys.get("event_id", {}).get("S", "")
        # the item's key stands for Kinesis's partition key; the creation time (whole seconds) is
        # the arrival the aggregator's windows used
        kept.append(
            screen(stream_record.SequenceNumber, stream_record.ApproximateCreationDateTime, event_id, data)
        )
        masked += kept[-1].data != data
    if not kept:
        return None
    # a table's shard has no hash key range: the header carries the whole range
    return _object(Shard(shard_id, 0, HASH_KEY_MAX), kept, masked)


def _typed_image(record: DynamodbEventRecord) -> bytes:
    return json.dumps(record.dynamodb.NewImage or {}, separators=(",", ":")).encode()
