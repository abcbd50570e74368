"""Reads of the speed layer for the API: the shards of both sources, their running totals, and
the window segments in a range of window starts (keys: consumers/speed/layout.py; segments are
read through the batch layer's views, consumers/batch/views.py, so both layers read them alike).

The aggregator keeps a shard's segments and totals under its shard id whichever stream it reads:
the Kinesis stream (ListShards) or, when the template has the orders table, the table's DynamoDB
stream (DescribeTable names the current stream, DescribeStream lists its shards). Their shard ids
never collide (Kinesis `shardId-000000000000`, DynamoDB Streams `shardId-<20 digits>-<8 hex>`).
Each shard is answered with the source it belongs to.

Every read is a Query on one partition (`SHARD#<id>`, `SEGMENT#<id>`) per shard, never a Scan;
the shards' running totals are queried in parallel (one round trip of latency, not one per shard).
The shard lists are cached for `SHARD_LIST_TTL_SECONDS` so a busy API asks the sources at most
that often. Shards trimmed from a source (Kinesis past its retention, DynamoDB Streams after 24
hours) are no longer listed; their windows are long behind the snapshot horizon and answered by
the batch view.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from consumers.batch.views import BatchViews, WindowRow, segment_rows, stream_shard_ids
from consumers.speed.layout import SHARD_PREFIX, report_from_items

SHARD_LIST_TTL_SECONDS: Final = 30.0
_PARALLEL_QUERIES: Final = 8
STREAM_SOURCE: Final = "stream"  # the Kinesis stream
TABLE_SOURCE: Final = "table"  # the orders table's DynamoDB stream


class TableStreamMissing(RuntimeError):
    """The orders table the API is given has no stream (DescribeTable names none); the template's
    table always has one."""


@dataclass(frozen=True)
class Source:
    kind: str  # STREAM_SOURCE or TABLE_SOURCE
    name: str  # the stream's name or the orders table's name

    def as_json(self) -> dict[str, str]:
        return {"source": self.kind, "name": self.name}


def table_stream_shard_ids(dynamodb: Any, streams: Any, table: str) -> list[str]:
    """Every shard of the table's current stream still listed (open and closed)."""
    arn = dynamodb.describe_table(TableName=table)["Table"].get("LatestStreamArn")
    if not arn:
        raise TableStreamMissing(f"the orders table {table} has no stream")
    shard_ids: list[str] = []
    request: dict[str, Any] = {"StreamArn": arn}
    while True:
        description = streams.describe_stream(**request)["StreamDescription"]
        shard_ids += [shard["ShardId"] for shard in description["Shards"]]
        last = description.get("LastEvaluatedShardId")
        if not last:
            return shard_ids
        request = {"StreamArn": arn, "ExclusiveStartShardId": last}


@dataclass
class SpeedLayer:
    views: BatchViews
    dynamodb: Any
    kinesis: Any
    stream: str
    streams: Any = None  # DynamoDB Streams, for the orders table's shards
    orders_table: str | None = None  # None: the template has no orders table
    _listed: tuple[float, dict[str, Source]] = (0.0, {})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(_PARALLEL_QUERIES, thread_name_prefix="speed-query"),
        repr=False,
    )

    def sources(self) -> list[Source]:
        stream = [Source(STREAM_SOURCE, self.stream)]
        return stream + ([Source(TABLE_SOURCE, self.orders_table)] if self.orders_table else [])

    def shard_sources(self) -> dict[str, Source]:
        """Every listed shard of every source, with its source."""
        with self._lock:
            listed_at, shards = self._listed
            if not shards or time.monotonic() - listed_at > SHARD_LIST_TTL_SECONDS:
                shards = {shard: source for source in self.sources() for shard in self._list(source)}
                self._listed = (time.monotonic(), shards)
            return dict(shards)

    def shard_ids(self) -> list[str]:
        return list(self.shard_sources())

    def shard_totals(self) -> dict[str, dict[str, Any]]:
        """Per shard: totals per currency and the counters, as `salesstream report --json` has them."""
        per_shard = self._pool.map(lambda shard: list(self._shard_items(shard)), self.shard_ids())
        items = (item for shard_items in per_shard for item in shard_items)
        shards: dict[str, dict[str, Any]] = report_from_items(items)["shards"]
        return shards

    def rows(self, start_from_ms: int, start_to_ms: int) -> Iterator[WindowRow]:
        """The rows of every segment whose window starts in [start_from_ms, start_to_ms)."""
        for shard in self.shard_ids():
            for item in self.views.segment_items(shard, after_ms=start_from_ms, before_ms=start_to_ms):
                yield from segment_rows(item)

    def _list(self, source: Source) -> list[str]:
        if source.kind == TABLE_SOURCE:
            return table_stream_shard_ids(self.dynamodb, self.streams, source.name)
        return stream_shard_ids(self.kinesis, source.name)

    def _shard_items(self, shard: str) -> Iterator[dict[str, Any]]:
        for page in self.dynamodb.get_paginator("query").paginate(
            TableName=self.views.aggregates_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": SHARD_PREFIX + shard}},
        ):
            yield from page["Items"]
