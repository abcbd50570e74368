"""Makes moto's Kinesis reshard the way Kinesis does, for the embedded emulator.

moto 5.2.5 gets resharding wrong in three ways that a consumer of a resharded stream sees:
- routing a record looks at every shard, closed ones included, and the closed parent of a split
  comes first, so after SplitShard every new record still lands in the *closed* parent;
- SplitShard moves the parent's records out and puts them back in (new arrival times, and with
  the routing above, back into the parent); MergeShards copies both parents' records into the
  child, so a consumer that reads parents before children (as Lambda does) reads them twice;
- a key equal to a shard's EndingHashKey belongs to no shard (the range test is exclusive).

`apply()` patches those three methods of moto's Stream model in this process; it is idempotent.
The embedded emulator applies it in-process, and `python -m salesstream.moto_fixes` runs moto's
server with it in a child process.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any

from moto.kinesis.models import Shard, Stream
from moto.utilities.utils import md5_hash

_APPLIED = False


def _open_shard_for_key(self: Stream, partition_key: str, explicit_hash_key: str) -> Shard | None:
    # keep moto's own argument validation, then route among open shards with inclusive bounds
    Stream._moto_get_shard_for_key(self, partition_key, explicit_hash_key)  # type: ignore[attr-defined]
    if explicit_hash_key:
        key = int(explicit_hash_key)
    else:
        key = int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    return next(
        (s for s in self.shards.values() if s.is_open and s.starting_hash <= key <= s.ending_hash),
        None,
    )


def _keep_records(original: Any) -> Any:
    """Wrap a reshard operation so that records stay where Kinesis keeps them: in the parents."""

    def reshard(self: Stream, *args: Any, **kwargs: Any) -> None:
        before = {shard_id: shard.records for shard_id, shard in self.shards.items()}
        original(self, *args, **kwargs)
        for shard_id, shard in self.shards.items():
            shard.records = before.get(shard_id, OrderedDict())

    return reshard


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    Stream._moto_get_shard_for_key = Stream.get_shard_for_key  # type: ignore[attr-defined]
    Stream.get_shard_for_key = _open_shard_for_key  # type: ignore[method-assign]
    Stream.split_shard = _keep_records(Stream.split_shard)  # type: ignore[method-assign]
    Stream.merge_shards = _keep_records(Stream.merge_shards)  # type: ignore[method-assign]
    _APPLIED = True


if __name__ == "__main__":
    from moto.server import main

    apply()
    main(sys.argv[1:])
