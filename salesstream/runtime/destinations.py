"""The on-failure destination: what AWS sends when it gives up on a batch.

As on AWS (kinesis-on-failure-destination) the message is metadata only: which shard, which
sequence range, the arrival times and the batch size, never the records themselves; whoever
reads the queue re-reads the records from the stream while they are retained.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from salesstream.runtime.model import StreamRecord


class FailureCondition(StrEnum):
    RETRY_ATTEMPTS_EXHAUSTED = "RetryAttemptsExhausted"
    RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


def iso_millis(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestContext(_Shape):
    requestId: str
    functionArn: str
    condition: FailureCondition
    approximateInvokeCount: int


class ResponseContext(_Shape):
    statusCode: int = 200
    executedVersion: str = "$LATEST"
    functionError: str | None = None


class KinesisBatchInfo(_Shape):
    shardId: str
    startSequenceNumber: str
    endSequenceNumber: str
    approximateArrivalOfFirstRecord: str
    approximateArrivalOfLastRecord: str
    batchSize: int
    streamArn: str


class OnFailureRecord(_Shape):
    requestContext: RequestContext
    responseContext: ResponseContext | None = None  # absent when the batch was never invoked
    version: str = "1.0"
    timestamp: str
    KinesisBatchInfo: KinesisBatchInfo


def failure_record(
    records: tuple[StreamRecord, ...],
    *,
    condition: FailureCondition,
    function_arn: str,
    shard_id: str,
    stream_arn: str,
    invoke_count: int,
    function_error: str | None,
    now_ms: int,
    from_table: bool = False,
) -> dict[str, Any]:
    """`from_table`: a DynamoDB stream's batch, whose same fields AWS names DDBStreamBatchInfo
    (with-ddb, "Configuring destinations for failed invocations")."""
    first, last = records[0], records[-1]
    record = OnFailureRecord(
        requestContext=RequestContext(
            requestId=str(uuid.uuid4()),
            functionArn=function_arn,
            condition=condition,
            approximateInvokeCount=invoke_count,
        ),
        responseContext=ResponseContext(functionError=function_error) if invoke_count else None,
        timestamp=iso_millis(now_ms),
        KinesisBatchInfo=KinesisBatchInfo(
            shardId=shard_id,
            startSequenceNumber=first.sequence_number,
            endSequenceNumber=last.sequence_number,
            approximateArrivalOfFirstRecord=iso_millis(first.arrival_ms),
            approximateArrivalOfLastRecord=iso_millis(last.arrival_ms),
            batchSize=len(records),
            streamArn=stream_arn,
        ),
    )
    dumped = record.model_dump(mode="json", exclude_none=True)
    if from_table:
        dumped["DDBStreamBatchInfo"] = dumped.pop("KinesisBatchInfo")
    return dumped


class Destination(Protocol):
    def send(self, record: dict[str, Any]) -> None: ...


class SqsDestination:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs, self.queue_url = sqs, queue_url

    def send(self, record: dict[str, Any]) -> None:
        # Not idempotent (standard queue): a retry may deliver the notice twice, as AWS may.
        # The checkpoint is written after this returns, so a crash between repeats, never loses.
        self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(record))


class NoDestination:
    """A mapping without OnFailure: AWS drops the batch; the runtime logs it loudly."""

    def send(self, record: dict[str, Any]) -> None:
        return None
