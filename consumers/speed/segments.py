"""The aggregates table: window segments and the running totals they add up to.

Item layout (AGGREGATES_TABLE, single table, pk/sk strings; the keys: layout.py):

| pk                  | sk                                  | what |
|---------------------|-------------------------------------|------|
| `SEGMENT#<shardId>` | `<window start ms:015d>#<first pos>`| one window segment (written once) |
| `SHARD#<shardId>`   | `COUNTERS`                          | the shard's running counters |
| `SHARD#<shardId>`   | `TOTAL#<currency>`                  | the shard's running totals per currency |
| `DAYS#<shardId>`    | `<business day>`                    | the shard's stores' running totals that day |

A segment is persisted once, on the final invocation of its window (or when AWS ended the
window early). Every running total carries a watermark per shard (`wm#<shardId>`, the key of
the last segment applied to it), so replaying any part of the persistence changes nothing:
- the counters and the per-currency totals: a guarded ADD (condition `attribute_not_exists OR
  < segment key`, and `SET` to the segment key);
- a DAYS# item (one per business day the segment holds, however many stores): read (consistent),
  the segment's stores added to its document, written back conditional on the version read
  (`attribute_not_exists(pk)` for a new one). An item whose watermark is already this segment's
  was applied by an earlier attempt and is left alone.
All of them and the segment put (`attribute_not_exists(pk)`) go in one TransactWriteItems when
they fit in 100 items; otherwise in chunks of 100 with the segment put in the last chunk, where
it marks the segment done.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from consumers.common.retry import Backoff, is_transient
from consumers.speed.layout import (
    COUNTERS,
    DAYS_PREFIX,
    SEGMENT_PREFIX,
    SHARD_PREFIX,
    STORE_TOTALS,
    TOTAL_PREFIX,
    VERSION,
    WATERMARK_PREFIX,
    days_key,
    decode_store_totals,
    encode_store_totals,
    store_key,
)
from salesstream.core.aggregation import Segment, Totals
from salesstream.core.windows import rfc3339

TRANSACTION_LIMIT: Final = 100
# Cancellation reasons that say "later": the item is retried with backoff.
_RETRYABLE_REASONS: Final = frozenset(
    {"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict", "RequestLimitExceeded"}
)
_NO_REASON: Final = "None"
_CONDITION_FAILED: Final = "ConditionalCheckFailed"


class PersistenceError(RuntimeError):
    """The segment could not be persisted after the retries; the invocation fails and Lambda
    retries it (a final invocation holds the shard until it succeeds)."""


class SegmentConflict(RuntimeError):
    """The segment's key is taken by other content, or a later segment of the shard was applied
    first: something replayed what it should not have. Loud on purpose: the shard waits and an
    operator looks."""


@dataclass
class Persisted:
    operations: int = 0
    transactions: int = 0
    already_applied: int = 0  # dropped because an earlier attempt applied them
    segment_existed: bool = False


@dataclass
class SegmentStore:
    dynamodb: Any
    table: str
    backoff: Backoff = field(default_factory=Backoff)

    def persist(self, segment: Segment) -> Persisted:
        outcome = Persisted()
        day_puts = []
        for day in sorted(_by_day(segment)):
            put = self.day_put(segment, day, self._read(days_key(segment.shard_id, day)))
            if put is None:
                outcome.already_applied += 1
            else:
                day_puts.append(put)
        operations = [*self.running_total_updates(segment), *day_puts, self.segment_put(segment)]
        outcome.operations = len(operations)
        for start in range(0, len(operations), TRANSACTION_LIMIT):
            self._transact(operations[start : start + TRANSACTION_LIMIT], segment, outcome)
        return outcome

    # --- the operations ---------------------------------------------------------------------

    def running_total_updates(self, segment: Segment) -> list[dict[str, Any]]:
        shard = segment.shard_id
        result = segment.result
        counters = {
            "events": result.events,
            "duplicates": result.duplicates,
            "conflicts": result.conflicts,
            "quarantined": sum(result.quarantined.values()),
            "segments": 1,
            **{f"quarantined_{reason}": count for reason, count in result.quarantined.items()},
        }
        updates = [
            self._guarded_add(
                segment,
                {"pk": SHARD_PREFIX + shard, "sk": COUNTERS},
                counters,
                {
                    "shard_id": shard,
                    "last_segment": segment.key,
                    "last_window_end": rfc3339(segment.window.end_ms),
                },
            )
        ]
        updates += [
            self._guarded_add(
                segment,
                {"pk": SHARD_PREFIX + shard, "sk": TOTAL_PREFIX + currency},
                totals.as_dict(),
                {"shard_id": shard, "currency": currency},
            )
            for currency, totals in result.by_currency.items()
        ]
        return updates

    def day_put(self, segment: Segment, day: str, existing: dict[str, Any] | None) -> dict[str, Any] | None:
        """The shard's DAYS# item of `day` with the segment's stores added to `existing` (the item
        as read, None: not there); None when `existing` already holds this segment."""
        shard = segment.shard_id
        watermark = None if existing is None else existing.get(WATERMARK_PREFIX + shard, {}).get("S")
        if watermark == segment.key:
            return None
        if watermark is not None and watermark > segment.key:
            raise SegmentConflict(
                f"{DAYS_PREFIX}{shard} {day} already holds segment {watermark}, after {segment.key}: "
                "segments were persisted out of order"
            )
        stores = {} if existing is None else decode_store_totals(existing)
        for key, totals in _by_day(segment)[day].items():
            before = stores.get(key, [0, 0, 0, 0])
            stores[key] = [old + new for old, new in zip(before, _amounts(totals), strict=True)]
        version = 0 if existing is None else int(existing[VERSION]["N"])
        item = {
            **days_key(shard, day),
            "shard_id": {"S": shard},
            "business_day": {"S": day},
            "stores": {"N": str(len(stores))},
            STORE_TOTALS: {"B": encode_store_totals(stores)},
            WATERMARK_PREFIX + shard: {"S": segment.key},
            VERSION: {"N": str(version + 1)},
        }
        if existing is not None and "restated" in existing:
            item["restated"] = existing["restated"]  # the repair's audit marker stays
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": item,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if existing is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            # over exactly what was read: a write in between (a repair) makes it read again
            put["ConditionExpression"] = "#version = :read"
            put["ExpressionAttributeNames"] = {"#version": VERSION}
            put["ExpressionAttributeValues"] = {":read": {"N": str(version)}}
        return {"Put": put}

    def _read(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.dynamodb.get_item(
            TableName=self.table, Key=key, ConsistentRead=True
        ).get("Item")
        return item

    def _guarded_add(
        self, segment: Segment, key: dict[str, str], adds: dict[str, int], sets: dict[str, str]
    ) -> dict[str, Any]:
        names = {"#wm": WATERMARK_PREFIX + segment.shard_id}
        values: dict[str, Any] = {":segment": {"S": segment.key}}
        set_clauses = ["#wm = :segment"]
        for number, (name, text) in enumerate(sets.items()):
            names[f"#s{number}"] = name
            values[f":s{number}"] = {"S": text}
            set_clauses.append(f"#s{number} = :s{number}")
        add_clauses = []
        for number, (name, amount) in enumerate(adds.items()):
            names[f"#a{number}"] = name
            values[f":a{number}"] = {"N": str(amount)}
            add_clauses.append(f"#a{number} :a{number}")
        return {
            "Update": {
                "TableName": self.table,
                "Key": {name: {"S": text} for name, text in key.items()},
                "UpdateExpression": f"SET {', '.join(set_clauses)} ADD {', '.join(add_clauses)}",
                # idempotent per item: the shard's watermark moves to this segment's key together
                # with the ADD, and the condition refuses any segment that is not after it
                "ConditionExpression": "attribute_not_exists(#wm) OR #wm < :segment",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def segment_put(self, segment: Segment) -> dict[str, Any]:
        content = segment.content()
        stores = json.dumps(content["stores"], sort_keys=True, separators=(",", ":")).encode()
        days = json.dumps(content["days"], sort_keys=True, separators=(",", ":")).encode()
        lateness = segment.lateness
        item: dict[str, Any] = {
            "pk": {"S": SEGMENT_PREFIX + segment.shard_id},
            "sk": {"S": segment.key},
            "shard_id": {"S": segment.shard_id},
            "window_start": {"S": rfc3339(segment.window.start_ms)},
            "window_end": {"S": rfc3339(segment.window.end_ms)},
            # sequence numbers are strings: up to 56 digits, more than a DynamoDB Number holds
            "first_sequence": {"S": segment.first.sequence_number},
            "first_subsequence": {"N": str(segment.first.subsequence)},
            "last_sequence": {"S": segment.last.sequence_number},
            "last_subsequence": {"N": str(segment.last.subsequence)},
            "arrival_min": {"S": rfc3339(segment.arrival_min_ms)},
            "arrival_max": {"S": rfc3339(segment.arrival_max_ms)},
            "terminated_early": {"BOOL": segment.terminated_early},
            "events": {"N": str(segment.result.events)},
            "duplicates": {"N": str(segment.result.duplicates)},
            "conflicts": {"N": str(segment.result.conflicts)},
            "quarantined": {"M": {reason: {"N": str(n)} for reason, n in segment.result.quarantined.items()}},
            "lateness_ms": {
                "M": {
                    "sampled": {"N": str(lateness.count)},
                    "mean": {"N": str(lateness.mean_ms)},
                    "min": {"N": str(lateness.min_ms)},
                    "max": {"N": str(lateness.max_ms)},
                }
            },
            # per store and currency, compressed JSON: a segment of a busy shard must stay far
            # below DynamoDB's 400 KB item limit
            "stores_zjson": {"B": zlib.compress(stores)},
            # per store, currency and business day (`<store>/<currency>/<day>`), the same way
            "days_zjson": {"B": zlib.compress(days)},
            "digest": {"S": segment.digest()},
        }
        return {
            "Put": {
                "TableName": self.table,
                "Item": item,
                # written once: the key is (shard, window start + first position)
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    # --- the transaction loop ---------------------------------------------------------------

    def _transact(self, operations: list[dict[str, Any]], segment: Segment, outcome: Persisted) -> None:
        pending = operations
        attempt = 0
        while pending:
            outcome.transactions += 1
            try:
                self.dynamodb.transact_write_items(TransactItems=pending)
                return
            except self.dynamodb.exceptions.TransactionCanceledException as cancelled:
                pending, must_wait = self._after_cancellation(pending, cancelled, segment, outcome)
                if not must_wait:
                    continue  # only already-applied items stood in the way: retry the rest now
            except ClientError as error:
                if not is_transient(error):
                    raise
            except BotoCoreError:
                pass  # connection trouble: retried below like throttling
            if attempt + 1 >= self.backoff.attempts:
                raise PersistenceError(
                    f"segment {segment.key} of {segment.shard_id}: {len(pending)} operations still "
                    f"failing after {self.backoff.attempts} attempts"
                )
            self.backoff.pause(attempt)
            attempt += 1

    def _after_cancellation(
        self, pending: list[dict[str, Any]], cancelled: ClientError, segment: Segment, outcome: Persisted
    ) -> tuple[list[dict[str, Any]], bool]:
        """A cancelled transaction applied nothing. Items whose condition failed were applied
        by an earlier attempt: drop them. Retry the others; wait first if any was throttled."""
        reasons = cancelled.response.get("CancellationReasons", [])
        if len(reasons) != len(pending):
            raise PersistenceError(
                f"transaction cancelled without a reason per item: {cancelled}"
            ) from cancelled
        retry: list[dict[str, Any]] = []
        must_wait = False
        for operation, reason in zip(pending, reasons, strict=True):
            code = reason.get("Code", _NO_REASON)
            if code == _NO_REASON:
                retry.append(operation)
            elif code == _CONDITION_FAILED and _is_day_put(operation):
                # written in between: by an earlier attempt (applied), or by a repair (add again)
                item = operation["Put"]["Item"]
                existing = reason.get("Item") or self._read({"pk": item["pk"], "sk": item["sk"]})
                again = self.day_put(segment, item["sk"]["S"], existing)
                if again is None:
                    outcome.already_applied += 1
                else:
                    retry.append(again)
                    must_wait = True  # counts as an attempt: a key that keeps changing is bounded
            elif code == _CONDITION_FAILED:
                self._check_applied(operation, reason.get("Item"), segment)
                outcome.already_applied += 1
                outcome.segment_existed |= "Put" in operation
            elif code in _RETRYABLE_REASONS:
                retry.append(operation)
                must_wait = True
            else:
                raise PersistenceError(
                    f"segment {segment.key}: {code}: {reason.get('Message', '')}"
                ) from cancelled
        return retry, must_wait

    def _check_applied(
        self, operation: dict[str, Any], existing: dict[str, Any] | None, segment: Segment
    ) -> None:
        """A failed condition must mean 'this very segment was applied here', nothing else."""
        if existing is None:
            kind, body = next(iter(operation.items()))
            key = body["Key"] if kind == "Update" else {"pk": body["Item"]["pk"], "sk": body["Item"]["sk"]}
            existing = self._read(key) or {}
        if "Put" in operation:
            digest = existing.get("digest", {}).get("S")
            if digest != segment.digest():
                raise SegmentConflict(
                    f"segment {segment.key} of {segment.shard_id} exists with other content "
                    f"(digest {digest} != {segment.digest()})"
                )
            return
        watermark = existing.get(WATERMARK_PREFIX + segment.shard_id, {}).get("S")
        if watermark != segment.key:
            raise SegmentConflict(
                f"{operation['Update']['Key']} already holds segment {watermark} of {segment.shard_id}, "
                f"after {segment.key}: segments were persisted out of order"
            )


def _by_day(segment: Segment) -> dict[str, dict[str, Totals]]:
    """The segment's totals per business day, then per `<store>/<currency>`."""
    days: dict[str, dict[str, Totals]] = {}
    for (store, day, currency), totals in segment.result.by_store_day.items():
        days.setdefault(day, {})[store_key(store, currency)] = totals
    return days


def _amounts(totals: Totals) -> list[int]:
    """In the order of layout.AMOUNTS."""
    return [totals.orders, totals.refunds, totals.gross_minor, totals.refunds_minor]


def _is_day_put(operation: dict[str, Any]) -> bool:
    return "Put" in operation and str(operation["Put"]["Item"]["pk"]["S"]).startswith(DAYS_PREFIX)
