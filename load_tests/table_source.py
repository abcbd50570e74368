"""The orders table as the load test's source (`salesstream loadtest --source table`).

The fleet's events go into the orders table with batch writes of 25 (salesstream/cli/table_writer.py:
UnprocessedItems and throttling retried) at the rate asked, in the load generator's process, in
place of the producer and the Kinesis stream. The corrupted events a buggy till would send are
written as items past the writer's validation, so the quarantine is exercised as on Kinesis.
Everything else of the run (the runtime, the probes, the ground truth per event, the archive read
back, the reconciliation) is the load test's own, on the table stream's shards.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from botocore.config import Config

from load_tests.generator import _Sender
from producer.result import ProducerResult
from salesstream.cli.table_writer import BATCH_WRITE_LIMIT, DEFAULT_TTL_SECONDS, TableWriter
from salesstream.core.order_items import order_item
from salesstream.runtime.table_streams import list_table_shards, table_stream_arn

if TYPE_CHECKING:
    from types import TracebackType

ORDERS_TABLE: Final = "OrdersTable"
_RAW_ATTEMPTS: Final = 5
LINGER_SECONDS: Final = 0.25
# the writer retries throttled calls itself (TableWriter's Backoff): botocore's own retries off,
# so each throttled call is seen and counted
WRITER_CLIENT_CONFIG: Final = Config(
    retries={"total_max_attempts": 1}, user_agent_extra="salesstream-table-writer"
)


def table_shard_ids(dynamodb: Any, streams: Any, table: str) -> list[str]:
    """Every shard of the table's stream, open and closed."""
    return [shard.shard_id for shard in list_table_shards(streams, table_stream_arn(dynamodb, table))]


class TableProducer:
    """The table writer where the load generator expects the producer. Like the producer, it
    lingers: events wait until a full batch of 25 can go or `linger_seconds` have passed since
    the last write, so a fast schedule's small slots still make full BatchWriteItem calls."""

    def __init__(self, writer: TableWriter, spool: Path, *, linger_seconds: float = LINGER_SECONDS) -> None:
        self.writer = writer
        self._spool = spool
        self._linger = linger_seconds
        self._pending: list[bytes] = []
        self._written_at = time.monotonic()

    def open(self) -> None:
        """Nothing to open: the table exists."""

    def __enter__(self) -> TableProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.flush()

    def submit_many(self, raws: list[bytes]) -> None:
        self._pending += raws
        if time.monotonic() - self._written_at >= self._linger:
            self.flush()
            return
        full = len(self._pending) // BATCH_WRITE_LIMIT * BATCH_WRITE_LIMIT
        if full:
            self._write(self._pending[:full])
            self._pending = self._pending[full:]

    def flush(self) -> None:
        """Write whatever waits (refusals are counted in the result, `rejected`)."""
        if self._pending:
            self._write(self._pending)
            self._pending = []

    def _write(self, raws: list[bytes]) -> None:
        self.writer.submit_many(raws)
        self._written_at = time.monotonic()

    @property
    def result(self) -> ProducerResult:
        written = self.writer.result
        return ProducerResult(
            stream=written.table,
            aggregated=False,
            accepted=written.sent,
            sent=written.sent,
            resent=written.retries,
            rejected=dict(written.rejected),
            tally=written.tally,
            spool_path=str(self._spool),
        )


@dataclass
class TableSender(_Sender):
    """The load generator's child, writing to the orders table (`stream` is the table's name)."""

    def _make_producer(self) -> Any:
        return TableProducer(TableWriter(self._producer_client(), self.stream), self.spool)

    def _producer_client(self) -> Any:
        return self.endpoint.client("dynamodb", WRITER_CLIENT_CONFIG)

    def _raw_client(self) -> Any:
        return self.endpoint.client("dynamodb")

    def _put_raw(self, dynamodb: Any, pending: list[tuple[int, bytes]]) -> None:
        """Corrupted events as items, past the writer's validation (as from a buggy integration)."""
        expires_at = int(time.time()) + DEFAULT_TTL_SECONDS
        for start in range(0, len(pending), BATCH_WRITE_LIMIT):
            batch = {
                str(json.loads(raw)["event_id"]): (number, order_item(json.loads(raw), expires_at=expires_at))
                for number, raw in pending[start : start + BATCH_WRITE_LIMIT]
            }
            for attempt in range(_RAW_ATTEMPTS):
                if attempt:
                    time.sleep(0.2 * attempt)
                requests = [{"PutRequest": {"Item": item}} for _, item in batch.values()]
                answer = dynamodb.batch_write_item(RequestItems={self.stream: requests})
                left = {
                    r["PutRequest"]["Item"]["event_id"]["S"]
                    for r in answer.get("UnprocessedItems", {}).get(self.stream, [])
                }
                self.raw_acknowledged += len(batch) - len(left)
                batch = {event_id: entry for event_id, entry in batch.items() if event_id in left}
                if not batch:
                    break
            self.not_acknowledged.update(number for number, _ in batch.values())
