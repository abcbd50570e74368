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
from typing import Any, Final

from salesstream.core.lambda_events import DynamodbEventRecord
from salesstream.core.order_items import NotTypedValue, event_bytes
from salesstream.core.reasons import Reason, RejectedEvent
from salesstream.core.records import DecodedBatch, RecordInfo, Refusal, event_id_hint
from salesstream.core.windows import to_millis
from salesstream.core.wire import decode_event

TTL_PRINCIPAL: Final = "dynamodb.amazonaws.com"


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
        arrival_ms = to_millis(change.ApproximateCreationDateTime)
        batch.records.append(RecordInfo(change.SequenceNumber, arrival_ms, key, 1))
        if record.eventName == "REMOVE":
            by_ttl = record.userIdentity is not None and record.userIdentity.principalId == TTL_PRINCIPAL
            if by_ttl:
                decoded.expired += 1
            else:
                decoded.removed += 1
            continue
        if change.NewImage is None:
            batch.refused.append(
                _refused(
                    index, Reason.MISSING_FIELD, "the stream carries no NewImage: use NEW_AND_OLD_IMAGES", b""
                )
            )
            continue
        try:
            raw = event_bytes(change.NewImage)
        except (NotTypedValue, ValueError, AttributeError) as error:
            batch.refused.append(_refused(index, Reason.WRONG_TYPE, f"NewImage: {error}", b""))
            continue
        if record.eventName == "MODIFY":
            if _same_event(change.OldImage, raw):
                decoded.unchanged += 1
            else:
                batch.refused.append(
                    _refused(
                        index, Reason.DUPLICATE_CONFLICT, "the item of a counted event_id was changed", raw
                    )
                )
            continue
        try:
            batch.accepted.append((decode_event(raw), raw, index, 0))
        except RejectedEvent as rejected:
            batch.refused.append(_refused(index, rejected.reason, rejected.detail, raw))
        except Exception as unexpected:  # noqa: BLE001 - a poison record must not block its shard
            # as in the Kinesis decode: the error's type only, never its message (it may quote
            # the payload)
            batch.refused.append(
                _refused(index, Reason.POISON, f"unexpected {type(unexpected).__name__}", raw)
            )
    return decoded


def _same_event(old_image: dict[str, Any] | None, new_raw: bytes) -> bool:
    if old_image is None:
        return False
    try:
        return json.loads(event_bytes(old_image)) == json.loads(new_raw)
    except (NotTypedValue, ValueError, AttributeError):
        return False
