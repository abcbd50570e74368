"""The embedded emulator reshards like Kinesis, and its DynamoDB transactions back up only the
items they touch (salesstream/moto_fixes.py)."""

from __future__ import annotations

from typing import Any

import pytest


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


def _table(make_stack: Any, endpoint: Any) -> tuple[Any, str]:
    template, _ = make_stack()
    return endpoint.client("dynamodb"), template.physical_name("AggregatesTable")


def _item(pk: str, sk: str, **numbers: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"N": str(v)} for k, v in numbers.items()}}


def _update(table: str, pk: str, add: int, *, condition: str | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {
        "TableName": table,
        "Key": {"pk": {"S": pk}, "sk": {"S": "x"}},
        "UpdateExpression": "ADD n :n",
        "ExpressionAttributeValues": {":n": {"N": str(add)}},
    }
    if condition:
        update["ConditionExpression"] = condition
    return {"Update": update}


def test_a_cancelled_transaction_leaves_every_item_as_it_was(make_stack: Any, endpoint: Any) -> None:
    dynamodb, table = _table(make_stack, endpoint)
    for i in range(50):  # bystanders: the transaction must neither copy nor change them
        dynamodb.put_item(TableName=table, Item=_item(f"other{i}", "x", n=i))
    dynamodb.put_item(TableName=table, Item=_item("a", "x", n=1))
    before = sorted(map(str, dynamodb.scan(TableName=table)["Items"]))
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                _update(table, "a", 10),  # applied by moto, then undone
                {"Put": {"TableName": table, "Item": _item("new", "x", n=5)}},  # created, then removed
                _update(table, "b", 1, condition="attribute_exists(n)"),  # fails: cancels the lot
            ]
        )
    assert sorted(map(str, dynamodb.scan(TableName=table)["Items"])) == before


def test_a_transaction_that_succeeds_applies_every_item(make_stack: Any, endpoint: Any) -> None:
    dynamodb, table = _table(make_stack, endpoint)
    dynamodb.put_item(TableName=table, Item=_item("a", "x", n=1))
    dynamodb.transact_write_items(
        TransactItems=[_update(table, "a", 10), _update(table, "b", 2, condition="attribute_not_exists(n)")]
    )
    got = {item["pk"]["S"]: item["n"]["N"] for item in dynamodb.scan(TableName=table)["Items"]}
    assert got == {"a": "11", "b": "2"}


def test_a_transaction_never_copies_a_whole_table() -> None:
    import moto.dynamodb.models as models
    from moto.dynamodb.models.table import Table

    from salesstream import moto_fixes

    moto_fixes.apply()
    table = Table(
        "t",
        "us-east-1",
        "123456789012",
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        attr=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    assert models.copy.deepcopy(table) is table  # moto's per-item backup of the table is gone
    assert models.copy.deepcopy({"a": [1]}) == {"a": [1]}  # anything else is still copied


def test_answers_still_carry_a_request_id(make_stack: Any, endpoint: Any) -> None:
    template, _ = make_stack()
    answer = endpoint.client("dynamodb").describe_table(TableName=template.physical_name("AggregatesTable"))
    assert answer["ResponseMetadata"]["RequestId"]
    queue_url = next(iter(template.queues())).name
    sqs = endpoint.client("sqs")
    assert sqs.get_queue_url(QueueName=queue_url)["ResponseMetadata"]["RequestId"]
