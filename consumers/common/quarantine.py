"""The quarantine table: one item per refused user record (or whole Kinesis record), with the
reason, where it sat in the stream, and its raw bytes redacted of card numbers.

Item layout (QUARANTINE_TABLE, pk/sk strings):

    pk  = <shardId>
    sk  = <sequence number, zero-padded to 60 digits>#<sub-sequence, 6 digits>   a user record
          <sequence number, zero-padded to 60 digits>#record                      a whole record
    shard_id, sequence_number (string: up to 56 digits), subsequence (number; absent for a whole
    record, which has whole_record = true), reason, detail, partition_key, arrival (RFC 3339) and
    arrival_ms, window_start, window_end, event_id (when it could be read), field (the JSON path
    of the field at fault, e.g. the one holding a suspected card number, when known), raw_bytes (size),
    raw (binary, redacted) or, over 256 KiB, raw_s3_key naming the redacted bytes in ARCHIVE_BUCKET.

The key is the record's position, so writing the same refusal again (a replayed batch) puts the
same item: idempotent. Writes are BatchWriteItem with the unprocessed items retried.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from consumers.common.retry import Backoff, is_transient
from salesstream.core.cards import redact_card_numbers
from salesstream.core.positions import sequence_key
from salesstream.core.records import WHOLE_RECORD, RecordInfo, Refusal
from salesstream.core.windows import Window, rfc3339

# A DynamoDB item holds at most 400 KB; bigger raw bytes (a 1 MiB broken aggregate, a 10k-line
# payload) are stored in S3 and the item names the object.
INLINE_RAW_LIMIT: Final = 256 * 1024
RAW_PREFIX: Final = "quarantine/"
_BATCH_WRITE_LIMIT: Final = 25
_WHOLE_RECORD_SUFFIX: Final = "record"
# In a broken aggregate a card number can sit against protobuf framing bytes that happen to be
# digits, where a Luhn check of the glued run fails: mask every stretch that holds 13+ digits.
_DIGIT_STRETCH = re.compile(rb"[0-9](?:[0-9 -]*[0-9])?")
_MIN_CARD_DIGITS: Final = 13


class _Unprocessed(RuntimeError):
    def __init__(self) -> None:
        super().__init__("still in UnprocessedItems after every retry")


def quarantine_sort_key(sequence_number: str, subsequence: int) -> str:
    suffix = _WHOLE_RECORD_SUFFIX if subsequence == WHOLE_RECORD else f"{subsequence:06d}"
    return f"{sequence_key(sequence_number)}#{suffix}"


def redacted(refusal: Refusal) -> bytes:
    """The raw bytes fit to store: card numbers masked; for a whole (binary) record, every long
    digit stretch masked as well."""
    data = redact_card_numbers(refusal.raw)
    if refusal.subsequence == WHOLE_RECORD:
        data = _DIGIT_STRETCH.sub(_mask_if_long, data)
    return data


def _mask_if_long(match: re.Match[bytes]) -> bytes:
    stretch = match.group()
    return b"#" * len(stretch) if len(stretch.translate(None, b" -")) >= _MIN_CARD_DIGITS else stretch


@dataclass
class Stored:
    """What `Quarantine.store` achieved."""

    failed_records: set[int] = field(default_factory=set)  # Kinesis records with a refusal not stored
    errors: list[str] = field(default_factory=list)  # why, for the log

    def fail(self, refusal: Refusal, error: Exception) -> None:
        self.failed_records.add(refusal.record)
        self.errors.append(f"{type(error).__name__}: {error}")


@dataclass
class Quarantine:
    """Writes refusals to the quarantine table (and oversized raw bytes to S3)."""

    dynamodb: Any
    s3: Any
    table: str
    bucket: str
    backoff: Backoff = field(default_factory=Backoff)

    def store(
        self, shard_id: str, window: Window, records: Sequence[RecordInfo], refusals: Sequence[Refusal]
    ) -> Stored:
        """Store every refusal; the result names the Kinesis records with a refusal that could
        not be stored after the retries."""
        stored = Stored()
        pending: dict[tuple[str, str], tuple[Refusal, dict[str, Any]]] = {}
        for refusal in refusals:
            try:
                item = self._item(shard_id, window, records[refusal.record], refusal)
            except (ClientError, BotoCoreError) as error:  # the raw bytes could not be put in S3
                stored.fail(refusal, error)
                continue
            pending[(item["pk"]["S"], item["sk"]["S"])] = (refusal, item)
        keys = list(pending)
        for start in range(0, len(keys), _BATCH_WRITE_LIMIT):
            self._write({key: pending[key] for key in keys[start : start + _BATCH_WRITE_LIMIT]}, stored)
        return stored

    def _write(self, chunk: dict[tuple[str, str], tuple[Refusal, dict[str, Any]]], stored: Stored) -> None:
        """BatchWriteItem, retrying unprocessed items and transient errors with backoff."""
        error: Exception = _Unprocessed()
        for attempt in range(self.backoff.attempts):
            if attempt:
                self.backoff.pause(attempt - 1)  # before each retry; never after the last attempt
            requests = [{"PutRequest": {"Item": item}} for _, item in chunk.values()]
            try:
                answer = self.dynamodb.batch_write_item(RequestItems={self.table: requests})
            except (ClientError, BotoCoreError) as failure:
                error = failure
                if not is_transient(failure):
                    break
                continue
            unprocessed = answer.get("UnprocessedItems", {}).get(self.table, [])
            left = {
                (r["PutRequest"]["Item"]["pk"]["S"], r["PutRequest"]["Item"]["sk"]["S"]) for r in unprocessed
            }
            chunk = {key: value for key, value in chunk.items() if key in left}
            if not chunk:
                return
            error = _Unprocessed()
        for refusal, _ in chunk.values():
            stored.fail(refusal, error)

    def _item(self, shard_id: str, window: Window, record: RecordInfo, refusal: Refusal) -> dict[str, Any]:
        sort_key = quarantine_sort_key(record.sequence_number, refusal.subsequence)
        raw = redacted(refusal)
        item: dict[str, Any] = {
            # keyed by the record's position: a replayed batch puts the very same item again
            "pk": {"S": shard_id},
            "sk": {"S": sort_key},
            "shard_id": {"S": shard_id},
            "sequence_number": {"S": record.sequence_number},
            "reason": {"S": refusal.reason.value},
            "detail": {"S": refusal.detail or refusal.reason.value},
            "partition_key": {
                "S": redact_card_numbers(record.partition_key.encode()).decode("utf-8", "replace")
            },
            "arrival": {"S": rfc3339(record.arrival_ms)},
            "arrival_ms": {"N": str(record.arrival_ms)},
            "window_start": {"S": rfc3339(window.start_ms)},
            "window_end": {"S": rfc3339(window.end_ms)},
            "raw_bytes": {"N": str(len(refusal.raw))},
        }
        if refusal.subsequence == WHOLE_RECORD:
            item["whole_record"] = {"BOOL": True}
        else:
            item["subsequence"] = {"N": str(refusal.subsequence)}
        if refusal.event_id is not None:
            item["event_id"] = {"S": refusal.event_id}
        if refusal.field is not None:
            item["field"] = {"S": refusal.field}
        if len(raw) <= INLINE_RAW_LIMIT:
            item["raw"] = {"B": raw}
        else:
            key = f"{RAW_PREFIX}{shard_id}/{sort_key}.bin"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=raw)  # keyed by position: idempotent
            item["raw_s3_key"] = {"S": key}
        return item
