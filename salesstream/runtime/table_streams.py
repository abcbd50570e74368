"""The DynamoDB Streams side: a table's stream shards with their lineage, and reading one shard.

What differs from Kinesis (AWS Lambda Developer Guide, with-ddb; DynamoDB Streams API reference):
- shards are listed by DescribeStream (paged with ExclusiveStartShardId), each naming at most
  one parent (`ParentShardId`): DynamoDB rolls a shard about every 4 hours and on partition
  splits, and a child is read only after its parent is finished, as for Kinesis;
- GetRecords returns at most 1,000 records and no MillisBehindLatest: a read is caught up when
  it returns fewer records than it asked for;
- iterators expire after 15 minutes; records are kept for 24 hours (TrimmedDataAccessException
  past that); at most two readers per shard;
- the record's time is `ApproximateCreationDateTime`, rounded down to the second: windows are
  assigned by it, as Kinesis's by ApproximateArrivalTimestamp.
"""

from __future__ import annotations

import math
from typing import Any, Final

from salesstream.runtime.kinesis import ShardInfo
from salesstream.runtime.model import Fetch, RuntimeConfigError, TableChange

GET_RECORDS_LIMIT: Final = 1000  # DynamoDB Streams' maximum Limit (Kinesis: 10,000)


def table_stream_arn(dynamodb: Any, table_name: str) -> str:
    """The table's current stream (its label is chosen by DynamoDB, not by the template)."""
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    arn = table.get("LatestStreamArn")
    if not arn or not table.get("StreamSpecification", {}).get("StreamEnabled", True):
        raise RuntimeConfigError(f"table {table_name} has no stream: give it a StreamSpecification")
    return str(arn)


def list_table_shards(streams: Any, stream_arn: str) -> list[ShardInfo]:
    shards: list[ShardInfo] = []
    request: dict[str, Any] = {"StreamArn": stream_arn}
    while True:
        description = streams.describe_stream(**request)["StreamDescription"]
        for shard in description["Shards"]:
            parents = (shard["ParentShardId"],) if shard.get("ParentShardId") else ()
            closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
            shards.append(ShardInfo(shard["ShardId"], parents, closed))
        last = description.get("LastEvaluatedShardId")
        if not last:
            return shards
        request = {"StreamArn": stream_arn, "ExclusiveStartShardId": last}


def creation_ms(record: dict[str, Any]) -> int:
    """ApproximateCreationDateTime (a datetime in boto3) as epoch ms, floored to the second as
    AWS stamps it (an emulator may give a finer one)."""
    created = record["dynamodb"]["ApproximateCreationDateTime"]
    seconds = created.timestamp() if hasattr(created, "timestamp") else float(created)
    return math.floor(seconds) * 1000


class TableShardReader:
    """Sequential GetRecords on one shard of a table's stream, resuming after a sequence number."""

    def __init__(self, streams: Any, stream_arn: str, shard_id: str, starting_position: str) -> None:
        self._streams = streams
        self._stream_arn = stream_arn
        self.shard_id = shard_id
        self._starting_position = starting_position
        self._after: str | None = None
        self._iterator: str | None = None

    def reset(self, after: str | None) -> None:
        """Read next after this sequence number (None: from the starting position)."""
        self._after, self._iterator = after, None

    def _new_iterator(self) -> str:
        request: dict[str, Any] = {"StreamArn": self._stream_arn, "ShardId": self.shard_id}
        if self._after is None:
            request["ShardIteratorType"] = self._starting_position
        else:
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["SequenceNumber"] = self._after
        return str(self._streams.get_shard_iterator(**request)["ShardIterator"])

    def read(self, limit: int) -> Fetch:
        errors = self._streams.exceptions
        limit = min(limit, GET_RECORDS_LIMIT)
        try:
            # kept across a throttled read: a retry needs no new iterator
            self._iterator = self._iterator or self._new_iterator()
            response = self._streams.get_records(ShardIterator=self._iterator, Limit=limit)
        except errors.ExpiredIteratorException:
            self._iterator = None  # iterators live 15 minutes; the next read asks for a new one
            return Fetch([], None, caught_up=False)
        except errors.LimitExceededException:
            return Fetch([], None, caught_up=False, throttled=True)
        records = [
            TableChange(record["dynamodb"]["SequenceNumber"], creation_ms(record), record)
            for record in response["Records"]
        ]
        if records:
            self._after = records[-1].sequence_number
        self._iterator = response.get("NextShardIterator")
        end_of_shard = self._iterator is None
        return Fetch(
            records,
            None,
            caught_up=end_of_shard or len(records) < limit,
            end_of_shard=end_of_shard,
        )
