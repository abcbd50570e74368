"""An in-memory checkpoint store for pure tests of the shard consumer: the same versioning rule
as DynamoCheckpointStore (a save names the version it loaded; any other is a conflict)."""

from __future__ import annotations

import threading
from dataclasses import replace

from salesstream.runtime.model import Checkpoint, CheckpointConflict


class MemoryCheckpointStore:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Checkpoint] = {}
        self.saves = 0
        self._lock = threading.Lock()

    def load(self, mapping: str, shard_id: str) -> Checkpoint:
        return self.items.get((mapping, shard_id), Checkpoint())

    def save(self, mapping: str, shard_id: str, checkpoint: Checkpoint) -> Checkpoint:
        with self._lock:
            current = self.items.get((mapping, shard_id), Checkpoint())
            if current.version != checkpoint.version:
                raise CheckpointConflict(f"{mapping} {shard_id}: version {current.version} in the store")
            saved = replace(checkpoint, version=checkpoint.version + 1)
            self.items[(mapping, shard_id)] = saved
            self.saves += 1
            return saved
