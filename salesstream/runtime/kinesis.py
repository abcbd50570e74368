"""The Kinesis side: the shard list with its lineage, and reading one shard with GetRecords.

Shard end is judged from the shard list (a closed shard has an EndingSequenceNumber) and not
only from a null NextShardIterator: moto keeps handing out iterators for a closed shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from salesstream.runtime.model import RawRecord
from salesstream.runtime.shard_reader import Page, iterator_request


@dataclass(frozen=True, slots=True)
class ShardInfo:
    shard_id: str
    parents: tuple[str, ...]  # ParentShardId and AdjacentParentShardId, when present
    closed: bool


def list_shards(kinesis: Any, stream_name: str) -> list[ShardInfo]:
    shards: list[ShardInfo] = []
    request: dict[str, Any] = {"StreamName": stream_name}
    while True:
        page = kinesis.list_shards(**request)
        for shard in page["Shards"]:
            parents = tuple(
                parent
                for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
                if parent
            )
            closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
            shards.append(ShardInfo(shard["ShardId"], parents, closed))
        token = page.get("NextToken")
        if not token:
            return shards
        request = {"NextToken": token}  # the API refuses StreamName together with NextToken


@dataclass(frozen=True, slots=True)
class KinesisShardApi:
    """The Kinesis side of the shared shard reader (shard_reader.py)."""

    client: Any
    stream_name: str
    max_limit: int | None = None  # BatchSize never asks for more than Kinesis's 10,000
    throttled_error: ClassVar[str] = "ProvisionedThroughputExceededException"

    def new_iterator(self, shard_id: str, starting_position: str, after: str | None) -> str:
        stream = {"StreamName": self.stream_name}
        request = iterator_request(stream, shard_id, starting_position, after, "StartingSequenceNumber")
        return str(self.client.get_shard_iterator(**request)["ShardIterator"])

    def get_records(self, iterator: str, limit: int) -> Page:
        response = self.client.get_records(ShardIterator=iterator, Limit=limit)
        records = [
            RawRecord(
                sequence_number=record["SequenceNumber"],
                arrival_ms=round(record["ApproximateArrivalTimestamp"].timestamp() * 1000),
                data=record["Data"],
                partition_key=record["PartitionKey"],
            )
            for record in response["Records"]
        ]
        return Page(records, response.get("NextShardIterator"), response.get("MillisBehindLatest"))
