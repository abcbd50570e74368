"""Builders for the aggregator's tests: order events, KPL aggregates, and tumbling-window Lambda
events made with the same pydantic models the handler parses (salesstream/core/lambda_events.py)."""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from salesstream.core.contract import OrderEvent, new_order
from salesstream.core.kpl import aggregate
from salesstream.core.lambda_events import (
    KinesisEventRecord,
    KinesisPayload,
    KinesisTimeWindowEvent,
    WindowBounds,
)
from salesstream.core.windows import Window

ACCOUNT = "123456789012"
STREAM_ARN = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/orders"
SHARD = "shardId-000000000000"
# 2026-11-23T10:00:00Z: every window in these tests is aligned to it
T0_MS = 1_795_428_000_000
CET = timezone(timedelta(hours=1))
_ids = itertools.count(1)


def order(
    store: str = "store-1",
    amount: int = 1000,
    *,
    event_id: str | None = None,
    refund: bool = False,
    currency: str = "EUR",
    day: int = 0,
    quantity: int = 1,
) -> OrderEvent:
    """An order of `amount` minor units (quantity x unit price), on business day T0 + `day`."""
    number = next(_ids)
    return new_order(
        event_id=event_id or f"evt-{number:08d}",
        store_id=store,
        terminal_id="till-1",
        order_id=f"ord-{number}",
        occurred_at=datetime.fromtimestamp(T0_MS / 1000, tz=CET) + timedelta(days=day),
        currency=currency,
        lines=[("SKU-1", quantity, amount // quantity)],
        refund=refund,
    )


def kpl(*payloads: bytes | OrderEvent, partition_key: str = "store-1") -> bytes:
    """One KPL aggregate holding the payloads in order."""
    return aggregate(
        [(partition_key, p.to_json_bytes() if isinstance(p, OrderEvent) else p) for p in payloads],
        explicit_hash_key="1",
    )


@dataclass
class Record:
    """One Kinesis record: its data (an event, raw bytes or a KPL aggregate), sequence and arrival."""

    data: bytes
    sequence: int
    arrival_ms: int
    partition_key: str = "store-1"

    @classmethod
    def of(cls, data: bytes | OrderEvent, sequence: int, arrival_ms: int) -> Record:
        return cls(data.to_json_bytes() if isinstance(data, OrderEvent) else data, sequence, arrival_ms)

    def model(self, shard: str = SHARD) -> KinesisEventRecord:
        return KinesisEventRecord(
            kinesis=KinesisPayload(
                partitionKey=self.partition_key,
                sequenceNumber=str(self.sequence),
                data=base64.b64encode(self.data).decode(),
                approximateArrivalTimestamp=self.arrival_ms / 1000,
            ),
            eventID=f"{shard}:{self.sequence}",
            invokeIdentityArn=f"arn:aws:iam::{ACCOUNT}:role/aggregator",
            awsRegion="us-east-1",
            eventSourceARN=STREAM_ARN,
        )


@dataclass
class Shard:
    """Hands out increasing sequence numbers and arrival times, as a Kinesis shard does."""

    shard_id: str = SHARD
    window_seconds: int = 60
    next_sequence: int = 100
    clock_ms: int = T0_MS + 1_000
    records: list[Record] = field(default_factory=list)

    def put(self, data: bytes | OrderEvent, *, after_ms: int = 10) -> Record:
        self.clock_ms += after_ms
        record = Record.of(data, self.next_sequence, self.clock_ms)
        self.next_sequence += 1
        self.records.append(record)
        return record

    def window_of(self, record: Record) -> Window:
        return Window.containing(record.arrival_ms, self.window_seconds)

    def event(
        self,
        records: list[Record],
        state: dict[str, Any] | None = None,
        *,
        window: Window | None = None,
        final: bool = False,
        terminated_early: bool = False,
    ) -> dict[str, Any]:
        """The tumbling-window event Lambda sends for these records."""
        if window is None:
            window = (
                self.window_of(records[0])
                if records
                else Window.containing(self.clock_ms, self.window_seconds)
            )
        return KinesisTimeWindowEvent(
            Records=[record.model(self.shard_id) for record in records],
            window=WindowBounds(**window.as_event()),
            state=state or {},
            shardId=self.shard_id,
            eventSourceARN=STREAM_ARN,
            isFinalInvokeForWindow=final,
            isWindowTerminatedEarly=terminated_early,
        ).model_dump()


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
