"""The snapshot job: recompute the totals from the event archive, restartably, then reconcile.

Scheduled in the template (`SnapshotFunction`, `SnapshotRate`: consumers/batch/handler.py runs
consumers/batch/scheduled.py), run by the local runtime on the same schedule, and by
`salesstream snapshot`. One run:

0. begin (or resume the unfinished snapshot's cursor): list the archive, probe the streams (the
   orders stream, and the orders table's when that source is on: consumers/batch/shard_sources.py)
   after each shard's last archived record, fix the horizon (salesstream/core/recompute.py) and the
   number of partitions (from the archive's size, so a partition fits in memory);
1. scan: read the archive objects in key order up to the horizon's hour, decode their records
   with the aggregator's pipeline (consumers/batch/archive_reader.py), one sighting per accepted user
   record before the horizon into its partition (refused ones are counted by reason); every
   `snapshot_chunk_lines` sightings the partitions' chunks are written to S3 and the cursor saved;
2. reduce: per partition, judge every event id and total the counted sightings with the speed
   layer's reducer; the partition's result is written and the cursor saved;
3. finish: merge the partitions' rows into the snapshot's files, put its manifest (once:
   a finished snapshot never changes), delete the cursor and the work objects.

A run that crashes or runs out of time leaves the cursor; the next continues from it. The pure
logic lives in salesstream/core (archive format, recompute, horizon); this module moves bytes.
"""

from __future__ import annotations

import gzip
import heapq
import io
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Final

from aws_lambda_powertools import Logger

from consumers.batch import layout
from consumers.batch.archive_reader import read_back
from consumers.batch.resources import BatchResources, wall_ms
from consumers.batch.runs import Cursor, Phase, SnapshotRuns
from consumers.batch.shard_sources import ShardSource, shard_sources
from consumers.batch.views import snapshot_from_item
from salesstream.core.archive import ARCHIVE_PREFIX, ArchiveKey
from salesstream.core.batch import Reconciliation, ShardHorizon, ShardState, SnapshotInfo, StoreDayRow
from salesstream.core.batch import shard_horizon_to_json as _shard_json
from salesstream.core.recompute import (
    RowKey,
    decode_sightings,
    reduce_partition,
    route,
    shard_horizon,
    snapshot_horizon,
)

logger = Logger()

# The raw archive holds ~71 gzip'd bytes per simulator order (base64 in KPL aggregates); assuming
# fewer makes more, smaller partitions: safe for memory, a few more requests.
_ARCHIVE_BYTES_PER_LINE: Final = 30
_MAX_PARTITIONS: Final = 256
_DELETE_LIMIT: Final = 1000


@dataclass(frozen=True)
class SnapshotOutcome:
    finished: bool
    snapshot: SnapshotInfo | None  # when finished
    cursor: Cursor | None  # when not: where the next run continues
    resumed: bool  # this run continued an unfinished snapshot


