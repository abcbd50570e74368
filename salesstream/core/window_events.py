"""The Kinesis tumbling-window event as the aggregator reads it on every invocation: msgspec
structs with the fields of `lambda_events.KinesisTimeWindowEvent` the handler uses, so the
handler parses its event without pydantic (a unit test checks that both read every event the
local runtime builds alike). Unknown fields are ignored: AWS may add fields."""

from __future__ import annotations

from typing import Any

import msgspec

from salesstream.core.windows import Window


class KinesisData(msgspec.Struct, frozen=True, gc=False):
    partitionKey: str
    sequenceNumber: str
    data: str  # base64
    approximateArrivalTimestamp: float  # epoch seconds with a millisecond fraction


class KinesisRecord(msgspec.Struct, frozen=True, gc=False):
    kinesis: KinesisData
    eventID: str
    invokeIdentityArn: str
    awsRegion: str
    eventSourceARN: str


class Bounds(msgspec.Struct, frozen=True):
    start: str  # RFC 3339, UTC
    end: str

    def window(self) -> Window:
        return Window.from_event(self.start, self.end)


class KinesisWindowEvent(msgspec.Struct, frozen=True):
    Records: list[KinesisRecord]
    window: Bounds
    shardId: str
    eventSourceARN: str
    isFinalInvokeForWindow: bool
    isWindowTerminatedEarly: bool
    state: dict[str, Any] = msgspec.field(default_factory=dict)  # {} on a window's first invocation


def parse_kinesis_window_event(event: dict[str, Any]) -> KinesisWindowEvent:
    """The event Lambda hands the handler (lax, as pydantic reads it: "true" is a bool)."""
    return msgspec.convert(event, KinesisWindowEvent, strict=False)


def is_table_stream(event_source_arn: str) -> bool:
    """A DynamoDB stream ARN (`arn:aws:dynamodb:...:table/T/stream/LABEL`), not a Kinesis one."""
    return event_source_arn.split(":", 3)[2:3] == ["dynamodb"]
