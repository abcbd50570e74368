"""Where the batch layer keeps things: BATCH_TABLE items and ARCHIVE_BUCKET keys. One module,
so the writers (snapshot, reconciliation, repair) and the readers (views) cannot drift.

BATCH_TABLE (pk/sk strings):

| pk              | sk                                     | what |
|-----------------|----------------------------------------|------|
| SNAPSHOTS       | <snapshot id>                          | a finished snapshot's manifest (once) |
| SNAPSHOT_RUN    | CURSOR                                 | the unfinished snapshot: cursor, lease |
| RECONCILIATIONS | <reconciled ms:015d>#<snapshot id>     | a reconciliation's summary (S3: all) |
| AUDIT           | <repaired ms:015d>#<repair id>#<n:04d> | one key restated by a repair |

Snapshot ids sort by start time (`20261123T101500123Z-ab12cd`), so the newest finished snapshot
is the last item of `SNAPSHOTS`.

ARCHIVE_BUCKET:

    archive/YYYY/MM/DD/HH/<shardId>-<first position>-<last position>.jsonl.gz   the event archive
    snapshots/<snapshot id>/windows.jsonl.gz | store_days.jsonl.gz | findings.jsonl.gz
    snapshots/<snapshot id>/work/p<partition:03d>/c<chunk:06d>.tsv.gz   a partition's sightings, by chunk
    snapshots/<snapshot id>/work/r<partition:03d>.rows.jsonl.gz | .findings.jsonl.gz   its result
                                              (the work objects are deleted when the snapshot finishes)
    reconciliations/<reconciliation id>.json.gz
    failures/<message id>.json               on-failure notices moved from the queue (kept)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

SNAPSHOTS: Final = "SNAPSHOTS"
SNAPSHOT_RUN: Final = "SNAPSHOT_RUN"
CURSOR: Final = "CURSOR"
RECONCILIATIONS: Final = "RECONCILIATIONS"
AUDIT: Final = "AUDIT"

SNAPSHOT_PREFIX: Final = "snapshots/"
RECONCILIATION_PREFIX: Final = "reconciliations/"
FAILURES_PREFIX: Final = "failures/"


def snapshot_id(started_ms: int, suffix: str) -> str:
    moment = datetime.fromtimestamp(started_ms / 1000, tz=UTC)
    return f"{moment:%Y%m%dT%H%M%S}{started_ms % 1000:03d}Z-{suffix}"


def snapshot_key(snapshot: str, name: str) -> str:
    return f"{SNAPSHOT_PREFIX}{snapshot}/{name}"


def windows_key(snapshot: str) -> str:
    return snapshot_key(snapshot, "windows.jsonl.gz")


def store_days_key(snapshot: str) -> str:
    return snapshot_key(snapshot, "store_days.jsonl.gz")


def findings_key(snapshot: str) -> str:
    return snapshot_key(snapshot, "findings.jsonl.gz")


def work_prefix(snapshot: str) -> str:
    return snapshot_key(snapshot, "work/")


def chunks_prefix(snapshot: str, partition: int) -> str:
    return f"{work_prefix(snapshot)}p{partition:03d}/"


def chunk_key(snapshot: str, partition: int, chunk: int) -> str:
    """Keyed by (snapshot, partition, chunk): a rerun after a crash rewrites the same chunk."""
    return f"{chunks_prefix(snapshot, partition)}c{chunk:06d}.tsv.gz"


def partition_rows_key(snapshot: str, partition: int) -> str:
    return f"{work_prefix(snapshot)}r{partition:03d}.rows.jsonl.gz"


def partition_findings_key(snapshot: str, partition: int) -> str:
    return f"{work_prefix(snapshot)}r{partition:03d}.findings.jsonl.gz"


def reconciliation_key(reconciliation_id: str) -> str:
    return f"{RECONCILIATION_PREFIX}{reconciliation_id}.json.gz"


def failure_key(message_id: str) -> str:
    return f"{FAILURES_PREFIX}{message_id}.json"