class SnapshotJob:
    def __init__(
        self,
        resources: BatchResources,
        *,
        now_ms: Callable[[], int] = wall_ms,
        owner: str | None = None,
    ) -> None:
        self.resources = resources
        self.settings = resources.settings
        self.now_ms = now_ms
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.runs = SnapshotRuns(resources.dynamodb, self.settings.batch_table, self.owner)
        self.s3 = resources.s3
        self.bucket = self.settings.archive_bucket
        self.window_ms = self.settings.window_seconds * 1000

    @cached_property
    def sources(self) -> list[ShardSource]:
        return shard_sources(self.resources)

    def run(
        self,
        *,
        time_budget_seconds: float | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> SnapshotOutcome:
        """Run (or continue) a snapshot to its end, or until the time budget is spent (then the
        cursor is saved and the lease released). `should_stop` is asked between steps too."""
        deadline = None if time_budget_seconds is None else time.monotonic() + time_budget_seconds

        def stop() -> bool:
            return (deadline is not None and time.monotonic() >= deadline) or (
                should_stop is not None and should_stop()
            )

        cursor = self.runs.acquire(self.now_ms())
        resumed = cursor is not None
        if cursor is None:
            cursor = self.runs.save(self._begin(), self.now_ms())
            logger.info("snapshot begun", extra=_describe(cursor))
        else:
            logger.info("snapshot resumed", extra=_describe(cursor))
        if cursor.phase is Phase.SCAN:
            cursor = self._scan(cursor, stop)
        if cursor.phase is Phase.REDUCE:
            cursor = self._reduce(cursor, stop)
        if cursor.phase is not Phase.FINISH:
            self.runs.release()
            logger.info("snapshot paused; the next run continues", extra=_describe(cursor))
            return SnapshotOutcome(False, None, cursor, resumed)
        snapshot = self._finish(cursor)
        logger.info("snapshot finished", extra={"snapshot_id": snapshot.snapshot_id, **snapshot.counts})
        return SnapshotOutcome(True, snapshot, None, resumed)

    # --- 0. begin ---------------------------------------------------------------------------

    def _begin(self) -> Cursor:
        now = self.now_ms()
        caught_up_at = now - round(self.settings.snapshot_horizon_grace_seconds * 1000)
        last: dict[str, ArchiveKey] = {}
        archive_bytes = 0
        for key, size in self._archive_keys():
            last[key.shard_id] = key  # keys sort by hour, then shard, then position: the last is newest
            archive_bytes += size
        # every shard of every source: the orders stream's, and the orders table stream's when
        # that source is on (an archived shard neither lists was trimmed)
        listed = {
            shard.shard_id: (source, shard) for source in self.sources for shard in source.list_shards()
        }
        horizons = []
        for shard_id in sorted(set(listed) | set(last)):
            newest = last.get(shard_id)
            sequence = newest.last_sequence if newest else None
            if shard_id not in listed:  # trimmed from the stream: nothing more can come
                horizons.append(ShardHorizon(shard_id, ShardState.CLOSED, None, sequence))
                continue
            source, shard = listed[shard_id]
            probe = source.probe(shard, sequence)
            fallback = newest.hour_start_ms if newest else 0
            horizons.append(
                shard_horizon(shard_id, sequence, probe, now_ms=caught_up_at, fallback_ms=fallback)
            )
        horizon = snapshot_horizon(horizons, now_ms=caught_up_at, window_seconds=self.settings.window_seconds)
        estimated_lines = archive_bytes / _ARCHIVE_BYTES_PER_LINE
        partitions = min(
            _MAX_PARTITIONS, max(1, math.ceil(estimated_lines / self.settings.snapshot_partition_events))
        )
        return Cursor(
            snapshot_id=layout.snapshot_id(now, uuid.uuid4().hex[:6]),
            phase=Phase.SCAN,
            started_ms=now,
            horizon_ms=horizon,
            shards=tuple(horizons),
            partitions=partitions,
        )

    def _archive_keys(self, *, start_after: str = "") -> Iterator[tuple[ArchiveKey, int]]:
        request = {"Bucket": self.bucket, "Prefix": ARCHIVE_PREFIX}
        if start_after:
            request["StartAfter"] = start_after
        for page in self.s3.get_paginator("list_objects_v2").paginate(**request):
            for entry in page.get("Contents", []):
                yield ArchiveKey.parse(entry["Key"]), int(entry["Size"])

    # --- 1. scan ----------------------------------------------------------------------------

    def _scan(self, cursor: Cursor, stop: Callable[[], bool]) -> Cursor:
        partitions = cursor.partitions
        buffers: list[list[str]] = [[] for _ in range(partitions)]
        pending = {"archive_objects": 0}
        buffered = 0
        last_key = cursor.after_key

        def flush() -> Cursor:
            nonlocal buffered
            written = 0
            for partition, lines in enumerate(buffers):
                if lines:
                    key = layout.chunk_key(cursor.snapshot_id, partition, cursor.chunks)
                    self.s3.put_object(
                        Bucket=self.bucket, Key=key, Body=gzip.compress("".join(lines).encode(), 1)
                    )
                    written += 1
                    lines.clear()
            advanced = replace(cursor, after_key=last_key, chunks=cursor.chunks + (1 if written else 0))
            saved = self.runs.save(advanced.counted(**pending), self.now_ms())
            pending.update(dict.fromkeys(pending, 0))
            buffered = 0
            return saved

        for key, _ in self._archive_keys(start_after=cursor.after_key):
            if key.hour_start_ms >= cursor.horizon_ms:
                break  # every later object arrived after the horizon
            if stop():
                return flush()
            body = self.s3.get_object(Bucket=self.bucket, Key=key.key)["Body"].read()
            read = read_back(body, key.key)
            buffered += route(read.sightings, cursor.horizon_ms, buffers)
            for name, count in read.counts(cursor.horizon_ms).items():
                pending[name] = pending.get(name, 0) + count
            pending["archive_objects"] += 1
            last_key = key.key
            if buffered >= self.settings.snapshot_chunk_lines:
                cursor = flush()
        cursor = flush()
        return self.runs.save(replace(cursor, phase=Phase.REDUCE), self.now_ms())

    # --- 2. reduce ----------------------------------------------------------------------------

    def _reduce(self, cursor: Cursor, stop: Callable[[], bool]) -> Cursor:
        for partition in range(cursor.partition, cursor.partitions):
            if stop():
                return cursor
            chunks = self._keys(layout.chunks_prefix(cursor.snapshot_id, partition))
            reduced = reduce_partition(
                # one chunk's text in memory at a time
                (s for key in chunks for s in decode_sightings(gzip.decompress(self._get(key)).decode())),
                window_ms=self.window_ms,
                dedup_horizon_ms=self.settings.dedup_horizon_seconds * 1000,
            )
            # sorted by key: the finish merges the partitions' rows as streams
            rows = ([*key, *counts] for key, counts in sorted(reduced.rows.items()))
            self._put_lines(layout.partition_rows_key(cursor.snapshot_id, partition), rows)
            findings = layout.partition_findings_key(cursor.snapshot_id, partition)
            self._put_lines(findings, iter(reduced.findings))
            # the partition's counts travel in the cursor, saved with the step that made them
            advanced = replace(cursor, partition=partition + 1).counted(**reduced.counts)
            cursor = self.runs.save(advanced, self.now_ms())
        return self.runs.save(replace(cursor, phase=Phase.FINISH), self.now_ms())

    # --- 3. finish ----------------------------------------------------------------------------

    def _finish(self, cursor: Cursor) -> SnapshotInfo:
        """Merge the partitions' sorted rows as streams: memory holds one row per partition and
        the store-day totals, never all the rows."""
        partitions = range(cursor.partitions)
        streams = [self._lines(layout.partition_rows_key(cursor.snapshot_id, p)) for p in partitions]
        windows, days = io.BytesIO(), dict[tuple[str, str, str], list[int]]()
        rows = 0
        with gzip.GzipFile(fileobj=windows, mode="wb", mtime=0) as out:
            for key, counts in _summed(heapq.merge(*streams, key=_row_key)):
                shard, start, store, currency, day = key
                out.write(_window_line(shard, start, start + self.window_ms, store, currency, day, counts))
                day_totals = days.setdefault((store, day, currency), [0, 0, 0, 0])
                for index, count in enumerate(counts):
                    day_totals[index] += count
                rows += 1
        findings = io.BytesIO()
        with gzip.GzipFile(fileobj=findings, mode="wb", mtime=0) as out:
            for partition in partitions:
                part = layout.partition_findings_key(cursor.snapshot_id, partition)
                out.write(gzip.decompress(self._get(part)))
        totals = dict(cursor.progress)
        totals.update(rows=rows, store_days=len(days), partitions=cursor.partitions)
        snapshot = SnapshotInfo(
            snapshot_id=cursor.snapshot_id,
            horizon_ms=cursor.horizon_ms,
            window_seconds=self.settings.window_seconds,
            dedup_horizon_seconds=self.settings.dedup_horizon_seconds,
            started_ms=cursor.started_ms,
            finished_ms=self.now_ms(),
            shards=cursor.shards,
            counts=dict(sorted(totals.items())),
            windows_key=layout.windows_key(cursor.snapshot_id),
            store_days_key=layout.store_days_key(cursor.snapshot_id),
            findings_key=layout.findings_key(cursor.snapshot_id),
        )
        # keyed by the snapshot id: a rerun of a finish that crashed writes the same objects
        self.s3.put_object(Bucket=self.bucket, Key=snapshot.windows_key, Body=windows.getvalue())
        store_days = (
            StoreDayRow(store, day, currency, *counts).as_dict()
            for (store, day, currency), counts in sorted(days.items())
        )
        self._put_lines(snapshot.store_days_key, store_days)
        self.s3.put_object(Bucket=self.bucket, Key=snapshot.findings_key, Body=findings.getvalue())
        snapshot = self._put_manifest(snapshot)
        self.runs.finish()
        self._delete(layout.work_prefix(cursor.snapshot_id))
        return snapshot

    def _put_manifest(self, snapshot: SnapshotInfo) -> SnapshotInfo:
        """Written once: a finished snapshot is immutable. A rerun of a finish that crashed
        after this put finds it and returns what was written then."""
        item = {
            "pk": {"S": layout.SNAPSHOTS},
            "sk": {"S": snapshot.snapshot_id},
            "snapshot_id": {"S": snapshot.snapshot_id},
            "horizon_ms": {"N": str(snapshot.horizon_ms)},
            "window_seconds": {"N": str(snapshot.window_seconds)},
            "dedup_horizon_seconds": {"N": str(snapshot.dedup_horizon_seconds)},
            "started_ms": {"N": str(snapshot.started_ms)},
            "finished_ms": {"N": str(snapshot.finished_ms)},
            "shards": {"S": json.dumps([_shard_json(shard) for shard in snapshot.shards])},
            "counts": {"S": json.dumps(snapshot.counts)},
            "windows_key": {"S": snapshot.windows_key},
            "store_days_key": {"S": snapshot.store_days_key},
            "findings_key": {"S": snapshot.findings_key},
        }
        dynamodb = self.resources.dynamodb
        try:
            dynamodb.put_item(
                TableName=self.settings.batch_table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",  # keyed by the snapshot id: once
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except dynamodb.exceptions.ConditionalCheckFailedException as exists:
            return snapshot_from_item(exists.response["Item"])
        return snapshot

    # --- S3 helpers -------------------------------------------------------------------------------

    def _get(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def _keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [entry["Key"] for page in pages for entry in page.get("Contents", [])]

    def _lines(self, key: str) -> Iterator[Any]:
        """A gzip JSON-lines object, read as a stream."""
        with gzip.GzipFile(fileobj=self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]) as lines:
            for line in lines:
                yield json.loads(line)

    def _put_lines(self, key: str, documents: Iterator[Any]) -> None:
        lines = b"".join(json.dumps(d, separators=(",", ":")).encode() + b"\n" for d in documents)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=gzip.compress(lines, 6, mtime=0))

    def _delete(self, prefix: str) -> None:
        keys = self._keys(prefix)
        for start in range(0, len(keys), _DELETE_LIMIT):
            chunk = keys[start : start + _DELETE_LIMIT]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk]})


