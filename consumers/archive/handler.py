"""The archiver's Lambda handler, on the order stream (a mapping of its own, no window) and, with
the orders table on, on the table's stream (a second mapping): it reads the batch, has the
archive layer (consumers/archive/archive.py) put it as one object, and reports (one log line, the
EMF metrics). A failed PUT fails the invocation: Lambda retries, bisects, and after
MaximumRetryAttempts sends the batch's metadata to the on-failure queue, which the
reconciliation reads.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from consumers.archive.archive import Archived, Archiver
from consumers.common.telemetry import log_metrics
from salesstream.core.lambda_events import (
    DynamodbTimeWindowEvent,
    KinesisEvent,
    KinesisEventRecord,
    is_table_stream,
)

logger = Logger()
metrics = Metrics()


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
