"""Reads of the speed layer for the API: the stream's shards, their running totals, and the
window segments in a range of window starts (keys: consumers/speed/layout.py;
segments are read through the batch layer's views, consumers/batch/views.py, so both layers
read them alike).

Every read is a Query on one partition (`SHARD#<id>`, `SEGMENT#<id>`) per shard, never a Scan;
the shards' running totals are queried in parallel (one round trip of latency, not one per shard).
The shard ids come from ListShards, cached for `SHARD_LIST_TTL_SECONDS` so a busy API asks
Kinesis at most that often. Shards trimmed from the stream (older than its retention) are no
longer listed; their windows are long behind the snapshot horizon and answered by the batch view.
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


@dataclass
class SpeedLayer:
    views: BatchViews
    dynamodb: Any
    kinesis: Any
    stream: str
    _listed: tuple[float, list[str]] = (0.0, [])
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(_PARALLEL_QUERIES, thread_name_prefix="speed-query"),
        repr=False,
    )

    def shard_ids(self) -> list[str]:
        with self._lock:
            listed_at, shards = self._listed
            if not shards or time.monotonic() - listed_at > SHARD_LIST_TTL_SECONDS:
                shards = stream_shard_ids(self.kinesis, self.stream)
                self._listed = (time.monotonic(), shards)
            return list(shards)

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

    def _shard_items(self, shard: str) -> Iterator[dict[str, Any]]:
        for page in self.dynamodb.get_paginator("query").paginate(
            TableName=self.views.aggregates_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": SHARD_PREFIX + shard}},
        ):
            yield from page["Items"]
