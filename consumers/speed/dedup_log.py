"""The durable side of the dedup index: one S3 object per invocation that folded records.

`dedup/<shardId>/<first arrival ms>-<first position>-<last position>.jsonl` in ARCHIVE_BUCKET
holds the event ids that invocation folded, with their positions and effects (encoding in
salesstream/core/dedup.py). S3 charges per request, not per byte: one PUT per invocation of
~10k events is ~$0.0005 per million events, where one DynamoDB write per event is ~$0.63.

Before judging a batch the process catches its index up with the log:
- the state proves the index current (it names the log object of the invocation that produced
  it, and this process has that object): no request at all;
- the shard is new to this process (a cold start): LIST the shard's objects from the batch's
  first arrival minus horizon and window, and the same for all its ancestor shards (a producer
  with a stale shard map may resend into a child; after a merge then a split, a grandchild),
  then GET them;
- otherwise: LIST only the keys after the newest one it knows (StartAfter).
Objects written by invocations that later failed are harmless either way: their records are
redelivered at the same positions, which the index judges as replays.
"""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from salesstream.core.dedup import (
    DedupIndex,
    LoggedRecord,
    decode_log,
    encode_log,
    log_key,
    log_prefix,
    log_start_after,
)
from salesstream.core.positions import Position

if TYPE_CHECKING:
    from consumers.common.shards import StreamShards

_PARALLEL_GETS: Final = 8


@dataclass(frozen=True)
class CatchUp:
    listed: bool = False
    objects: int = 0
    entries: int = 0


@dataclass
class DedupLog:
    s3: Any
    shards: StreamShards
    bucket: str
    window_ms: int

    def catch_up(
        self,
        index: DedupIndex,
        shard: str,
        first_arrival_ms: int,
        state_log_key: str | None,
        *,
        ancestors: list[str] | None = None,
    ) -> CatchUp:
        """`ancestors`: the shards whose logs count too on a cold start (None: the Kinesis
        stream's lineage of `shard`)."""
        if state_log_key is not None and index.knows_log(shard, state_log_key):
            return CatchUp()
        if index.knows_shard(shard):
            start_after = index.last_log(shard) or log_start_after(shard, first_arrival_ms - index.horizon_ms)
            return self._load(index, [(shard, start_after)])
        since = first_arrival_ms - index.horizon_ms - self.window_ms
        lineage = self.shards.ancestors(shard) if ancestors is None else ancestors
        sources = [(ancestor, log_start_after(ancestor, since)) for ancestor in lineage]
        loaded = self._load(index, [*sources, (shard, log_start_after(shard, since))])
        index.track(shard)
        # what was just loaded lives for a horizon: keep it out of the collector's full passes
        gc.freeze()
        return loaded

    def append(self, index: DedupIndex, shard: str, logged: list[LoggedRecord]) -> str:
        """Write what this invocation folded; returns the object's key (the state carries it)."""
        first_sequence, first_arrival, first_users = logged[0]
        last_sequence, _, last_users = logged[-1]
        key = log_key(
            shard,
            first_arrival,
            Position.of(first_sequence, first_users[0][1]),
            Position.of(last_sequence, last_users[-1][1]),
        )
        # keyed by the folded range: a replayed invocation writes the same key with the same body
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=encode_log(logged))
        index.note_log(shard, key)
        return key

    def _load(self, index: DedupIndex, sources: list[tuple[str, str]]) -> CatchUp:
        keys: list[tuple[str, str]] = []
        for shard, start_after in sources:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=log_prefix(shard), StartAfter=start_after
            )
            keys.extend(
                (shard, entry["Key"])
                for page in pages
                for entry in page.get("Contents", [])
                if not index.knows_log(shard, entry["Key"])
            )
        entries = 0
        with ThreadPoolExecutor(max_workers=_PARALLEL_GETS) as pool:
            bodies = pool.map(lambda source: self._get(source[1]), keys)
            for (shard, key), body in zip(keys, bodies, strict=True):
                entries += index.load(shard, decode_log(body))
                index.note_log(shard, key)
        return CatchUp(listed=True, objects=len(keys), entries=entries)

    def _get(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body
