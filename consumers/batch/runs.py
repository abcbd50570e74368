"""The unfinished snapshot's cursor and lease: one item in BATCH_TABLE (`SNAPSHOT_RUN`/`CURSOR`).

A run takes the lease (conditional: free, expired, or its own), saves the cursor after every
step that wrote something durable (a scan chunk, a reduced partition), and deletes the item when
the snapshot is finished. A run that crashes or times out leaves the cursor: the next run takes
over once the lease has expired (or at once, if the run released it on a graceful timeout) and
continues from there instead of starting over. Every save is conditional on owning the lease
and on the version it loaded, so two runs can never both move one snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from consumers.batch import layout
from salesstream.core.batch import ShardHorizon, shard_horizon_from_json, shard_horizon_to_json

_KEY = {"pk": {"S": layout.SNAPSHOT_RUN}, "sk": {"S": layout.CURSOR}}


class Phase(StrEnum):
    SCAN = "scan"  # read the archive, write sightings to partitions
    REDUCE = "reduce"  # judge each partition's event ids, total them
    FINISH = "finish"  # merge the partitions, write the snapshot


class SnapshotBusy(RuntimeError):
    """Another run holds the lease on the unfinished snapshot."""


class LeaseLost(RuntimeError):
    """This run's lease was taken over (it ran past its expiry): it must stop at once."""


@dataclass(frozen=True)
class Cursor:
    snapshot_id: str
    phase: Phase
    started_ms: int
    horizon_ms: int
    shards: tuple[ShardHorizon, ...]
    partitions: int
    after_key: str = ""  # the last archive object whose sightings are in written chunks
    chunks: int = 0  # chunks written by the scan
    partition: int = 0  # the next partition to reduce
    progress: tuple[tuple[str, int], ...] = ()  # counters that survive a restart
    version: int = 0

    def counted(self, **increments: int) -> Cursor:
        counts = dict(self.progress)
        for name, value in increments.items():
            counts[name] = counts.get(name, 0) + value
        return replace(self, progress=tuple(sorted(counts.items())))


@dataclass
class SnapshotRuns:
    dynamodb: Any
    table: str
    owner: str
    lease_ms: int = 120_000

    def acquire(self, now_ms: int) -> Cursor | None:
        """Take the lease; the unfinished snapshot's cursor, or None when there is none."""
        try:
            item = self.dynamodb.update_item(
                TableName=self.table,
                Key=_KEY,
                UpdateExpression="SET #owner = :me, lease_until_ms = :until",
                ConditionExpression="attribute_not_exists(pk) OR lease_until_ms < :now OR #owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={
                    ":me": {"S": self.owner},
                    ":until": {"N": str(now_ms + self.lease_ms)},
                    ":now": {"N": str(now_ms)},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )["Attributes"]
        except self.dynamodb.exceptions.ConditionalCheckFailedException as held:
            old = held.response.get("Item", {})
            raise SnapshotBusy(
                f"snapshot run {old.get('owner', {}).get('S', '?')} holds the lease until "
                f"{old.get('lease_until_ms', {}).get('N', '?')} (epoch ms)"
            ) from None
        return _cursor_of(item) if "snapshot_id" in item else None

    def save(self, cursor: Cursor, now_ms: int) -> Cursor:
        saved = replace(cursor, version=cursor.version + 1)
        item = {**_KEY, **_item_of(saved), "owner": {"S": self.owner}}
        item["lease_until_ms"] = {"N": str(now_ms + self.lease_ms)}
        with self._holding_lease():
            self.dynamodb.put_item(
                TableName=self.table,
                Item=item,
                # only the lease holder, and only from the version it loaded
                ConditionExpression="#owner = :me AND (attribute_not_exists(version) OR version = :version)",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}, ":version": {"N": str(cursor.version)}},
            )
        return saved

    def release(self) -> None:
        """Give the lease up (a graceful stop): the next run may continue at once."""
        with self._holding_lease():
            self.dynamodb.update_item(
                TableName=self.table,
                Key=_KEY,
                UpdateExpression="SET lease_until_ms = :zero",
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}, ":zero": {"N": "0"}},
            )

    def finish(self) -> None:
        """The snapshot is written: no cursor any more."""
        with self._holding_lease():
            self.dynamodb.delete_item(
                TableName=self.table,
                Key=_KEY,
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )

    @contextmanager
    def _holding_lease(self) -> Iterator[None]:
        """A write conditional on owning the lease: a failed condition means it was taken over.
        (Each write is spelt out, not dispatched by name, so the deploy scan sees its operation.)"""
        try:
            yield
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            raise LeaseLost(f"{self.owner} no longer holds the snapshot lease") from None


def _item_of(cursor: Cursor) -> dict[str, Any]:
    return {
        "snapshot_id": {"S": cursor.snapshot_id},
        "phase": {"S": cursor.phase.value},
        "started_ms": {"N": str(cursor.started_ms)},
        "horizon_ms": {"N": str(cursor.horizon_ms)},
        "shards": {"S": json.dumps([shard_horizon_to_json(s) for s in cursor.shards])},
        "partitions": {"N": str(cursor.partitions)},
        "after_key": {"S": cursor.after_key},
        "chunks": {"N": str(cursor.chunks)},
        "partition": {"N": str(cursor.partition)},
        "progress": {"S": json.dumps(dict(cursor.progress))},
        "version": {"N": str(cursor.version)},
    }


def _cursor_of(item: dict[str, Any]) -> Cursor:
    return Cursor(
        snapshot_id=item["snapshot_id"]["S"],
        phase=Phase(item["phase"]["S"]),
        started_ms=int(item["started_ms"]["N"]),
        horizon_ms=int(item["horizon_ms"]["N"]),
        shards=tuple(shard_horizon_from_json(s) for s in json.loads(item["shards"]["S"])),
        partitions=int(item["partitions"]["N"]),
        after_key=item["after_key"]["S"],
        chunks=int(item["chunks"]["N"]),
        partition=int(item["partition"]["N"]),
        progress=tuple(sorted(json.loads(item["progress"]["S"]).items())),
        version=int(item["version"]["N"]),
    )
