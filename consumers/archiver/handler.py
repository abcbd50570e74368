"""The archiver: a Lambda handler on the order stream (a mapping of its own, no window) that
keeps every accepted event in S3, the batch layer's master dataset.

Per invocation: decode the batch with the pipeline the aggregator uses (strict de-aggregation,
card screen, contract, the KCL rule for misplaced user records), then one PUT of one gzip
JSON-lines object (format and key: salesstream/core/archive.py). Refused user records are not
archived (the aggregator quarantines them, with their reason); they are counted in a metric.
The key and bytes depend only on the batch, so a retried or replayed invocation writes the
same object again. A failed PUT fails the invocation: Lambda retries, bisects, and after
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

from consumers.records import DecodedBatch, decode_records, event_id_hint
from consumers.settings import ArchiverSettings
from consumers.shards import StreamShards
from consumers.telemetry import log_metrics
from salesstream.clients import CLIENT_CONFIG
from salesstream.core.archive import archive_key, encode_object, event_line, misplaced_line
from salesstream.core.kpl import payloads
from salesstream.core.lambda_events import KinesisEvent, KinesisEventRecord
from salesstream.core.sharding import Shard

logger = Logger()
metrics = Metrics()


@dataclass(frozen=True)
class Archived:
    key: str
    events: int
    refused: int
    misplaced: int
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
        # keyed by the batch's first and last position: a replay puts the same key and bytes.
        # Written even when nothing was accepted, so the archive shows how far the shard was read.
        self.s3.put_object(Bucket=self.bucket, Key=archived.key, Body=body, ContentEncoding="gzip")
        return archived


def archive_object(shard: Shard, records: list[KinesisEventRecord]) -> tuple[Archived, bytes]:
    """A batch's archive object, key and bytes (no I/O: load_tests/bench_archiver.py times it)."""
    batch = decode_records(records, shard)
    lines = archive_lines(shard.shard_id, records, batch)
    first, last = batch.records[0], batch.records[-1]
    key = archive_key(shard.shard_id, first.arrival_ms, first.first, last.last)
    body = encode_object(lines)
    return Archived(key, len(batch.accepted), len(batch.refused), len(batch.misplaced), len(body)), body


def archive_lines(shard_id: str, records: list[KinesisEventRecord], batch: DecodedBatch) -> list[bytes]:
    """The object's lines in stream order: accepted events and misplaced markers."""
    infos = batch.records
    positioned: list[tuple[int, int, bytes]] = [
        (
            record,
            subsequence,
            event_line(shard_id, infos[record].sequence_number, subsequence, infos[record].arrival_ms, raw),
        )
        for _, raw, record, subsequence in batch.accepted
    ]
    for record, subsequence in batch.misplaced:
        # rare (a producer with a stale shard map after a reshard): decode that record once more
        raw = payloads(records[record].kinesis.raw_data())[subsequence]
        info = infos[record]
        event_id = None if raw is None else event_id_hint(raw)
        marker = misplaced_line(shard_id, info.sequence_number, subsequence, info.arrival_ms, event_id)
        positioned.append((record, subsequence, marker))
    return [line for _, _, line in sorted(positioned, key=lambda item: item[:2])]


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
        report(shard_id, len(records), archived)
    return {"batchItemFailures": []}


def report(shard_id: str, records: int, archived: Archived) -> None:
    """One structured log line and the EMF metrics of the invocation (never a payload)."""
    metrics.add_metric(name="ArchivedEvents", unit=MetricUnit.Count, value=archived.events)
    # refused user records are not archived: the aggregator quarantines them with their reason
    metrics.add_metric(name="ArchiveRefused", unit=MetricUnit.Count, value=archived.refused)
    metrics.add_metric(name="ArchiveMisplaced", unit=MetricUnit.Count, value=archived.misplaced)
    metrics.add_metric(name="ArchiveBytes", unit=MetricUnit.Bytes, value=archived.bytes)
    logger.info(
        "archived",
        extra={
            "shard": shard_id,
            "records": records,
            "key": archived.key,
            "events": archived.events,
            "refused": archived.refused,
            "misplaced": archived.misplaced,
            "bytes": archived.bytes,
        },
    )
