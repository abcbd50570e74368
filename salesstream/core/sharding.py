"""Kinesis routing: the MD5 of a partition key against the shards' hash key ranges.

Kinesis reads MD5(partition key) as a 128-bit big-endian integer and routes a record to the open
shard whose [StartingHashKey, EndingHashKey] holds it (both ends inclusive), or by the record's
explicit hash key when it has one. The producer groups user records by it; the consumers use it
to recognise a user record that landed on a shard that is not its own (after a reshard).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

HASH_KEY_MAX: Final = 2**128 - 1


@lru_cache(maxsize=1 << 16)  # partition keys are store ids: few, and asked for again and again
def hash_key(partition_key: str) -> int:
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")  # noqa: S324 - Kinesis's routing hash


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    starting_hash_key: int
    ending_hash_key: int
    is_open: bool = True
    parents: tuple[str, ...] = ()  # the shard(s) it was split or merged from

    @classmethod
    def from_api(cls, shard: Mapping[str, Any]) -> Shard:
        """One item of ListShards; a shard with an EndingSequenceNumber is closed."""
        hash_range = shard["HashKeyRange"]
        return cls(
            shard["ShardId"],
            int(hash_range["StartingHashKey"]),
            int(hash_range["EndingHashKey"]),
            is_open="EndingSequenceNumber" not in shard.get("SequenceNumberRange", {}),
            parents=tuple(
                parent
                for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
                if parent
            ),
        )

    def holds(self, key: int) -> bool:
        return self.starting_hash_key <= key <= self.ending_hash_key

    def owns(self, partition_key: str, explicit_hash_key: str | None = None) -> bool:
        """Whether a user record with these keys belongs on this shard (the KCL's test)."""
        key = int(explicit_hash_key) if explicit_hash_key is not None else hash_key(partition_key)
        return self.holds(key)

    @property
    def explicit_hash_key(self) -> str:
        """A hash key inside this shard's range: where its aggregates are sent."""
        return str(self.starting_hash_key)
