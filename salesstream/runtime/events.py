"""Events in AWS's exact shape, and what a function's response means.

Both sources give the same envelope (window, state, shardId, the two flags); only the records
differ: `kinesis` with base64 data, or `dynamodb` with the item's typed images (with-ddb).

Events have the shape of the pydantic models the handlers parse them with
(salesstream.core.lambda_events): a table's records are built with them; a Kinesis stream's
records and the envelope, on the hot path, as plain dicts that tests keep equal to the models'
dumps over generated records, so the two cannot drift. Responses are read as AWS documents
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
import functools
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from salesstream.core.lambda_events import (
    DynamodbEvent,
    DynamodbEventRecord,
    DynamodbTimeWindowEvent,
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
    WireRecord,
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


def kinesis_event_record(
    sequence_number: str, arrival_ms: int, data_base64: str, partition_key: str, source: Source
) -> dict[str, Any]:
    """A Kinesis record as the event's JSON carries it: KinesisEventRecord's dump, built as a
    plain dict (validating a model per record cost more than the rest of the runtime's work on
    it; a test keeps the two equal)."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence_number,
            "data": data_base64,
            "approximateArrivalTimestamp": arrival_ms / 1000,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{source.shard_id}:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": source.identity_arn,
        "awsRegion": source.region,
        "eventSourceARN": source.stream_arn,
    }


def event_record(raw: RawRecord | WireRecord, source: Source) -> dict[str, Any]:
    data = raw.data_base64 if isinstance(raw, WireRecord) else base64.b64encode(raw.data).decode("ascii")
    return kinesis_event_record(raw.sequence_number, raw.arrival_ms, data, raw.partition_key, source)


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


def stream_record(
    raw: RawRecord | WireRecord | TableChange, source: Source, fetched_at_ms: int
) -> StreamRecord:
    record: dict[str, Any] | DynamodbEventRecord
    if isinstance(raw, TableChange):
        record = table_event_record(raw, source)
        size = len(record.model_dump_json(exclude_none=True))
    else:
        record = event_record(raw, source)
        kinesis = record["kinesis"]
        size = (
            _fixed_json_size(source)
            + len(_compact_json(raw.partition_key))
            + 2 * len(raw.sequence_number)  # in sequenceNumber and in eventID
            + len(kinesis["data"])
            + len(repr(kinesis["approximateArrivalTimestamp"]))
        )
    return StreamRecord(
        sequence_number=raw.sequence_number,
        sequence=int(raw.sequence_number),
        arrival_ms=raw.arrival_ms,
        fetched_at_ms=fetched_at_ms,
        event_record=record,
        size=size + 1,  # as in the event (a comma)
    )


@functools.lru_cache(maxsize=1024)
def _fixed_json_size(source: Source) -> int:
    """Characters of a record's JSON but for its own values: the same for every record of a
    shard, so a record's size is counted without writing its JSON (a test pins it to the
    model's model_dump_json)."""
    blank = kinesis_event_record("", 0, "", "", source)
    return len(_compact_json(blank)) - len('""') - len(repr(0.0))


def _compact_json(value: Any) -> str:
    """JSON as pydantic's model_dump_json writes it: no spaces, non-ASCII left as it is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def build_event(batch: Batch, source: Source, state_json: str | None) -> dict[str, Any]:
    if source.from_table:
        return _table_event(batch, source, state_json)
    # KinesisEvent's or KinesisTimeWindowEvent's dump, built as dicts (a test keeps them
    # equal); fresh copies of the records, as the state: the handler may mutate its event
    records = [_fresh_copy(record.event_record) for record in batch.records]
    if batch.window is None:
        return {"Records": records}
    return {
        "Records": records,
        "window": batch.window.as_event(),
        "state": json.loads(state_json or "{}"),
        "shardId": source.shard_id,
        "eventSourceARN": source.stream_arn,
        "isFinalInvokeForWindow": batch.final,
        "isWindowTerminatedEarly": batch.terminated_early,
    }


def _fresh_copy(record: dict[str, Any] | DynamodbEventRecord) -> dict[str, Any]:
    assert isinstance(record, dict), "a Kinesis stream's record is built as a dict"
    return {**record, "kinesis": {**record["kinesis"]}}  # the values are immutable


def _table_event(batch: Batch, source: Source, state_json: str | None) -> dict[str, Any]:
    # AWS leaves out what a record does not have (OldImage of an INSERT, userIdentity)
    records = [_table_record_json(record.event_record) for record in batch.records]
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


def _table_record_json(record: dict[str, Any] | DynamodbEventRecord) -> dict[str, Any]:
    assert isinstance(record, DynamodbEventRecord), "a table's record is built as its model"
    return record.model_dump(mode="json", exclude_none=True)


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
