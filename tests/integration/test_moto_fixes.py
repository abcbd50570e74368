"""The embedded emulator reshards like AWS (moto 5.2.5 does not; see salesstream/moto_fixes.py)."""

from __future__ import annotations

from typing import Any

from producer.shards import HASH_KEY_MAX


def test_after_a_split_writes_go_to_the_children_and_the_parent_keeps_its_records(
    make_stack: Any, endpoint: Any
) -> None:
    template, _ = make_stack(ShardCount=1)
    stream = template.physical_name("OrdersStream")
    kinesis = endpoint.client("kinesis")
    middle = (HASH_KEY_MAX + 1) // 2
    before = kinesis.put_record(
        StreamName=stream, Data=b"before", PartitionKey="p", ExplicitHashKey=str(middle)
    )
    kinesis.split_shard(StreamName=stream, ShardToSplit=before["ShardId"], NewStartingHashKey=str(middle))

    low = kinesis.put_record(StreamName=stream, Data=b"low", PartitionKey="p", ExplicitHashKey="0")
    high = kinesis.put_record(StreamName=stream, Data=b"high", PartitionKey="p", ExplicitHashKey=str(middle))
    top = kinesis.put_record(
        StreamName=stream, Data=b"top", PartitionKey="p", ExplicitHashKey=str(HASH_KEY_MAX)
    )

    shards = {s["ShardId"]: s for s in kinesis.list_shards(StreamName=stream)["Shards"]}
    parent = shards[before["ShardId"]]
    assert "EndingSequenceNumber" in parent["SequenceNumberRange"]
    children = sorted(s for s, shard in shards.items() if shard.get("ParentShardId") == before["ShardId"])
    assert low["ShardId"] == children[0]
    assert high["ShardId"] == top["ShardId"] == children[1]  # the range's last key is inside it

    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=before["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]] == [b"before"]


def test_a_merge_leaves_the_parents_records_where_they_were(make_stack: Any, endpoint: Any) -> None:
    template, _ = make_stack(ShardCount=2)
    stream = template.physical_name("OrdersStream")
    kinesis = endpoint.client("kinesis")
    first, second = (s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"])
    kinesis.put_record(StreamName=stream, Data=b"a", PartitionKey="p", ExplicitHashKey="0")
    kinesis.merge_shards(StreamName=stream, ShardToMerge=first, AdjacentShardToMerge=second)
    merged = kinesis.put_record(StreamName=stream, Data=b"b", PartitionKey="p", ExplicitHashKey="0")
    assert merged["ShardId"] not in (first, second)

    def data(shard_id: str) -> list[bytes]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]]

    assert data(first) == [b"a"]
    assert data(merged["ShardId"]) == [b"b"]  # not a copy of the parents' records


def test_the_child_process_emulator_has_the_fixes_too() -> None:
    from salesstream.embedded import EmbeddedEmulator

    with EmbeddedEmulator(in_subprocess=True) as endpoint:
        kinesis = endpoint.client("kinesis")
        kinesis.create_stream(StreamName="fixes", ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(StreamName="fixes", WaiterConfig={"Delay": 0.1})
        middle = (HASH_KEY_MAX + 1) // 2
        kinesis.split_shard(
            StreamName="fixes", ShardToSplit="shardId-000000000000", NewStartingHashKey=str(middle)
        )
        landed = kinesis.put_record(
            StreamName="fixes", Data=b"x", PartitionKey="p", ExplicitHashKey=str(middle)
        )
        assert landed["ShardId"] != "shardId-000000000000"
