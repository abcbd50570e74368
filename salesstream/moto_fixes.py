"""Makes moto's Kinesis reshard the way AWS does, for the embedded emulator.

moto 5.2.5 gets three things wrong after SplitShard / MergeShards (checked with a probe, see
tests/integration/test_moto_fixes.py):
- a put is routed to the first shard whose hash range holds the key, closed or not, so after a
  split every record still lands on the closed parent;
- a hash key equal to a shard's EndingHashKey matches no shard (the range check is exclusive);
- a split moves the parent's records into the children (AWS leaves them in the closed parent,
  where consumers read them before moving on), and a merge copies both parents' records into
  the child, so they exist twice.

`apply()` patches moto's `Stream` in this process (the embedded emulator runs moto in a thread
of this process). `python -m salesstream.moto_fixes -H HOST -p PORT` runs moto's server with the
fixes, for the emulator's child-process mode.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from moto.kinesis import models

_original_split = models.Stream.split_shard
_original_merge = models.Stream.merge_shards


def _shard_for_key(self: models.Stream, partition_key: str, explicit_hash_key: str) -> Any:
    """Only open shards take writes, and both ends of a hash key range are inclusive."""
    if not isinstance(partition_key, str) or len(partition_key) > 256:
        raise models.InvalidArgumentError("partition_key")
    if explicit_hash_key:
        if not isinstance(explicit_hash_key, str):
            raise models.InvalidArgumentError("explicit_hash_key")
        key = int(explicit_hash_key)
        if key >= 2**128:
            raise models.InvalidArgumentError("explicit_hash_key")
    else:
        key = int(models.md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    return None


def _keeping_records(self: models.Stream, shard_ids: list[str], reshard: Any, *args: Any) -> None:
    """Run moto's split/merge with the parents' records set aside, then give them back: moto
    re-puts whatever the parents hold into the children, AWS keeps it in the closed parents."""
    parents = [self.shards[shard_id] for shard_id in shard_ids if shard_id in self.shards]
    kept = [parent.records for parent in parents]
    for parent in parents:
        parent.records = OrderedDict()
    try:
        reshard(self, *args)
    finally:
        for parent, records in zip(parents, kept, strict=True):
            parent.records = records


def _split_shard(self: models.Stream, shard_to_split: str, new_starting_hash_key: str) -> None:
    _keeping_records(self, [shard_to_split], _original_split, shard_to_split, new_starting_hash_key)


def _merge_shards(self: models.Stream, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
    _keeping_records(
        self,
        [shard_to_merge, adjacent_shard_to_merge],
        _original_merge,
        shard_to_merge,
        adjacent_shard_to_merge,
    )


def apply() -> None:
    """Idempotent: patches moto's Kinesis model classes in this process."""
    models.Stream.get_shard_for_key = _shard_for_key  # type: ignore[method-assign]
    models.Stream.split_shard = _split_shard  # type: ignore[method-assign]
    models.Stream.merge_shards = _merge_shards  # type: ignore[method-assign]


if __name__ == "__main__":
    import sys

    from moto.server import main

    apply()
    main(sys.argv[1:])
