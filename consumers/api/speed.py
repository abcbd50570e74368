"""Reads of the speed layer for the API: the stream's shards, their running totals and the
window segments in a range of window starts (item layout: consumers/aggregator/persistence.py).

Every read is a Query on one partition (`SHARD#<id>`, `SEGMENT#<id>`) per shard, never a Scan:
the shard ids come from ListShards, cached for `SHARD_LIST_TTL_SECONDS` (a warm function asks
Kinesis at most that often; ListShards allows 1,000 calls per second per stream). Shards
trimmed from the stream (older than its retention) are no longer listed; their windows are long
behind the snapshot horizon and answered by the batch view.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from consumers.aggregator.persistence import SEGMENT_PREFIX, SHARD_PREFIX
from consumers.api.merge import Part
from salesstream.commands.report import report_from_items
from salesstream.core.aggregation import Totals
from salesstream.core.windows import parse_rfc3339

SHARD_LIST_TTL_SECONDS: Final = 30.0
_SEGMENT_ATTRIBUTES: Final = "shard_id, window_start, window_end, stores_zjson"
_AMOUNTS: Final = ("orders", "refunds", "gross_minor", "refunds_minor")


@dataclass
class SpeedLayer:
    dynamodb: Any
    kinesis: Any
    table: str
    stream: str
    _shards: tuple[float, list[str]] = (0.0, [])
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def shard_ids(self) -> list[str]:
        with self._lock:
            listed_at, shards = self._shards
            if time.monotonic() - listed_at > SHARD_LIST_TTL_SECONDS or not shards:
                shards = [
                    shard["ShardId"]
                    for page in self.kinesis.get_paginator("list_shards").paginate(StreamName=self.stream)
                    for shard in page["Shards"]
                ]
                self._shards = (time.monotonic(), shards)
            return list(shards)

    def shard_totals(self) -> dict[str, dict[str, Any]]:
        """Per shard: totals per currency and the counters, as `salesstream report --json` has them."""
        items = (item for shard in self.shard_ids() for item in self._query(SHARD_PREFIX + shard))
        shards: dict[str, dict[str, Any]] = report_from_items(items)["shards"]
        return shards

    def segments(self, start_from_ms: int, start_to_ms: int) -> Iterator[Part]:
        """What every segment whose window starts in [start_from_ms, start_to_ms) adds, as parts."""
        for shard in self.shard_ids():
            # sk = "<window start ms:015d>#<first position>": BETWEEN on the bare starts keeps
            # every segment starting at start_from_ms and none starting at start_to_ms
            for item in self._query(SEGMENT_PREFIX + shard, f"{start_from_ms:015d}", f"{start_to_ms:015d}"):
                yield from segment_parts(item)

    def _query(
        self, pk: str, sk_from: str | None = None, sk_to: str | None = None
    ) -> Iterator[dict[str, Any]]:
        condition, values = "pk = :pk", {":pk": {"S": pk}}
        extra: dict[str, Any] = {}
        if sk_from is not None and sk_to is not None:
            condition += " AND sk BETWEEN :from AND :to"
            values.update({":from": {"S": sk_from}, ":to": {"S": sk_to}})
            extra["ProjectionExpression"] = _SEGMENT_ATTRIBUTES
        for page in self.dynamodb.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            **extra,
        ):
            yield from page["Items"]


def segment_parts(item: dict[str, Any]) -> Iterator[Part]:
    """The parts of one segment item (raw DynamoDB attribute values)."""
    start, end = (parse_rfc3339(item[name]["S"]) for name in ("window_start", "window_end"))
    stores = json.loads(zlib.decompress(item["stores_zjson"]["B"]))
    for key, amounts in stores.items():
        store, currency = key.split("/")
        yield Part(start, end, store, currency, "", Totals(*(amounts[name] for name in _AMOUNTS)))
