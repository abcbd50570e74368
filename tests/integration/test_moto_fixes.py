"""The embedded emulator reshards like Kinesis, and its DynamoDB transactions back up only the
items they touch (salesstream/emulator/moto_fixes.py)."""

from __future__ import annotations

import uuid
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
    from salesstream.emulator.embedded import EmbeddedEmulator

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

    from salesstream.emulator import moto_fixes

    moto_fixes.apply()
    table = Table(  # type: ignore[abstract]  # moto declares CloudFormation hooks it never implements
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


# --- the expression patches: same answers, each expression worked out once -----------------


def _guarded_add(table: str, pk: str, names: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """One expression string for every call; only the names and values differ."""
    return {
        "TableName": table,
        "Key": {"pk": {"S": pk}, "sk": {"S": "x"}},
        "UpdateExpression": "SET #wm = :segment ADD #a :a, #b :b",
        "ConditionExpression": "attribute_not_exists(#wm) OR #wm < :segment",
        "ExpressionAttributeNames": {"#wm": "wm", **names},
        "ExpressionAttributeValues": values,
    }


def _values(segment: str, a: int, b: int) -> dict[str, Any]:
    return {":segment": {"S": segment}, ":a": {"N": str(a)}, ":b": {"N": str(b)}}


def test_one_expression_with_different_values_names_and_items(make_stack: Any, endpoint: Any) -> None:
    dynamodb, table = _table(make_stack, endpoint)
    dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": _guarded_add(
                    table, f"item{i}", {"#a": "orders", "#b": "gross"}, _values("s1", i, 10 * i)
                )
            }
            for i in range(1, 6)
        ]
    )
    dynamodb.transact_write_items(
        TransactItems=[
            {"Update": _guarded_add(table, "item1", {"#a": "orders", "#b": "gross"}, _values("s2", 100, 1))},
            {"Update": _guarded_add(table, "item2", {"#a": "refunds", "#b": "gross"}, _values("s2", 7, 2))},
        ]
    )
    dynamodb.update_item(**_guarded_add(table, "item3", {"#a": "orders", "#b": "net"}, _values("s3", 1, 5)))
    got = {
        item["pk"]["S"]: {k: v.get("N", v.get("S")) for k, v in item.items() if k not in ("pk", "sk")}
        for item in dynamodb.scan(TableName=table)["Items"]
    }
    assert got == {
        "item1": {"wm": "s2", "orders": "101", "gross": "11"},
        "item2": {"wm": "s2", "orders": "2", "refunds": "7", "gross": "22"},
        "item3": {"wm": "s3", "orders": "4", "gross": "30", "net": "5"},
        "item4": {"wm": "s1", "orders": "4", "gross": "40"},
        "item5": {"wm": "s1", "orders": "5", "gross": "50"},
    }


def test_a_failing_condition_still_cancels_with_the_old_item(make_stack: Any, endpoint: Any) -> None:
    dynamodb, table = _table(make_stack, endpoint)
    names = {"#a": "orders", "#b": "gross"}
    dynamodb.update_item(**_guarded_add(table, "a", names, _values("s5", 1, 1)))
    replay = [
        {"Update": _guarded_add(table, "b", names, _values("s5", 1, 1))},  # passes: b is new
        {
            "Update": {
                **_guarded_add(table, "a", names, _values("s5", 1, 1)),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ]
    for _ in range(2):  # the second time every expression is a known one
        with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
            dynamodb.transact_write_items(TransactItems=replay)
        reasons = cancelled.value.response["CancellationReasons"]
        assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
        assert reasons[1]["Item"]["wm"] == {"S": "s5"}
        assert reasons[1]["Item"]["orders"] == {"N": "1"}
    assert [item["pk"]["S"] for item in dynamodb.scan(TableName=table)["Items"]] == ["a"]


def test_a_known_expression_is_still_refused_when_its_names_make_it_invalid(
    make_stack: Any, endpoint: Any
) -> None:
    dynamodb, table = _table(make_stack, endpoint)
    dynamodb.update_item(**_guarded_add(table, "a", {"#a": "orders", "#b": "gross"}, _values("s1", 1, 1)))
    for names, message in (
        ({"#a": "orders", "#b": "orders"}, "Two document paths overlap"),  # the same attribute twice
        ({"#a": "pk", "#b": "gross"}, "part of the key"),  # a key attribute
    ):
        for _ in range(2):
            with pytest.raises(dynamodb.exceptions.ClientError, match=message):
                dynamodb.update_item(**_guarded_add(table, "a", names, _values("s2", 1, 1)))
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"S": "x"}})["Item"]
    assert (item["wm"], item["orders"], item["gross"]) == ({"S": "s1"}, {"N": "1"}, {"N": "1"})


