"""Which shard a record goes to: the MD5 of its partition key against the shards' hash ranges.

Kinesis reads MD5(partition key) as a 128-bit big-endian integer and routes the record to the
open shard whose [StartingHashKey, EndingHashKey] holds it (both ends inclusive). A KPL aggregate
carries many partition keys but lands on one shard, chosen by the aggregate's explicit hash key,
so the producer groups user records by this map and gives each aggregate a hash key inside its
shard's range.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import Any

# The routing math is pure and shared with the consumers (they drop records that landed on a
# shard that is not theirs); it lives in the core, re-exported here for producer code.
from salesstream.core.sharding import HASH_KEY_MAX, Shard, hash_key

__all__ = ["HASH_KEY_MAX", "Shard", "ShardMap", "ShardMapError", "fetch_shard_map", "hash_key"]


class ShardMapError(RuntimeError):
    """The open shards do not tile the hash key space (a reshard is under way): ask again later."""


class ShardMap:
    """Every shard the stream lists (closed ones too, to judge where a record landed); only the
    open ones are targets."""

    def __init__(self, shards: Iterable[Shard]) -> None:
        self.shards = {shard.shard_id: shard for shard in shards}
        self.open_shards = sorted(
            (s for s in self.shards.values() if s.is_open), key=lambda s: s.starting_hash_key
        )
        expected_start = 0
        for shard in self.open_shards:
            if shard.starting_hash_key != expected_start:
                raise ShardMapError(f"open shards leave a gap or overlap at hash key {expected_start}")
            expected_start = shard.ending_hash_key + 1
        if expected_start != HASH_KEY_MAX + 1:
            raise ShardMapError("open shards do not cover the hash key space")
        self._starts = [shard.starting_hash_key for shard in self.open_shards]

    @classmethod
    def from_api(cls, shards: Iterable[Mapping[str, Any]]) -> ShardMap:
        return cls(Shard.from_api(shard) for shard in shards)

    @classmethod
    def uniform(cls, count: int) -> ShardMap:
        """The map CreateStream makes: equal ranges, the last shard takes the remainder."""
        step = (HASH_KEY_MAX + 1) // count
        return cls(
            Shard(f"shardId-{i:012d}", i * step, HASH_KEY_MAX if i == count - 1 else (i + 1) * step - 1)
            for i in range(count)
        )

    def shard_for_key(self, key: int) -> Shard:
        return self.open_shards[bisect.bisect_right(self._starts, key) - 1]

    def shard_for(self, partition_key: str) -> Shard:
        return self.shard_for_key(hash_key(partition_key))

    def belongs(self, partition_key: str, shard_id: str) -> bool:
        """Does a record with this partition key belong on that shard (open or closed)?"""
        shard = self.shards.get(shard_id)
        return shard is not None and shard.holds(hash_key(partition_key))

    def routes_like(self, other: ShardMap | None) -> bool:
        return other is not None and self.open_shards == other.open_shards


def fetch_shard_map(client: Any, stream_name: str) -> ShardMap:
    """ListShards, every page (a NextToken call must not repeat the stream name)."""
    shards: list[Mapping[str, Any]] = []
    for page in client.get_paginator("list_shards").paginate(StreamName=stream_name):
        shards.extend(page["Shards"])
    return ShardMap.from_api(shards)
