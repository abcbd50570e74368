"""Typed models of the Lambda events for Kinesis and DynamoDB Streams, with the tumbling-window
fields.

Shapes as documented in the AWS Lambda developer guide (with-kinesis, services-kinesis-windows,
with-ddb, services-ddb-windows)
and the AWS event libraries (aws-lambda-go `KinesisEvent` / `TimeWindowEventResponse`). The local
runtime builds its events with these models and the handlers parse them with the same models,
so the two cannot drift. Powertools' Kinesis models have no tumbling-window fields.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# re-exported: defined beside the aggregator's own event structs, which need no pydantic
from salesstream.core.window_events import is_table_stream as is_table_stream
from salesstream.core.windows import Window


class _AwsShape(BaseModel):
    # AWS may add fields; a handler must not break when it does.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class KinesisPayload(_AwsShape):
    kinesisSchemaVersion: str = "1.0"
    partitionKey: str
    sequenceNumber: str
    data: str  # base64
    approximateArrivalTimestamp: float  # epoch seconds with a millisecond fraction

    def raw_data(self) -> bytes:
        return base64.b64decode(self.data, validate=True)


class KinesisEventRecord(_AwsShape):
    kinesis: KinesisPayload
    eventSource: Literal["aws:kinesis"] = "aws:kinesis"
    eventVersion: str = "1.0"
    eventID: str  # "<shardId>:<sequenceNumber>"
    eventName: str = "aws:kinesis:record"
    invokeIdentityArn: str
    awsRegion: str
    eventSourceARN: str


class KinesisEvent(_AwsShape):
    """The event of a mapping without a window."""

    Records: list[KinesisEventRecord]


class WindowBounds(_AwsShape):
    start: str  # RFC 3339, UTC
    end: str

    def window(self) -> Window:
        return Window.from_event(self.start, self.end)


class KinesisTimeWindowEvent(KinesisEvent):
    """The event of a mapping with TumblingWindowInSeconds > 0."""

    window: WindowBounds
    state: dict[str, Any] = Field(default_factory=dict)  # {} on a window's first invocation
    shardId: str
    eventSourceARN: str
    isFinalInvokeForWindow: bool
    isWindowTerminatedEarly: bool


class StreamRecordPayload(_AwsShape):
    """The `dynamodb` object of a DynamoDB Streams record: typed attribute values ({"S": ...})."""

    ApproximateCreationDateTime: float  # epoch seconds (whole seconds on AWS), not milliseconds
    Keys: dict[str, Any]
    NewImage: dict[str, Any] | None = None
    OldImage: dict[str, Any] | None = None
    SequenceNumber: str
    SizeBytes: int
    StreamViewType: str


class UserIdentity(_AwsShape):
    """Present on removals by DynamoDB itself: TTL expiry (principalId dynamodb.amazonaws.com)."""

    type: str
    principalId: str


class DynamodbEventRecord(_AwsShape):
    eventID: str
    eventName: Literal["INSERT", "MODIFY", "REMOVE"]
    eventVersion: str = "1.1"
    eventSource: Literal["aws:dynamodb"] = "aws:dynamodb"
    awsRegion: str
    dynamodb: StreamRecordPayload
    eventSourceARN: str  # the table's stream ARN
    userIdentity: UserIdentity | None = None


class DynamodbTimeWindowEvent(_AwsShape):
    """The event of a DynamoDB Streams mapping with TumblingWindowInSeconds > 0."""

    Records: list[DynamodbEventRecord]
    window: WindowBounds
    state: dict[str, Any] = Field(default_factory=dict)
    shardId: str
    eventSourceARN: str
    isFinalInvokeForWindow: bool
    isWindowTerminatedEarly: bool


class DynamodbEvent(_AwsShape):
    """The event of a DynamoDB Streams mapping without a window."""

    Records: list[DynamodbEventRecord]


class BatchItemFailure(_AwsShape):
    itemIdentifier: str  # the sequence number of the first record to retry (either source)


class StreamsEventResponse(_AwsShape):
    """The response of a ReportBatchItemFailures function; an empty list = full success."""

    batchItemFailures: list[BatchItemFailure] = Field(default_factory=list)


class TimeWindowEventResponse(StreamsEventResponse):
    """A windowed function's response. Without `state` AWS counts the invocation as failed."""

    state: dict[str, Any]