def _row_key(row: list[Any]) -> list[Any]:
    return row[:5]


def _summed(rows: Iterator[list[Any]]) -> Iterator[tuple[RowKey, list[int]]]:
    """Rows sorted by key, equal keys (from several partitions) added up."""
    current: list[Any] | None = None
    counts: list[int] = []
    for row in rows:
        if row[:5] != current:
            if current is not None:
                yield (current[0], current[1], current[2], current[3], current[4]), counts
            current, counts = row[:5], list(row[5:])
        else:
            counts = [mine + theirs for mine, theirs in zip(counts, row[5:], strict=True)]
    if current is not None:
        yield (current[0], current[1], current[2], current[3], current[4]), counts


def _window_line(
    shard: str, start: int, end: int, store: str, currency: str, day: str, counts: list[int]
) -> bytes:
    """One WindowRow as a JSON line (the fields of salesstream.core.batch.WindowRow)."""
    orders, refunds, gross, refunds_minor = counts
    row = {
        "shard_id": shard,
        "window_start_ms": start,
        "window_end_ms": end,
        "store_id": store,
        "currency": currency,
        "business_day": day,
        "orders": orders,
        "refunds": refunds,
        "gross_minor": gross,
        "refunds_minor": refunds_minor,
    }
    return json.dumps(row, separators=(",", ":")).encode() + b"\n"


def _describe(cursor: Cursor) -> dict[str, Any]:
    return {
        "snapshot_id": cursor.snapshot_id,
        "phase": cursor.phase.value,
        "horizon_ms": cursor.horizon_ms,
        "partitions": cursor.partitions,
        "chunks": cursor.chunks,
        "partition": cursor.partition,
        **dict(cursor.progress),
    }


# --- run to its end ----------------------------------------------------------------------------


class SnapshotUnfinished(RuntimeError):
    """A snapshot run without a time budget stopped before its end (a defect)."""


def snapshot_and_reconcile(resources: BatchResources) -> tuple[SnapshotInfo, Reconciliation]:
    """A snapshot run to its end, then reconciled with the speed layer (`make demo`, the load
    test); the scheduled function and `salesstream snapshot` run within a time budget instead."""
    from consumers.batch.reconcile import Reconciler

    outcome = SnapshotJob(resources).run()
    if not outcome.finished or outcome.snapshot is None:
        raise SnapshotUnfinished("the snapshot job stopped before its end")
    return outcome.snapshot, Reconciler(resources).reconcile(outcome.snapshot)
