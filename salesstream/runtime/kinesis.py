"""The Kinesis side: the shard list with its lineage, and reading one shard with GetRecords.

Shard end is judged from the shard list (a closed shard has an EndingSequenceNumber) and not
only from a null NextShardIterator: moto keeps handing out iterators for a closed shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from salesstream.runtime.model import Fetch, RawRecord


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


class ShardReader:
    """Sequential GetRecords on one shard, resuming after a sequence number."""

    def __init__(self, kinesis: Any, stream_name: str, shard_id: str, starting_position: str) -> None:
        self._kinesis = kinesis
        self._stream_name = stream_name
        self.shard_id = shard_id
        self._starting_position = starting_position
        self._after: str | None = None
        self._iterator: str | None = None

    def reset(self, after: str | None) -> None:
        """Read next after this sequence number (None: from the starting position)."""
        self._after, self._iterator = after, None

    def _new_iterator(self) -> str:
        request: dict[str, Any] = {"StreamName": self._stream_name, "ShardId": self.shard_id}
        if self._after is None:
            request["ShardIteratorType"] = self._starting_position
        else:
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["StartingSequenceNumber"] = self._after
        return str(self._kinesis.get_shard_iterator(**request)["ShardIterator"])

    def read(self, limit: int) -> Fetch:
        errors = self._kinesis.exceptions
        try:
            iterator = self._iterator or self._new_iterator()
            response = self._kinesis.get_records(ShardIterator=iterator, Limit=limit)
        except errors.ExpiredIteratorException:
            self._iterator = None  # iterators live 5 minutes; the next read asks for a new one
            return Fetch([], None, caught_up=False)
        except errors.ProvisionedThroughputExceededException:
            return Fetch([], None, caught_up=False, throttled=True)
        records = [
            RawRecord(
                sequence_number=record["SequenceNumber"],
                arrival_ms=round(record["ApproximateArrivalTimestamp"].timestamp() * 1000),
                data=record["Data"],
                partition_key=record["PartitionKey"],
            )
            for record in response["Records"]
        ]
        if records:
            self._after = records[-1].sequence_number
        self._iterator = response.get("NextShardIterator")
        millis_behind = response.get("MillisBehindLatest")
        end_of_shard = self._iterator is None
        if end_of_shard:
            self._iterator = None
        return Fetch(
            records,
            millis_behind,
            caught_up=end_of_shard or (len(records) < limit and not millis_behind),
            end_of_shard=end_of_shard,
        )