def test_two_clauses_of_one_kind_are_refused_every_time(make_stack: Any, endpoint: Any) -> None:
    dynamodb, table = _table(make_stack, endpoint)
    for _ in range(2):
        with pytest.raises(dynamodb.exceptions.ClientError, match='The "SET" section can only be used once'):
            dynamodb.update_item(
                TableName=table,
                Key={"pk": {"S": "a"}, "sk": {"S": "x"}},
                UpdateExpression="SET a = :v SET b = :v",
                ExpressionAttributeValues={":v": {"N": "1"}},
            )


def test_the_expression_patches_are_in_force_and_can_be_switched_for_a_benchmark(endpoint: Any) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]  # untyped in moto

    from salesstream.emulator import moto_fixes

    patched = vars(UpdateExpressionParser)["make"]
    assert patched.__func__ is moto_fixes._make_update_expression  # applied with the emulator
    with moto_fixes.only_expression_patches([]):
        assert (
            vars(UpdateExpressionParser)["make"]
            is moto_fixes._ORIGINALS[moto_fixes.EXPRESSION_PATCHES["parse each update expression once"][0]]
        )
    assert vars(UpdateExpressionParser)["make"] is patched
    with (
        pytest.raises(ValueError, match="no such expression patch"),
        moto_fixes.only_expression_patches(["cache everything"]),
    ):
        pass


def test_the_expression_patches_are_tied_to_the_pinned_moto() -> None:
    import tomllib
    from pathlib import Path

    import moto

    from salesstream.emulator import moto_fixes

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    project = pyproject["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    pinned = [r for r in requirements if r.startswith("moto")]
    assert pinned == [f"moto[server]=={moto_fixes.EXPRESSIONS_WRITTEN_FOR}"]
    assert moto.__version__ == moto_fixes.EXPRESSIONS_WRITTEN_FOR


def test_scan_and_query_answer_what_motos_serializer_answers(endpoint: Any) -> None:
    from moto.core.responses import BaseResponse
    from moto.dynamodb.responses import DynamoHandler

    dynamodb = endpoint.client("dynamodb")
    table = "items-" + uuid.uuid4().hex[:8]
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    every_type = {
        "s": {"S": 'é ünïcode "quoted"'},
        "n": {"N": "-12.50"},
        "yes": {"BOOL": True},
        "nothing": {"NULL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "l": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"deep": {"L": []}}}]},
        "m": {"M": {"k": {"S": "v"}, "empty": {"M": {}}}},
    }
    for n in range(30):
        dynamodb.put_item(
            TableName=table, Item={"pk": {"S": f"p{n % 3}"}, "sk": {"S": f"s{n:02d}"}, **every_type}
        )
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "bin"}, "sk": {"S": "b"}, "b": {"B": b"\x00\xff"}})
    requests: list[tuple[str, dict[str, Any]]] = [
        ("scan", {"TableName": table}),
        ("scan", {"TableName": table, "Limit": 7}),  # a page: LastEvaluatedKey
        ("scan", {"TableName": table, "Select": "COUNT"}),
        (
            "query",
            {
                "TableName": table,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "p1"}},
            },
        ),
        (
            "query",
            {
                "TableName": table,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "bin"}},
            },
        ),
        (
            "query",
            {
                "TableName": table,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "none"}},
            },
        ),
    ]

    def answers() -> list[dict[str, Any]]:
        found = [getattr(dynamodb, operation)(**request) for operation, request in requests]
        for answer in found:
            answer.pop("ResponseMetadata")
        return found

    fast = answers()
    patched = DynamoHandler.serialized
    assert patched is not BaseResponse.serialized  # the fix is in force for `fast`
    try:
        DynamoHandler.serialized = BaseResponse.serialized  # type: ignore[method-assign]  # moto's own
        shipped = answers()
    finally:
        DynamoHandler.serialized = patched  # type: ignore[method-assign]
    assert fast == shipped
    assert [len(answer.get("Items", [])) for answer in fast] == [31, 7, 0, 10, 1, 0]
    assert fast[1]["LastEvaluatedKey"]
    assert fast[4]["Items"][0]["b"] == {"B": b"\x00\xff"}  # a binary attribute: moto's own path
    dynamodb.delete_table(TableName=table)
