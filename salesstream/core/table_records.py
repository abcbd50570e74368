"""DynamoDB Streams records of the orders table -> order events, beside the Kinesis decode
(salesstream/core/records.py) and into the same `DecodedBatch`: dedup, quarantine, exactly-once
persistence and reconciliation stay one mechanism for both sources.

One item per order event: the contract's fields as typed attributes (`{"S": ...}`, `{"N": ...}`,
lines a list of maps), `event_id` the key, plus the table's own `expires_at` (TTL), which is not
part of the event. Per stream record, by `eventName`:

- INSERT: the NewImage made plain (table-only attributes dropped) is validated by the contract
  exactly like a wire event (its raw bytes are its compact JSON): accepted, or refused with the
  contract's reason.
- MODIFY: the item of an event id that was counted changed. The same event in both images (only
  the TTL attribute moved, or the same item put again, for which the emulator writes a MODIFY)
  is ignored and counted as `unchanged`. Any other change is a conflict: the new
  image goes to the quarantine as `duplicate_conflict` and the version counted first stands, as
  for a Kinesis resend with another content.
- REMOVE: ignored and counted as `removed`, or `expired` when TTL removed it (userIdentity
  type "Service", principalId `dynamodb.amazonaws.com`: DynamoDB Streams API reference,
  Record): totals already counted stay.

No network and no boto3 here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from salesstream.core.lambda_events import DynamodbEventRecord
from salesstream.core.order_items import NotTypedValue, event_bytes
from salesstream.core.reasons import Reason, RejectedEvent
from salesstream.core.records import DecodedBatch, RecordInfo, Refusal, event_id_hint
from salesstream.core.windows import to_millis
from salesstream.core.wire import decode_event

TTL_PRINCIPAL: Final = "dynamodb.amazonaws.com"


class ChangeKind(StrEnum):
    """What one stream record of the orders table is, by the rules above."""

    INSERTED = "inserted"  # a new order event: the contract judges it
    UNCHANGED = "unchanged"  # MODIFY with the same event in both images
    CONFLICT = "conflict"  # MODIFY of a counted event id to another event
    REMOVED = "removed"  # REMOVE by a client
    EXPIRED = "expired"  # REMOVE by DynamoDB's TTL
    UNREADABLE = "unreadable"  # no NewImage, or one that cannot hold an order event


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    raw: bytes = b""  # the NewImage as the event's compact JSON (INSERTED, CONFLICT)
    reason: Reason = Reason.WRONG_TYPE  # why it is UNREADABLE (the other kinds have none)
    detail: str = ""


def read_change(record: DynamodbEventRecord) -> Change:
    """One stream record by the rules above: the one decode step of this source, shared by the
    aggregator (`decode_table_records`) and the archiver (consumers/archive/handler.py)."""
    change = record.dynamodb
    if record.eventName == "REMOVE":
        by_ttl = record.userIdentity is not None and record.userIdentity.principalId == TTL_PRINCIPAL
        return Change(ChangeKind.EXPIRED if by_ttl else ChangeKind.REMOVED)
    if change.NewImage is None:
        return Change(
            ChangeKind.UNREADABLE,
            reason=Reason.MISSING_FIELD,
            detail="the stream carries no NewImage: use NEW_AND_OLD_IMAGES",
        )
    try:
        raw = event_bytes(change.NewImage)
    except (NotTypedValue, ValueError, AttributeError) as error:
        return Change(ChangeKind.UNREADABLE, detail=f"NewImage: {error}")
    if record.eventName == "MODIFY":
        return Change(ChangeKind.UNCHANGED if _same_event(change.OldImage, raw) else ChangeKind.CONFLICT, raw)
    return Change(ChangeKind.INSERTED, raw)


@dataclass(slots=True)
class TableDecoded:
    batch: DecodedBatch = field(default_factory=DecodedBatch)
    unchanged: int = 0  # MODIFY with the same event in both images
    removed: int = 0  # REMOVE by a client
    expired: int = 0  # REMOVE by DynamoDB's TTL


def _refused(index: int, reason: Reason, detail: str, raw: bytes) -> Refusal:
    return Refusal(index, 0, reason, detail, raw, event_id_hint(raw))


def decode_table_records(records: Sequence[DynamodbEventRecord]) -> TableDecoded:
    decoded = TableDecoded()
    batch = decoded.batch
    for index, record in enumerate(records):
        change = record.dynamodb
        key = change.Keys.get("event_id", {}).get("S", "")
        batch.records.append(
            RecordInfo(change.SequenceNumber, to_millis(change.ApproximateCreationDateTime), key, 1)
        )
        read = read_change(record)
        match read.kind:
            case ChangeKind.EXPIRED:
                decoded.expired += 1
            case ChangeKind.REMOVED:
                decoded.removed += 1
            case ChangeKind.UNCHANGED:
                decoded.unchanged += 1
            case ChangeKind.UNREADABLE:
                batch.refused.append(_refused(index, read.reason, read.detail, b""))
            case ChangeKind.CONFLICT:
                batch.refused.append(
                    _refused(
                        index,
                        Reason.DUPLICATE_CONFLICT,
                        "the item of a counted event_id was changed",
                        read.raw,
                    )
                )
            case ChangeKind.INSERTED:
                _judge(batch, index, read.raw)
    return decoded


def _judge(batch: DecodedBatch, index: int, raw: bytes) -> None:
    try:
        batch.accepted.append((decode_event(raw), raw, index, 0))
    except RejectedEvent as rejected:
        batch.refused.append(_refused(index, rejected.reason, rejected.detail, raw))
    except Exception as unexpected:  # noqa: BLE001 - a poison record must not block its shard
        # as in the Kinesis decode: the error's type only, never its message (it may quote
        # the payload)
        batch.refused.append(_refused(index, Reason.POISON, f"unexpected {type(unexpected).__name__}", raw))


def _same_event(old_image: dict[str, Any] | None, new_raw: bytes) -> bool:
    if old_image is None:
        return False
    try:
        return json.loads(event_bytes(old_image)) == json.loads(new_raw)
    except (NotTypedValue, ValueError, AttributeError):
        return False
