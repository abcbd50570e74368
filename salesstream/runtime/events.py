"""Events in AWS's exact shape, and what a function's response means.

Both sources give the same envelope (window, state, shardId, the two flags); only the records
differ: `kinesis` with base64 data, or `dynamodb` with the item's typed images (with-ddb).

Events are built with the same pydantic models the handlers parse them with
(salesstream.core.lambda_events), so the two cannot drift. Responses are read as AWS documents
(kinesis-batchfailurereporting, services-kinesis-windows):
- a windowed function must return a `state` object; without it the invocation failed;
- with ReportBatchItemFailures, an absent, null or empty `batchItemFailures` is full success;
  otherwise the lowest failed sequence number is where the batch is retried from, and an item
  that is malformed (no `itemIdentifier`, null, empty) or names no record of the batch fails the
  whole batch; without ReportBatchItemFailures the list is ignored;
- the response goes through JSON as on Lambda: what cannot be serialised is a failure.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from salesstream.core.lambda_events import (
    DynamodbEvent,
    DynamodbEventRecord,
    DynamodbTimeWindowEvent,
    KinesisEvent,
    KinesisEventRecord,
    KinesisPayload,
    KinesisTimeWindowEvent,
    StreamsEventResponse,
    TimeWindowEventResponse,
    WindowBounds,
)
from salesstream.runtime.model import (
    Batch,
    Failed,
    FailureKind,
    Outcome,
    PartlyFailed,
    RawRecord,
    StreamRecord,
    Succeeded,
    TableChange,
)

# The JSON of an event around its records, generously: window, state key, ARNs, flags.
EVENT_ENVELOPE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Source:
    """Where a mapping's records come from, as the event names it."""

    shard_id: str
    stream_arn: str
    region: str
    identity_arn: str
    from_table: bool = False  # a DynamoDB table's stream, not a Kinesis stream


def event_record(raw: RawRecord, source: Source) -> KinesisEventRecord:
    return KinesisEventRecord(
        kinesis=KinesisPayload(
            partitionKey=raw.partition_key,
            sequenceNumber=raw.sequence_number,
            data=base64.b64encode(raw.data).decode("ascii"),
            approximateArrivalTimestamp=raw.arrival_ms / 1000,
        ),
        eventID=f"{source.shard_id}:{raw.sequence_number}",
        invokeIdentityArn=source.identity_arn,
        awsRegion=source.region,
        eventSourceARN=source.stream_arn,
    )


def table_event_record(change: TableChange, source: Source) -> DynamodbEventRecord:
    """The record as Lambda passes it: ApproximateCreationDateTime in epoch seconds, the stream's
    ARN and region added (with-ddb, "Example event")."""
    record = change.record
    payload = {
        **record["dynamodb"],
        "ApproximateCreationDateTime": change.arrival_ms / 1000,
    }
    return DynamodbEventRecord.model_validate(
        {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": source.region,
            "dynamodb": payload,
            "eventSourceARN": source.stream_arn,
            **({"userIdentity": record["userIdentity"]} if record.get("userIdentity") else {}),
        }
    )


def stream_record(raw: RawRecord | TableChange, source: Source, fetched_at_ms: int) -> StreamRecord:
    record = table_event_record(raw, source) if isinstance(raw, TableChange) else event_record(raw, source)
    return StreamRecord(
        sequence=int(raw.sequence_number),
        arrival_ms=raw.arrival_ms,
        fetched_at_ms=fetched_at_ms,
        event_record=record,
        size=len(record.model_dump_json(exclude_none=True)) + 1,  # as in the event (a comma)
    )


def build_event(batch: Batch, source: Source, state_json: str | None) -> dict[str, Any]:
    if source.from_table:
        return _table_event(batch, source, state_json)
    records = [record.event_record for record in batch.records]
    if batch.window is None:
        return KinesisEvent(Records=records).model_dump(mode="json")
    return KinesisTimeWindowEvent(
        Records=records,
        window=WindowBounds(**batch.window.as_event()),
        state=json.loads(state_json or "{}"),  # a fresh copy: the handler may mutate it
        shardId=source.shard_id,
        eventSourceARN=source.stream_arn,
        isFinalInvokeForWindow=batch.final,
        isWindowTerminatedEarly=batch.terminated_early,
    ).model_dump(mode="json")


def _table_event(batch: Batch, source: Source, state_json: str | None) -> dict[str, Any]:
    # AWS leaves out what a record does not have (OldImage of an INSERT, userIdentity)
    records = [record.event_record.model_dump(mode="json", exclude_none=True) for record in batch.records]
    if batch.window is None:
        event = DynamodbEvent(Records=[]).model_dump(mode="json")
    else:
        event = DynamodbTimeWindowEvent(
            Records=[],
            window=WindowBounds(**batch.window.as_event()),
            state=json.loads(state_json or "{}"),
            shardId=source.shard_id,
            eventSourceARN=source.stream_arn,
            isFinalInvokeForWindow=batch.final,
            isWindowTerminatedEarly=batch.terminated_early,
        ).model_dump(mode="json")
    event["Records"] = records
    return event


def _as_json(value: Any) -> Any:
    """The response as Lambda hands it back: serialised and parsed again."""
    return json.loads(json.dumps(value, allow_nan=False))


def interpret(response: Any, batch: Batch, *, windowed: bool, report_batch_item_failures: bool) -> Outcome:
    """What a handler's return value means for the batch it was given."""
    try:
        response = _as_json(response)
    except (TypeError, ValueError) as error:
        return Failed(FailureKind.BAD_RESPONSE, f"the response is not JSON: {error}")
    state: dict[str, Any] | None = None
    if windowed:
        if not isinstance(response, dict) or not isinstance(response.get("state"), dict):
            return Failed(FailureKind.MISSING_STATE, "a windowed function must return a `state` object")
        state = response["state"]
    if not report_batch_item_failures or response is None:
        return Succeeded(state)
    if not isinstance(response, dict):
        return Failed(FailureKind.BAD_RESPONSE, f"the response is a {type(response).__name__}, not an object")
    if not response.get("batchItemFailures"):
        return Succeeded(state)
    model = TimeWindowEventResponse if windowed else StreamsEventResponse
    try:
        failures = model.model_validate(response).batchItemFailures
    except ValidationError as error:
        return Failed(FailureKind.BAD_RESPONSE, f"malformed batchItemFailures: {error.errors()[0]['msg']}")
    index = {record.sequence_number: i for i, record in enumerate(batch.records)}
    unknown = [f.itemIdentifier for f in failures if f.itemIdentifier not in index]
    if unknown:
        return Failed(
            FailureKind.BAD_RESPONSE, f"batchItemFailures names no record of the batch: {unknown[0]}"
        )
    return PartlyFailed(state, min(index[f.itemIdentifier] for f in failures))
