"""Checkpoints: where each (mapping, shard) is, with its open window and that window's state.

Item layout in RuntimeCheckpointsTable (pk/sk strings):
- head item  pk=<mapping id>  sk=<shard id>: `position` (S, the last sequence number handled),
  `window_start_ms`/`window_end_ms` (N, the open window), `segment` (N), `closed_through_ms`
  (N), `finished` (BOOL), `version` (N), `owner` (S, the runtime instance that wrote it),
  `updated_at` (S), and the window state as zlib-compressed JSON in `state` (B) when it fits
  in one item;
- a state over ~350 KB compressed (DynamoDB items stop at 400 KB; state may reach 1 MB) goes
  to chunk items sk=<shard id>#state#<n> (`data` B, `generation` N = the head's version),
  written in the same TransactWriteItems as the head, so position, window and state always
  change together.
Every save is conditional on the version it loaded (`attribute_not_exists(pk) OR version =
:expected`): a replayed save of our own is recognised by version and owner, a save by another
runtime on the same shard is a CheckpointConflict, never a silent double consumer.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from salesstream.core.windows import Window
from salesstream.runtime.model import Checkpoint, CheckpointConflict, CheckpointCorrupt

CHUNK_BYTES: Final = 350_000
_MAX_CHUNKS: Final = 90  # TransactWriteItems takes 100 items


def _chunk_key(shard_id: str, index: int) -> str:
    return f"{shard_id}#state#{index:03d}"


class DynamoCheckpointStore:
    def __init__(self, dynamodb: Any, table_name: str, owner: str) -> None:
        self._db = dynamodb
        self.table_name = table_name
        self.owner = owner
        self._chunks: dict[tuple[str, str], int] = {}  # chunk items each head currently has

    def load(self, mapping: str, shard_id: str) -> Checkpoint:
        item = self._db.get_item(
            TableName=self.table_name, Key=self._key(mapping, shard_id), ConsistentRead=True
        ).get("Item")
        if not item:
            return Checkpoint()
        version = int(item["version"]["N"])
        chunks = int(item.get("state_chunks", {"N": "0"})["N"])
        self._chunks[(mapping, shard_id)] = chunks
        blob: bytes | None = item["state"]["B"] if "state" in item else None
        if chunks:
            blob = self._load_chunks(mapping, shard_id, chunks, version)
        window = (
            Window(int(item["window_start_ms"]["N"]), int(item["window_end_ms"]["N"]))
            if "window_start_ms" in item
            else None
        )
        return Checkpoint(
            position=item.get("position", {}).get("S"),
            window=window,
            state=zlib.decompress(blob).decode("utf-8") if blob is not None else None,
            segment=int(item["segment"]["N"]),
            closed_through_ms=int(item["closed_through_ms"]["N"]),
            finished=bool(item["finished"]["BOOL"]),
            version=version,
        )

    def _load_chunks(self, mapping: str, shard_id: str, chunks: int, version: int) -> bytes:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": mapping}, ":prefix": {"S": f"{shard_id}#state#"}},
            "ConsistentRead": True,
        }
        while True:
            page = self._db.query(**request)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        by_key = {item["sk"]["S"]: item for item in items if int(item["generation"]["N"]) == version}
        keys = [_chunk_key(shard_id, index) for index in range(chunks)]
        missing = [key for key in keys if key not in by_key]
        if missing:
            raise CheckpointCorrupt(
                f"{mapping} {shard_id}: state chunks of version {version} missing: {missing}"
            )
        return b"".join(by_key[key]["data"]["B"] for key in keys)

    @staticmethod
    def _key(mapping: str, sort_key: str) -> dict[str, Any]:
        return {"pk": {"S": mapping}, "sk": {"S": sort_key}}

    def save(self, mapping: str, shard_id: str, checkpoint: Checkpoint) -> Checkpoint:
        saved = replace(checkpoint, version=checkpoint.version + 1)
        head: dict[str, Any] = {
            **self._key(mapping, shard_id),
            "version": {"N": str(saved.version)},
            "owner": {"S": self.owner},
            "segment": {"N": str(saved.segment)},
            "closed_through_ms": {"N": str(saved.closed_through_ms)},
            "finished": {"BOOL": saved.finished},
            "updated_at": {"S": datetime.now(tz=UTC).isoformat(timespec="milliseconds")},
        }
        if saved.position is not None:
            head["position"] = {"S": saved.position}
        if saved.window is not None:
            head["window_start_ms"] = {"N": str(saved.window.start_ms)}
            head["window_end_ms"] = {"N": str(saved.window.end_ms)}
        blob = zlib.compress(saved.state.encode("utf-8")) if saved.state is not None else None
        chunks = [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] if blob else []
        if len(chunks) > _MAX_CHUNKS:
            raise ValueError(f"{mapping} {shard_id}: a window state of {len(blob or b'')} B is too large")
        if len(chunks) == 1:
            head["state"] = {"B": chunks[0]}
            chunks = []
        elif chunks:
            head["state_chunks"] = {"N": str(len(chunks))}
        # Conditional on the version we loaded: replaying this save changes nothing (see
        # _recognise_own_save), and a save by another runtime is refused.
        condition = {
            "ConditionExpression": "attribute_not_exists(pk) OR version = :expected",
            "ExpressionAttributeValues": {":expected": {"N": str(checkpoint.version)}},
        }
        stale = range(len(chunks), self._chunks.get((mapping, shard_id), 0))
        errors = self._db.exceptions
        try:
            if not chunks and not stale:
                self._db.put_item(TableName=self.table_name, Item=head, **condition)
            else:
                self._db.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": self.table_name, "Item": head, **condition}},
                        *(
                            {
                                "Put": {
                                    "TableName": self.table_name,
                                    "Item": {
                                        **self._key(mapping, _chunk_key(shard_id, index)),
                                        "data": {"B": chunk},
                                        "generation": {"N": str(saved.version)},
                                    },
                                }
                            }
                            for index, chunk in enumerate(chunks)
                        ),
                        *(
                            {
                                "Delete": {
                                    "TableName": self.table_name,
                                    "Key": self._key(mapping, _chunk_key(shard_id, index)),
                                }
                            }
                            for index in stale
                        ),
                    ]
                )
        except errors.ConditionalCheckFailedException:
            self._recognise_own_save(mapping, shard_id, saved)
        except errors.TransactionCanceledException as error:
            reasons = {reason.get("Code") for reason in error.response.get("CancellationReasons", [])}
            if "ConditionalCheckFailed" not in reasons:
                raise  # throttled or conflicting: the worker retries the whole save
            self._recognise_own_save(mapping, shard_id, saved)
        self._chunks[(mapping, shard_id)] = len(chunks)
        return saved

    def _recognise_own_save(self, mapping: str, shard_id: str, saved: Checkpoint) -> None:
        """The condition failed: either our own save landed and its answer was lost (a retry
        after a timeout), or another runtime consumes this shard."""
        item = self._db.get_item(
            TableName=self.table_name, Key=self._key(mapping, shard_id), ConsistentRead=True
        ).get("Item", {})
        version = int(item.get("version", {"N": "0"})["N"])
        owner = item.get("owner", {}).get("S")
        if version == saved.version and owner == self.owner:
            return
        raise CheckpointConflict(
            f"{mapping} {shard_id}: the checkpoint is at version {version} by {owner}, expected "
            f"{saved.version - 1}; another runtime is consuming this shard"
        )
