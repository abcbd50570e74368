"""Kinesis records -> order events: the decoding pipeline every stream consumer shares.

Per Kinesis record: one base64 decode, the compressed envelope opened when there is one (bounded
inflation, CRC-32), strict KPL de-aggregation (one MD5 check), one card-number scan over the
whole (inflated) aggregate; then per user record the size cap and the contract's validation
(`wire.decode_event`, already screened when the aggregate was clean). Every user record ends either
accepted, as the validated event with its raw bytes and position, or refused, with a reason code
and the raw bytes for the quarantine. A broken aggregate or envelope is refused whole, with the
record's bytes as received: its user records cannot be trusted, not even their count.

No network and no boto3 here: the aggregator and the archiver (batch layer) both use it.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Final

from salesstream.core.cards import contains_card_number
from salesstream.core.kpl import BrokenAggregate, is_aggregated, payloads, unwrap
from salesstream.core.limits import MAX_EVENT_BYTES
from salesstream.core.positions import Position
from salesstream.core.reasons import Reason, RejectedEvent
from salesstream.core.windows import to_millis
from salesstream.core.wire import Screened, WireEvent, decode_event, screen

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from salesstream.core.lambda_events import KinesisEventRecord
    from salesstream.core.window_events import KinesisRecord

# The sub-sequence number of a refusal that covers a whole Kinesis record (a broken aggregate).
WHOLE_RECORD: Final = -1


@dataclass(frozen=True, slots=True)
class RecordInfo:
    """One Kinesis record of the batch; its user records share its sequence number."""

    sequence_number: str
    arrival_ms: int
    partition_key: str
    user_records: int  # 0 when the record was refused whole

    @property
    def first(self) -> Position:
        return Position.of(self.sequence_number, 0)

    @property
    def last(self) -> Position:
        return Position.of(self.sequence_number, max(self.user_records - 1, 0))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A user record (or a whole Kinesis record) that must go to the quarantine."""

    record: int  # index of its Kinesis record in the batch
    subsequence: int  # WHOLE_RECORD for a broken aggregate or envelope
    reason: Reason
    detail: str
    raw: bytes  # as received: redact before storing anywhere
    event_id: str | None = None
    field: str | None = None  # JSON path of the field at fault (the card number's), when known


# An accepted user record: (validated event, raw bytes, index of its Kinesis record, sub-sequence).
# A plain tuple: one is made per event on the hot path.
Accepted = tuple[WireEvent, bytes, int, int]


@dataclass(slots=True)
class DecodedBatch:
    records: list[RecordInfo] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.accepted) + len(self.refused)


def decode_records(records: Sequence[KinesisEventRecord | KinesisRecord]) -> DecodedBatch:
    """Decode a batch read from one shard. Every user record counts where it landed, whatever
    its keys: no record is dropped for its placement (a copy on another shard of the same
    lineage is a duplicate for the dedup index, not for the decoder)."""
    batch = DecodedBatch()
    append = batch.accepted.append
    refused = batch.refused
    for index, record in enumerate(records):
        kinesis = record.kinesis
        arrival_ms = to_millis(kinesis.approximateArrivalTimestamp)
        try:
            # inflated here, not only inside payloads(): the card scan below reads the aggregate
            data = unwrap(binascii.a2b_base64(kinesis.data, strict_mode=True))
            users = payloads(data)
        except (binascii.Error, BrokenAggregate) as unreadable:
            refused.append(_whole_record_refusal(index, kinesis.data, unreadable))
            batch.records.append(RecordInfo(kinesis.sequenceNumber, arrival_ms, kinesis.partitionKey, 0))
            continue
        batch.records.append(RecordInfo(kinesis.sequenceNumber, arrival_ms, kinesis.partitionKey, len(users)))
        # one size check, one card scan and one look for escapes over a whole aggregate (its
        # payloads joined by newlines, so protobuf framing bytes never sit against a payload's
        # digits); only when one fails does every user record go through the full screen (which
        # then names the one to refuse)
        screened = screen(users) if is_aggregated(data) else Screened.NONE
        for subsequence, raw in enumerate(users):
            try:
                append((decode_event(raw, screened=screened), raw, index, subsequence))
            except RejectedEvent as rejected:
                refused.append(
                    Refusal(
                        index,
                        subsequence,
                        rejected.reason,
                        rejected.detail,
                        raw,
                        event_id_hint(raw),
                        rejected.field,
                    )
                )
            except Exception as unexpected:  # noqa: BLE001 - a poison record must not block its shard
                # Validation is deterministic: a record that makes it fail in an unforeseen way
                # would fail on every retry and hold the shard (B4). Quarantine it with the error's
                # type (never its message, which may quote the payload) and go on.
                refused.append(
                    Refusal(index, subsequence, Reason.POISON, f"unexpected {type(unexpected).__name__}", raw)
                )
    return batch


def _whole_record_refusal(index: int, data: str, error: binascii.Error | BrokenAggregate) -> Refusal:
    if isinstance(error, BrokenAggregate):
        return Refusal(index, WHOLE_RECORD, error.reason, error.detail, binascii.a2b_base64(data))
    # Lambda always sends base64; if it ever does not, keep the text as it came
    return Refusal(index, WHOLE_RECORD, Reason.NOT_JSON, f"data is not base64: {error}", data.encode())


def event_id_hint(raw: bytes) -> str | None:
    """The event id of a refused payload when it can be read safely: a well-formed identifier
    in a JSON object within the size cap that is not itself a card number."""
    if len(raw) > MAX_EVENT_BYTES:
        return None  # refused by the size cap: never parse it
    # pydantic on the refusal path only: the aggregator starts without it
    from pydantic import ValidationError
    from pydantic_core import from_json

    try:
        # pydantic-core's parser bounds nesting (ValueError); json.loads would raise RecursionError
        # on a deeply nested payload within the size cap, on every retry of its batch
        document = from_json(raw)
        event_id = _identifier().validate_python(document["event_id"], strict=True)
    except (ValueError, TypeError, KeyError, ValidationError):
        return None
    return None if contains_card_number(event_id.encode()) else event_id


@cache
def _identifier() -> TypeAdapter[str]:
    from pydantic import TypeAdapter

    from salesstream.core.contract import Identifier

    return TypeAdapter(Identifier)
