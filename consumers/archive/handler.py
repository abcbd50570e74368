"""The archiver: a Lambda handler on the order stream (a mapping of its own, no window) that
keeps every record in S3, the batch layer's master dataset, as Kinesis Data Firehose would. With
the orders table on, a second mapping brings it the table's stream (`table_archive_object`).

Per invocation: the batch's Kinesis records as received (no de-aggregation, no validation: one
card scan per record's bytes, `screen`), then one PUT of one gzip JSON-lines object (format and
key: salesstream/core/archive.py). The batch layer decodes them with the aggregator's own
pipeline. The key and bytes depend only on the batch, so a retried or replayed invocation writes
the same object again. A failed PUT fails the invocation: Lambda retries, bisects, and after
MaximumRetryAttempts sends the batch's metadata to the on-failure queue, which the
reconciliation reads.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from consumers.archive.settings import ArchiverSettings
from consumers.common.clients import CLIENT_CONFIG
from consumers.common.shards import StreamShards
from consumers.common.telemetry import log_metrics
from salesstream.core.archive import ArchivedRecord, archive_key, encode_object, screen
from salesstream.core.lambda_events import (
    DynamodbEventRecord,
    DynamodbTimeWindowEvent,
    KinesisEvent,
    KinesisEventRecord,
    is_table_stream,
)
from salesstream.core.sharding import HASH_KEY_MAX, Shard
from salesstream.core.table_records import ChangeKind, read_change
from salesstream.core.windows import to_millis

logger = Logger()
metrics = Metrics()


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


def shard_of(record: KinesisEventRecord) -> str:
    """Lambda's eventID is `<shardId>:<sequenceNumber>`; a batch holds one shard's records."""
    return record.eventID.split(":", 1)[0]


class ShardUnknown(ValueError):
    """A table's stream event that names no shard: the archive is kept per shard."""


def table_shard_of(event: dict[str, Any]) -> str:
    """A DynamoDB Streams record names no shard (its eventID is opaque); only the windowed event
    does (`shardId`), which is why the table's archiver mapping has a tumbling window."""
    shard_id = event.get("shardId")
    if not shard_id:
        raise ShardUnknown(
            "a DynamoDB Streams event without shardId: give the archiver's table mapping a "
            "TumblingWindowInSeconds, so each event names its shard"
        )
    return str(shard_id)


@cache
def archiver() -> Archiver:
    """The process's archiver, built on first use (clearing this cache is a cold start)."""
    return Archiver.from_environment()


@log_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_table_stream(event.get("eventSourceARN") or _first_source(event)):
        return archive_table_event(event)
    records = KinesisEvent.model_validate(event).Records
    if records:
        shard_id = shard_of(records[0])
        archived = archiver().archive(shard_id, records)
        report(shard_id, archived)
    return {"batchItemFailures": []}


def _first_source(event: dict[str, Any]) -> str:
    records = event.get("Records") or [{}]
    return str(records[0].get("eventSourceARN", ""))


def archive_table_event(event: dict[str, Any]) -> dict[str, Any]:
    """The table's windowed event: its records archived at once, whatever the window (the window
    is only how the event names its shard); the state stays empty, and the final invocation of
    a window carries nothing to archive."""
    shard_id = table_shard_of(event)
    records = DynamodbTimeWindowEvent.model_validate(event).Records
    archived = archiver().archive_table(shard_id, records) if records else None
    if archived is None:  # a final invocation, or only changes and removals
        metrics.add_metric(name="ArchivedRecords", unit=MetricUnit.Count, value=0)
    else:
        report(shard_id, archived)
    return {"state": {}, "batchItemFailures": []}


def report(shard_id: str, archived: Archived) -> None:
    """One structured log line and the EMF metrics of the invocation (never a payload)."""
    metrics.add_metric(name="ArchivedRecords", unit=MetricUnit.Count, value=archived.records)
    # a card number in the stream: masked in the archive, quarantined by the aggregator
    metrics.add_metric(name="ArchiveMasked", unit=MetricUnit.Count, value=archived.masked)
    metrics.add_metric(name="ArchiveBytes", unit=MetricUnit.Bytes, value=archived.bytes)
    logger.info(
        "archived",
        extra={
            "shard": shard_id,
            "key": archived.key,
            "records": archived.records,
            "masked": archived.masked,
            "bytes": archived.bytes,
        },
    )
