"""What the serving layer reads: the latest batch snapshot, its reconciliation, and the speed
layer's window segments after the snapshot's horizon.

    views = BatchViews(dynamodb, s3, batch_table=..., aggregates_table=..., bucket=...)
    snapshot = views.latest_snapshot()              # None until a snapshot has finished
    batch = views.window_rows(snapshot)             # windows that end at or before snapshot.horizon_ms
    speed = views.speed_rows(shard_ids, after_ms=snapshot.horizon_ms)  # windows that start at or after it
    views.latest_reconciliation()                   # summary and differences, or None

Up to the horizon the batch view is the truth (recomputed from the archive, each event id once);
after it, the speed layer. The horizon is a window boundary, so no window is split between the
two. Rows are the pure dataclasses of salesstream/core/batch.py; boto3 clients are passed in,
created once by the caller. A finished snapshot never changes, so its rows are cached per id.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from consumers.batch import layout
from consumers.speed.layout import SEGMENT_PREFIX
from salesstream.core.aggregation import split_day_key
from salesstream.core.batch import (
    Reconciliation,
    SnapshotInfo,
    StoreDayRow,
    WindowRow,
    difference_from_json,
    shard_horizon_from_json,
    summary_from_json,
    totals_of,
)
from salesstream.core.windows import parse_rfc3339

__all__ = [
    "BatchViews",
    "Reconciliation",
    "SnapshotInfo",
    "StoreDayRow",
    "WindowRow",
    "segment_rows",
    "stream_shard_ids",
]


def stream_shard_ids(kinesis: Any, stream_name: str) -> list[str]:
    """Every shard of the stream still listed (open and closed): where segments may live."""
    shard_ids: list[str] = []
    for page in kinesis.get_paginator("list_shards").paginate(StreamName=stream_name):
        shard_ids += [shard["ShardId"] for shard in page["Shards"]]
    return shard_ids


def snapshot_from_item(item: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(
        snapshot_id=item["snapshot_id"]["S"],
        horizon_ms=int(item["horizon_ms"]["N"]),
        window_seconds=int(item["window_seconds"]["N"]),
        dedup_horizon_seconds=int(item["dedup_horizon_seconds"]["N"]),
        started_ms=int(item["started_ms"]["N"]),
        finished_ms=int(item["finished_ms"]["N"]),
        shards=tuple(shard_horizon_from_json(shard) for shard in json.loads(item["shards"]["S"])),
        counts={name: int(value) for name, value in json.loads(item["counts"]["S"]).items()},
        windows_key=item["windows_key"]["S"],
        store_days_key=item["store_days_key"]["S"],
        findings_key=item["findings_key"]["S"],
    )


def segment_rows(item: dict[str, Any]) -> Iterator[WindowRow]:
    """The rows of one SEGMENT# item (raw DynamoDB attribute values), per store, currency and
    business day (`days_zjson`)."""
    shard = item["shard_id"]["S"]
    start = parse_rfc3339(item["window_start"]["S"])
    end = parse_rfc3339(item["window_end"]["S"])
    days: dict[str, dict[str, int]] = json.loads(zlib.decompress(item["days_zjson"]["B"]))
    for key, amounts in sorted(days.items()):
        store, currency, day = split_day_key(key)
        totals = totals_of(amounts)
        yield WindowRow(
            shard,
            start,
            end,
            store,
            currency,
            day,
            totals.orders,
            totals.refunds,
            totals.gross_minor,
            totals.refunds_minor,
        )


def merge_rows(rows: Iterable[WindowRow]) -> list[WindowRow]:
    """Rows of the same (shard, window, store, currency, day) added up (a window ended early by
    the state limit has several segments), sorted."""
    merged: dict[tuple[str, int, str, str, str], WindowRow] = {}
    for row in rows:
        key = (row.shard_id, row.window_start_ms, row.store_id, row.currency, row.business_day)
        seen = merged.get(key)
        if seen is None:
            merged[key] = row
            continue
        merged[key] = WindowRow(
            *key[:2],
            row.window_end_ms,
            *key[2:],
            seen.orders + row.orders,
            seen.refunds + row.refunds,
            seen.gross_minor + row.gross_minor,
            seen.refunds_minor + row.refunds_minor,
        )
    return [merged[key] for key in sorted(merged)]


def _json_lines(s3: Any, bucket: str, key: str) -> Iterator[dict[str, Any]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    with gzip.GzipFile(fileobj=body) as lines:
        for line in lines:
            yield json.loads(line)


@dataclass
class BatchViews:
    dynamodb: Any
    s3: Any
    batch_table: str
    aggregates_table: str
    bucket: str
    _rows: dict[str, tuple[list[WindowRow], list[StoreDayRow]]] = field(default_factory=dict, repr=False)

    # --- the batch view ---------------------------------------------------------------------

    def latest_snapshot(self) -> SnapshotInfo | None:
        """The newest finished snapshot (ids sort by start time), or None."""
        item = self._newest(layout.SNAPSHOTS)
        return snapshot_from_item(item) if item else None

    def snapshot(self, snapshot_id: str) -> SnapshotInfo | None:
        # a Query on the full key (not GetItem): readers of the views need dynamodb:Query only
        items = self.dynamodb.query(
            TableName=self.batch_table,
            KeyConditionExpression="pk = :pk AND sk = :sk",
            ExpressionAttributeValues={":pk": {"S": layout.SNAPSHOTS}, ":sk": {"S": snapshot_id}},
            ConsistentRead=True,
        )["Items"]
        return snapshot_from_item(items[0]) if items else None

    def window_rows(
        self,
        snapshot: SnapshotInfo,
        *,
        store_id: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[WindowRow]:
        """The snapshot's rows, optionally for one store and windows within [start_ms, end_ms)."""
        rows, _ = self._load(snapshot)
        return [
            row
            for row in rows
            if (store_id is None or row.store_id == store_id)
            and (start_ms is None or row.window_end_ms > start_ms)
            and (end_ms is None or row.window_start_ms < end_ms)
        ]

    def store_day_rows(self, snapshot: SnapshotInfo, *, store_id: str | None = None) -> list[StoreDayRow]:
        _, days = self._load(snapshot)
        return [row for row in days if store_id is None or row.store_id == store_id]

    def _load(self, snapshot: SnapshotInfo) -> tuple[list[WindowRow], list[StoreDayRow]]:
        cached = self._rows.get(snapshot.snapshot_id)
        if cached is None:
            rows = [WindowRow(**row) for row in _json_lines(self.s3, self.bucket, snapshot.windows_key)]
            days = [StoreDayRow(**row) for row in _json_lines(self.s3, self.bucket, snapshot.store_days_key)]
            self._rows.clear()  # one snapshot at a time: the newest is what is asked for
            cached = self._rows[snapshot.snapshot_id] = (rows, days)
        return cached

    # --- the reconciliation -------------------------------------------------------------------

    def latest_reconciliation(self) -> Reconciliation | None:
        item = self._newest(layout.RECONCILIATIONS)
        if item is None:
            return None
        body = self.s3.get_object(Bucket=self.bucket, Key=item["result_key"]["S"])["Body"].read()
        document = json.loads(gzip.decompress(body))
        return Reconciliation(
            summary_from_json(document["summary"]),
            tuple(difference_from_json(d) for d in document["differences"]),
        )

    def _newest(self, pk: str) -> dict[str, Any] | None:
        """The item of `pk` with the greatest sort key (ids and times sort as they are made)."""
        items = self.dynamodb.query(
            TableName=self.batch_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )["Items"]
        return items[0] if items else None

    # --- the speed layer ------------------------------------------------------------------------

    def speed_rows(
        self, shard_ids: Iterable[str], *, after_ms: int = 0, store_id: str | None = None
    ) -> list[WindowRow]:
        """Rows of the speed layer's segments whose window starts at or after `after_ms`, per
        (shard, window, store, currency, day), segments of one window added up. Windows still
        open are not there yet: a segment is written when its window closes."""
        rows: list[WindowRow] = []
        for shard in sorted(set(shard_ids)):
            for item in self.segment_items(shard, after_ms=after_ms):
                rows += [row for row in segment_rows(item) if store_id is None or row.store_id == store_id]
        return merge_rows(rows)

    def segment_items(
        self, shard_id: str, *, after_ms: int = 0, before_ms: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The raw SEGMENT# items of a shard with window start in [after_ms, before_ms)."""
        condition = "pk = :pk AND sk >= :after"
        values: dict[str, Any] = {
            ":pk": {"S": SEGMENT_PREFIX + shard_id},
            ":after": {"S": f"{max(after_ms, 0):015d}"},
        }
        if before_ms is not None:
            condition = "pk = :pk AND sk BETWEEN :after AND :before"
            values[":before"] = {"S": f"{before_ms - 1:015d}~"}  # "~" sorts after "#<position>"
        pages = self.dynamodb.get_paginator("query").paginate(
            TableName=self.aggregates_table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        )
        for page in pages:
            yield from page["Items"]
