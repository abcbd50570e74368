"""Order events into the orders table, as an integration writes them: one item per event (the
contract's fields as typed attributes, salesstream.core.order_items), the event id as the key,
`batch_write_item` in groups of 25 with UnprocessedItems retried.

An event the contract refuses is counted by reason and never written; a group still not written
after the retries raises TableWriteFailed (never a silent drop). Writing the same event again
is harmless: the item is the same, and the aggregator counts an event id once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from consumers.common.retry import Backoff, is_transient
from producer.result import StoreTally
from salesstream.core.order_items import order_item
from salesstream.core.reasons import RejectedEvent
from salesstream.core.wire import WireEvent, decode_event

BATCH_WRITE_LIMIT: Final = 25  # DynamoDB's maximum per BatchWriteItem
DEFAULT_TTL_SECONDS: Final = 30 * 86_400  # well past the dedup horizon and the batch layer's runs


class TableWriteFailed(RuntimeError):
    """Items still unwritten after every retry."""


@dataclass
class TableWriteResult:
    table: str
    written: int = 0  # items put (an event written again counts again)
    rejected: dict[str, int] = field(default_factory=dict)
    retries: int = 0  # batch_write_item calls made again for unprocessed items or throttling
    # what was written per (store, currency), once per event id: the producer's tally's shape
    tally_by_store: dict[tuple[str, str], StoreTally] = field(default_factory=dict)

    @property
    def tally(self) -> list[StoreTally]:
        return [self.tally_by_store[key] for key in sorted(self.tally_by_store)]

    @property
    def sent(self) -> int:
        """Events written, once per event id (as the producer's `sent`)."""
        return sum(row.orders + row.refunds for row in self.tally_by_store.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "written": self.written,
            "sent": self.sent,
            "rejected": self.rejected,
            "retries": self.retries,
            "tally": [row.model_dump() for row in self.tally],
        }


class TableWriter:
    def __init__(
        self,
        dynamodb: Any,
        table: str,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        now: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        self._dynamodb, self._table, self._ttl, self._now = dynamodb, table, ttl_seconds, now
        self._backoff = backoff or Backoff()
        self.result = TableWriteResult(table)
        self._counted: set[str] = set()  # the tally counts an event id once, as the aggregator

    def submit_many(self, raws: list[bytes]) -> list[tuple[int, RejectedEvent]]:
        """Validate and write the events; returns the refused ones by index in `raws`."""
        refused: list[tuple[int, RejectedEvent]] = []
        pending: dict[str, tuple[WireEvent, dict[str, Any]]] = {}  # event id -> (event, item)
        expires_at = int(self._now()) + self._ttl
        for index, raw in enumerate(raws):
            try:
                event = decode_event(raw)  # the contract's verdict, as the aggregator judges it
            except RejectedEvent as rejection:
                refused.append((index, rejection))
                reason = rejection.reason.value
                self.result.rejected[reason] = self.result.rejected.get(reason, 0) + 1
                continue
            # one call may not name a key twice: a repeated event id goes into the next one
            if event.event_id in pending or len(pending) == BATCH_WRITE_LIMIT:
                self._write(pending)
                pending = {}
            pending[event.event_id] = (event, order_item(json.loads(raw), expires_at=expires_at))
        if pending:
            self._write(pending)
        return refused

    def _write(self, pending: dict[str, tuple[WireEvent, dict[str, Any]]]) -> None:
        left = dict(pending)
        error: Exception | None = None
        for attempt in range(self._backoff.attempts):
            if attempt:
                self.result.retries += 1
                self._backoff.pause(attempt - 1)
            requests = [{"PutRequest": {"Item": item}} for _, item in left.values()]
            try:
                answer = self._dynamodb.batch_write_item(RequestItems={self._table: requests})
            except (ClientError, BotoCoreError) as failure:
                if not is_transient(failure):
                    raise
                error = failure
                continue
            unprocessed = {
                r["PutRequest"]["Item"]["event_id"]["S"]
                for r in answer.get("UnprocessedItems", {}).get(self._table, [])
            }
            for event_id in set(left) - unprocessed:
                self._count(left.pop(event_id)[0])
            if not left:
                return
            error = None
        raise TableWriteFailed(
            f"{len(left)} item(s) not written to {self._table} after {self._backoff.attempts} attempts"
            + (f": {error}" if error else " (UnprocessedItems each time)")
        )

    def _count(self, event: WireEvent) -> None:
        self.result.written += 1
        if event.event_id in self._counted:
            return
        self._counted.add(event.event_id)
        key = (event.store_id, event.currency)
        row = self.result.tally_by_store.setdefault(key, StoreTally(store_id=key[0], currency=key[1]))
        if event.is_refund:
            row.refunds += 1
            row.refunds_minor += event.total_minor
        else:
            row.orders += 1
            row.gross_minor += event.total_minor
