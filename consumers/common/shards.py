"""The stream's shards as the consumers need them: hash key ranges and lineage, from ListShards.

Cached per process and refreshed when a shard id is not known yet (a reshard added it), so a
warm consumer makes no request. Lambda's event names the shard but not its range or parents.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from salesstream.core.sharding import Shard


class UnknownShard(LookupError):
    """ListShards does not list the shard the event names."""


@dataclass
class StreamShards:
    kinesis: Any
    stream_name: str
    _shards: dict[str, Shard] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, shard_id: str) -> Shard:
        with self._lock:
            if shard_id not in self._shards:
                self._shards = self._list()
            shard = self._shards.get(shard_id)
        if shard is None:
            raise UnknownShard(f"{shard_id} is not a shard of {self.stream_name}")
        return shard

    def ancestors(self, shard_id: str) -> list[str]:
        """Every shard the given one descends from, nearest first, as far as ListShards still
        lists them (retention drops the oldest). An event id's hash key was owned by ancestors
        only: after a merge and then a split, a resend can land two generations below the
        shard that counted the original."""
        found: list[str] = []
        pending = list(self.get(shard_id).parents)
        while pending:
            parent = pending.pop(0)
            with self._lock:
                shard = self._shards.get(parent)
            if shard is None or parent in found:
                continue  # beyond the stream's retention: nothing of it can be resent any more
            found.append(parent)
            pending.extend(shard.parents)
        return found

    def _list(self) -> dict[str, Shard]:
        shards: dict[str, Shard] = {}
        for page in self.kinesis.get_paginator("list_shards").paginate(StreamName=self.stream_name):
            shards.update((item["ShardId"], Shard.from_api(item)) for item in page["Shards"])
        return shards
