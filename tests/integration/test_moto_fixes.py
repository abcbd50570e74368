"""The embedded emulator reshards like Kinesis (salesstream/moto_fixes.py)."""

from __future__ import annotations

from typing import Any


def _records(kinesis: Any, stream: str, shard_id: str) -> list[tuple[str, bytes, Any]]:
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return [(r["SequenceNumber"], r["Data"], r["ApproximateArrivalTimestamp"]) for r in records]


def test_a_split_keeps_the_parents_records_and_routes_new_ones_to_the_children(
    make_stack: Any, endpoint: Any
) -> None:
    template, _ = make_stack(ShardCount=1)
    stream = template.streams()[0].name
    kinesis = endpoint.client("kinesis")
    for i in range(4):
        kinesis.put_record(StreamName=stream, Data=b"before%d" % i, PartitionKey=f"k{i}")
    before = _records(kinesis, stream, "shardId-000000000000")
    kinesis.split_shard(
        StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127)
    )
    placed = {
        kinesis.put_record(StreamName=stream, Data=b"after%d" % i, PartitionKey=f"k{i}")["ShardId"]
        for i in range(8)
    }
    assert _records(kinesis, stream, "shardId-000000000000") == before  # same sequences and arrival times
    assert placed <= {"shardId-000000000001", "shardId-000000000002"}  # never the closed parent
    (parent,) = [s for s in kinesis.list_shards(StreamName=stream)["Shards"] if s["ShardId"].endswith("0")]
    assert parent["SequenceNumberRange"]["EndingSequenceNumber"] == before[-1][0]


def test_a_merge_does_not_copy_the_parents_records_into_the_child(make_stack: Any, endpoint: Any) -> None:
    template, _ = make_stack(ShardCount=2)
    stream = template.streams()[0].name
    kinesis = endpoint.client("kinesis")
    for i in range(6):
        kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey=f"k{i}")
    kinesis.merge_shards(
        StreamName=stream, ShardToMerge="shardId-000000000000", AdjacentShardToMerge="shardId-000000000001"
    )
    assert _records(kinesis, stream, "shardId-000000000002") == []
    top = str(2**128 - 1)  # a shard's EndingHashKey belongs to it
    put = kinesis.put_record(StreamName=stream, Data=b"y", PartitionKey="z", ExplicitHashKey=top)
    assert put["ShardId"] == "shardId-000000000002"


def test_the_child_process_emulator_has_the_fixes_too() -> None:
    from salesstream.embedded import EmbeddedEmulator

    with EmbeddedEmulator(in_subprocess=True) as endpoint:
        kinesis = endpoint.client("kinesis")
        kinesis.create_stream(StreamName="fixes", ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(StreamName="fixes", WaiterConfig={"Delay": 0.1})
        middle = 2**127
        kinesis.split_shard(
            StreamName="fixes", ShardToSplit="shardId-000000000000", NewStartingHashKey=str(middle)
        )
        landed = kinesis.put_record(
            StreamName="fixes", Data=b"x", PartitionKey="p", ExplicitHashKey=str(middle)
        )
        assert landed["ShardId"] != "shardId-000000000000"
