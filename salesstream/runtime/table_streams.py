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
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from salesstream.runtime.kinesis import ShardInfo
from salesstream.runtime.model import RuntimeConfigError, TableChange
from salesstream.runtime.shard_reader import Page, iterator_request

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


@dataclass(frozen=True, slots=True)
class TableShardApi:
    """The DynamoDB Streams side of the shared shard reader (shard_reader.py)."""

    client: Any
    stream_arn: str
    max_limit: int | None = GET_RECORDS_LIMIT
    throttled_error: ClassVar[str] = "LimitExceededException"

    def new_iterator(self, shard_id: str, starting_position: str, after: str | None) -> str:
        stream = {"StreamArn": self.stream_arn}
        request = iterator_request(stream, shard_id, starting_position, after, "SequenceNumber")
        return str(self.client.get_shard_iterator(**request)["ShardIterator"])

    def get_records(self, iterator: str, limit: int) -> Page:
        response = self.client.get_records(ShardIterator=iterator, Limit=limit)
        records = [
            TableChange(record["dynamodb"]["SequenceNumber"], creation_ms(record), record)
            for record in response["Records"]
        ]
        return Page(records, response.get("NextShardIterator"), None)
