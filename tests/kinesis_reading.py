"""Reading a whole stream back, for tests that check what really landed where."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from producer.shards import ShardMap
from salesstream.core.kpl import UserRecord, deaggregate


@dataclass(frozen=True)
class Landed:
    """One Kinesis record as stored, with the user records inside it."""

    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    user_records: list[UserRecord]

    def event_ids(self) -> list[str]:
        return [json.loads(record.data)["event_id"] for record in self.user_records]


def read_stream(kinesis: Any, stream_name: str) -> tuple[ShardMap, list[Landed]]:
    """Every record of every shard (closed ones too), oldest first per shard."""
    shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
    landed = []
    for shard in shards:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            if not page["Records"]:
                break
            for record in page["Records"]:
                landed.append(
                    Landed(
                        shard["ShardId"],
                        record["SequenceNumber"],
                        record["PartitionKey"],
                        record["Data"],
                        deaggregate(record["Data"], record["PartitionKey"]),
                    )
                )
            iterator = page.get("NextShardIterator")
    return ShardMap.from_api(shards), landed


def all_event_ids(landed: list[Landed]) -> list[str]:
    return [event_id for record in landed for event_id in record.event_ids()]
