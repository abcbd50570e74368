"""The archiver: a Lambda handler on the order stream (a mapping of its own, no window) that
keeps every record in S3, the batch layer's master dataset, as Kinesis Data Firehose would.

Per invocation: the batch's Kinesis records as received (no de-aggregation, no validation: one
card scan per record's bytes, `screen`), then one PUT of one gzip JSON-lines object (format and
key: salesstream/core/archive.py). The batch layer decodes them with the aggregator's own
pipeline. The key and bytes depend only on the batch, so a retried or replayed invocation writes
the same object again. A failed PUT fails the invocation: Lambda retries, bisects, and after
MaximumRetryAttempts sends the batch's metadata to the on-failure queue, which the
reconciliation reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from consumers.archive.settings import ArchiverSettings
from consumers.common.clients import CLIENT_CONFIG
from consumers.common.shards import StreamShards
from consumers.common.telemetry import log_metrics
from salesstream.core.archive import archive_key, encode_object, screen
from salesstream.core.lambda_events import KinesisEvent, KinesisEventRecord
from salesstream.core.sharding import Shard
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
        archived, body = archive_object(self.shards.get(shard_id), records)
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
    first, last = received[0], received[-1]
    key = archive_key(
        shard.shard_id,
        to_millis(first.approximateArrivalTimestamp),
        first.sequenceNumber,
        last.sequenceNumber,
    )
    body = encode_object(shard, kept)
    return Archived(key, len(kept), masked, len(body)), body


def shard_of(record: KinesisEventRecord) -> str:
    """Lambda's eventID is `<shardId>:<sequenceNumber>`; a batch holds one shard's records."""
    return record.eventID.split(":", 1)[0]


@cache
def archiver() -> Archiver:
    """The process's archiver, built on first use (clearing this cache is a cold start)."""
    return Archiver.from_environment()


@log_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = KinesisEvent.model_validate(event).Records
    if records:
        shard_id = shard_of(records[0])
        archived = archiver().archive(shard_id, records)
        report(shard_id, archived)
    return {"batchItemFailures": []}


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
