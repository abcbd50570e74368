"""The streams the archive is fed from, as the snapshot's horizon sees them: each lists its
shards and probes one after its last archived record. One small adapter per source, so the
snapshot asks every source the same two questions:

- `KinesisShards`: the orders stream (ListShards; GetRecords' `MillisBehindLatest` says when a
  read reached the tip);
- `TableStreamShards`: the orders table's stream, when the table source is on (DynamoDB Streams
  DescribeStream, paged by `ExclusiveStartShardId`; no lag figure, so what "caught up" means is
  the pure rule `table_stream_probe` in salesstream/core/recompute.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from salesstream.core.recompute import Probe, ProbeRead, table_stream_probe

if TYPE_CHECKING:
    from consumers.batch.resources import BatchResources

_PROBE_READS: Final = 5
# AWS documents that a DynamoDB Streams read can come back empty while records follow ("it
# might take multiple calls to get to a portion of the shard that contains stream records")
_TABLE_EMPTY_READS: Final = 5


class TableStreamMissing(RuntimeError):
    """The table source is configured, but its table has no enabled stream to probe."""


@dataclass(frozen=True, slots=True)
class ListedShard:
    shard_id: str
    ending_sequence: str | None  # the shard's EndingSequenceNumber: it is closed

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None


class ShardSource(Protocol):
    def list_shards(self) -> list[ListedShard]:
        """Every shard the stream still lists."""
        ...

    def probe(self, shard: ListedShard, after_sequence: str | None) -> Probe:
        """What the stream holds after the shard's last archived record (None: nothing archived)."""
        ...


@dataclass(frozen=True)
class KinesisShards:
    kinesis: Any
    stream_name: str

    def list_shards(self) -> list[ListedShard]:
        pages = self.kinesis.get_paginator("list_shards").paginate(StreamName=self.stream_name)
        return [
            ListedShard(shard["ShardId"], shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber"))
            for page in pages
            for shard in page["Shards"]
        ]

    def probe(self, shard: ListedShard, after_sequence: str | None) -> Probe:
        start: dict[str, Any] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after_sequence}
            if after_sequence
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = self.kinesis.get_shard_iterator(
            StreamName=self.stream_name, ShardId=shard.shard_id, **start
        )["ShardIterator"]
        for _ in range(_PROBE_READS):  # a read may come back empty while records follow
            answer = self.kinesis.get_records(ShardIterator=iterator, Limit=1)
            if answer["Records"]:
                arrival = answer["Records"][0]["ApproximateArrivalTimestamp"]
                return Probe(round(arrival.timestamp() * 1000), shard_ended=False, caught_up=False)
            iterator = answer.get("NextShardIterator")
            if iterator is None or shard.closed:
                return Probe(None, shard_ended=True, caught_up=True)
            if answer.get("MillisBehindLatest", 1) == 0:
                return Probe(None, shard_ended=False, caught_up=True)
        return Probe(None, shard_ended=False, caught_up=False)


@dataclass(frozen=True)
class TableStreamShards:
    streams: Any  # a DynamoDB Streams client
    stream_arn: str

    @classmethod
    def of_table(cls, dynamodb: Any, streams: Any, table_name: str) -> TableStreamShards:
        """The table's current stream: its label is chosen by DynamoDB when the stream is enabled,
        so it is asked for (DescribeTable `LatestStreamArn`), not configured."""
        table = dynamodb.describe_table(TableName=table_name)["Table"]
        arn = table.get("LatestStreamArn")
        if not arn or not table.get("StreamSpecification", {}).get("StreamEnabled", False):
            raise TableStreamMissing(
                f"ORDERS_TABLE {table_name} has no enabled stream: the snapshot cannot tell how much "
                "of it the archive holds"
            )
        return cls(streams, str(arn))

    def list_shards(self) -> list[ListedShard]:
        shards: list[ListedShard] = []
        request: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.streams.describe_stream(**request)["StreamDescription"]
            shards += [
                ListedShard(
                    shard["ShardId"], shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                )
                for shard in description["Shards"]
            ]
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            request = {"StreamArn": self.stream_arn, "ExclusiveStartShardId": last}

    def probe(self, shard: ListedShard, after_sequence: str | None) -> Probe:
        return table_stream_probe(
            self._reads(shard.shard_id, after_sequence),
            after_sequence=after_sequence,
            ending_sequence=shard.ending_sequence,
            empty_reads=_TABLE_EMPTY_READS,
        )

    def _reads(self, shard_id: str, after_sequence: str | None) -> Iterator[ProbeRead]:
        """The shard's pages from just after the last archived record, one record at a time,
        for as long as the rule asks (a generator: nothing is read before it is needed)."""
        start: dict[str, Any] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after_sequence}
            if after_sequence
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator: str | None = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard_id, **start
        )["ShardIterator"]
        while iterator is not None:
            answer = self.streams.get_records(ShardIterator=iterator, Limit=1)
            iterator = answer.get("NextShardIterator")
            records = answer["Records"]
            # the archive stamps a table record with its creation time in whole seconds, as AWS
            # gives it (an emulator may give a finer one): the probe compares the same clock
            created = records[0]["dynamodb"]["ApproximateCreationDateTime"] if records else None
            yield ProbeRead(
                None if created is None else math.floor(created.timestamp()) * 1000,
                more=iterator is not None,
            )


def shard_sources(resources: BatchResources) -> list[ShardSource]:
    """The orders stream, and the orders table's stream when the table source is on."""
    settings = resources.settings
    sources: list[ShardSource] = [KinesisShards(resources.kinesis, settings.stream_name)]
    if settings.orders_table:
        sources.append(
            TableStreamShards.of_table(resources.dynamodb, resources.dynamodbstreams, settings.orders_table)
        )
    return sources
