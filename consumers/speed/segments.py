"""The aggregates table: window segments and the running totals they add up to.

Item layout (AGGREGATES_TABLE, single table, pk/sk strings; the keys: layout.py):

| pk                  | sk                                  | what |
|---------------------|-------------------------------------|------|
| `SEGMENT#<shardId>` | `<window start ms:015d>#<first pos>`| one window segment (written once) |
| `SHARD#<shardId>`   | `COUNTERS`                          | the shard's running counters |
| `SHARD#<shardId>`   | `TOTAL#<currency>`                  | the shard's running totals per currency |
| `STORE#<storeId>`   | `DAY#<business day>#<currency>`     | a store's running totals per business day |

A segment is persisted once, on the final invocation of its window (or when AWS ended the
window early). Its running-total updates ADD orders, refunds, gross_minor, refunds_minor and
net_minor, and each is guarded by a watermark per shard on the item it changes
(`wm#<shardId>`: condition `attribute_not_exists OR < segment key`, and `SET` to the segment
key), so replaying any part of the persistence changes nothing. All updates and the segment put
(`attribute_not_exists(pk)`) go in one TransactWriteItems when they fit in 100 items; otherwise
in chunks of 100 with the segment put in the last chunk, where it marks the segment done.
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
    DAY_PREFIX,
    SEGMENT_PREFIX,
    SHARD_PREFIX,
    STORE_PREFIX,
    TOTAL_PREFIX,
    WATERMARK_PREFIX,
)
from salesstream.core.aggregation import Segment
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
        operations = [*self.running_total_updates(segment), self.segment_put(segment)]
        outcome = Persisted(operations=len(operations))
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
        updates += [
            self._guarded_add(
                segment,
                {"pk": STORE_PREFIX + store, "sk": f"{DAY_PREFIX}{day}#{currency}"},
                totals.as_dict(),
                {"store_id": store, "business_day": day, "currency": currency},
            )
            for (store, day, currency), totals in result.by_store_day.items()
        ]
        return updates

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
            existing = self.dynamodb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get(
                "Item", {}
            )
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
