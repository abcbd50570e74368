"""The embedded emulator's DynamoDB Streams keeps what AWS documents for GetShardIterator and
GetRecords with its faster GetRecords, its 1 MB page and its shard roll
(salesstream/emulator/moto_fixes.py), through the real boto3 clients."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from salesstream.emulator import moto_fixes
from salesstream.emulator.embedded import EmulatorError, roll_table_stream
from salesstream.emulator.targets import Endpoint, Target


@pytest.fixture
def table(endpoint: Any) -> Iterator[str]:
    dynamodb = endpoint.client("dynamodb")
    name = "streams-" + uuid.uuid4().hex[:10]
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    yield name
    dynamodb.delete_table(TableName=name)


def _put(endpoint: Any, table: str, event_id: str, amount: int, padding: str = "") -> None:
    item = {
        "event_id": {"S": event_id},
        "amount": {"N": str(amount)},
        "lines": {"L": [{"M": {"sku": {"S": "a"}}}]},
    }
    if padding:
        item["padding"] = {"S": padding}
    endpoint.client("dynamodb").put_item(TableName=table, Item=item)


def _arn(endpoint: Any, table: str) -> str:
    return str(endpoint.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"])


def _shards(endpoint: Any, table: str) -> list[dict[str, Any]]:
    streams = endpoint.client("dynamodbstreams")
    return list(streams.describe_stream(StreamArn=_arn(endpoint, table))["StreamDescription"]["Shards"])


def _iterator(endpoint: Any, table: str, shard_id: str, kind: str, sequence: str | None = None) -> str:
    request = {"StreamArn": _arn(endpoint, table), "ShardId": shard_id, "ShardIteratorType": kind}
    if sequence is not None:
        request["SequenceNumber"] = sequence
    return str(endpoint.client("dynamodbstreams").get_shard_iterator(**request)["ShardIterator"])


def _read_all(
    endpoint: Any, iterator: str, limit: int = 1000
) -> tuple[list[list[dict[str, Any]]], str | None]:
    """Every page up to the first empty one (or the shard's end): (pages, the last NextShardIterator)."""
    streams = endpoint.client("dynamodbstreams")
    pages: list[list[dict[str, Any]]] = []
    next_iterator: str | None = iterator
    while next_iterator is not None:
        answer = streams.get_records(ShardIterator=next_iterator, Limit=limit)
        next_iterator = answer.get("NextShardIterator")
        if not answer["Records"]:
            break
        pages.append(answer["Records"])
    return pages, next_iterator


def _sequences(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["dynamodb"]["SequenceNumber"]) for r in records]


def test_get_records_answers_what_motos_serializer_answers(endpoint: Any, table: str) -> None:
    for number in range(5):
        _put(endpoint, table, f"e{number}", number)
    _put(endpoint, table, "e1", 10)  # a MODIFY with both images
    endpoint.client("dynamodb").delete_item(TableName=table, Key={"event_id": {"S": "e2"}})
    (shard,) = _shards(endpoint, table)
    iterator = _iterator(endpoint, table, shard["ShardId"], "TRIM_HORIZON")
    streams = endpoint.client("dynamodbstreams")
    fast = streams.get_records(ShardIterator=iterator)
    try:
        moto_fixes.apply_stream_patches(fast_get_records=False)
        shipped = streams.get_records(ShardIterator=iterator)
    finally:
        moto_fixes.apply_stream_patches()
    assert [r["eventName"] for r in fast["Records"]] == ["INSERT"] * 5 + ["MODIFY", "REMOVE"]
    assert fast["Records"] == shipped["Records"]  # images, keys, times, sizes: as boto3 parses them
    assert fast["NextShardIterator"]
    assert shipped["NextShardIterator"]
    assert (
        fast["ResponseMetadata"]["HTTPHeaders"]["content-type"]
        == (shipped["ResponseMetadata"]["HTTPHeaders"]["content-type"])
    )


def test_binary_images_keep_motos_own_answer(endpoint: Any, table: str) -> None:
    item = {"event_id": {"S": "bin"}, "b": {"B": b"\x00\xff"}, "m": {"M": {"inner": {"B": b"\x01"}}}}
    endpoint.client("dynamodb").put_item(TableName=table, Item=item)
    (shard,) = _shards(endpoint, table)
    (records,), _ = _read_all(endpoint, _iterator(endpoint, table, shard["ShardId"], "TRIM_HORIZON"))
    assert records[0]["dynamodb"]["NewImage"] == item  # blobs as blobs, as moto's serializer writes them


def test_sequence_numbers_iterator_types_limit_and_next_iterator(endpoint: Any, table: str) -> None:
    for number in range(7):
        _put(endpoint, table, f"e{number % 3}", number)  # e0, e1, e2 changed again and again
    (shard,) = _shards(endpoint, table)
    shard_id = shard["ShardId"]
    assert "EndingSequenceNumber" not in shard["SequenceNumberRange"]  # open
    latest = _iterator(endpoint, table, shard_id, "LATEST")

    pages, tip = _read_all(endpoint, _iterator(endpoint, table, shard_id, "TRIM_HORIZON"), limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]  # Limit, then what is left
    records = [record for page in pages for record in page]
    sequences = _sequences(records)
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == 7
    assert str(sequences[0]) == shard["SequenceNumberRange"]["StartingSequenceNumber"]
    for event_id in ("e0", "e1", "e2"):  # each item's changes in the order they were made
        amounts = [
            r["dynamodb"]["NewImage"]["amount"]["N"]
            for r in records
            if r["dynamodb"]["Keys"]["event_id"]["S"] == event_id
        ]
        assert amounts == [str(n) for n in range(7) if f"e{n % 3}" == event_id]
    assert tip is not None  # an open shard read to its tip still gives an iterator to wait on

    third = str(sequences[2])
    at, _ = _read_all(endpoint, _iterator(endpoint, table, shard_id, "AT_SEQUENCE_NUMBER", third))
    after, _ = _read_all(endpoint, _iterator(endpoint, table, shard_id, "AFTER_SEQUENCE_NUMBER", third))
    assert _sequences(at[0]) == sequences[2:]
    assert _sequences(after[0]) == sequences[3:]

    _put(endpoint, table, "e9", 9)
    (from_latest,), _ = _read_all(endpoint, latest)
    assert [r["dynamodb"]["Keys"]["event_id"]["S"] for r in from_latest] == ["e9"]  # only what came after
    (from_tip,), _ = _read_all(endpoint, tip)
    assert _sequences(from_tip) == _sequences(from_latest)


def test_a_page_stops_at_1_mb(endpoint: Any, table: str) -> None:
    for number in range(24):
        _put(endpoint, table, f"big{number}", number, padding="x" * 100_000)  # about 200 KB a record
    (shard,) = _shards(endpoint, table)
    pages, _ = _read_all(endpoint, _iterator(endpoint, table, shard["ShardId"], "TRIM_HORIZON"))
    sizes = [sum(r["dynamodb"]["SizeBytes"] for r in page) for page in pages]
    assert len(pages) > 1
    assert all(size <= moto_fixes.PAGE_BYTES for size in sizes)
    assert all(
        size + pages[i + 1][0]["dynamodb"]["SizeBytes"] > moto_fixes.PAGE_BYTES
        for i, size in enumerate(sizes[:-1])
    )
    assert sum(len(page) for page in pages) == 24  # every record, in order, once
    assert _sequences([r for page in pages for r in page]) == sorted(
        _sequences([r for page in pages for r in page])
    )


def test_a_rolled_shard_ends_and_its_child_takes_the_new_records(endpoint: Any, table: str) -> None:
    for number in range(3):
        _put(endpoint, table, f"e{number}", number)
    (before,) = _shards(endpoint, table)
    waiting = _iterator(endpoint, table, before["ShardId"], "LATEST")  # a reader at the tip

    parent_id, child_id = roll_table_stream(endpoint, table)
    _put(endpoint, table, "e3", 3)
    _put(endpoint, table, "e0", 10)  # a change of an item the parent holds: in the child

    parent, child = _shards(endpoint, table)
    assert (parent["ShardId"], child["ShardId"]) == (before["ShardId"], child_id)
    assert parent_id == before["ShardId"]
    assert child["ParentShardId"] == parent_id
    assert "ParentShardId" not in parent
    assert "EndingSequenceNumber" not in child["SequenceNumberRange"]

    pages, end = _read_all(endpoint, _iterator(endpoint, table, parent_id, "TRIM_HORIZON"))
    parent_sequences = _sequences([r for page in pages for r in page])
    assert len(parent_sequences) == 3
    assert end is None
    assert parent["SequenceNumberRange"]["EndingSequenceNumber"] == str(parent_sequences[-1])
    assert _read_all(endpoint, waiting) == ([], None)  # the reader at the tip learns the shard ended

    (child_records,), tip = _read_all(endpoint, _iterator(endpoint, table, child_id, "TRIM_HORIZON"))
    assert [r["eventName"] for r in child_records] == ["INSERT", "MODIFY"]
    assert min(_sequences(child_records)) > parent_sequences[-1]
    assert tip is not None

    streams = endpoint.client("dynamodbstreams")
    with pytest.raises(streams.exceptions.ResourceNotFoundException):
        _iterator(endpoint, table, "shardId-00000000000000000000-nosuch00", "TRIM_HORIZON")


def test_only_the_embedded_emulator_rolls_on_request() -> None:
    with pytest.raises(EmulatorError, match="only the embedded emulator"):
        roll_table_stream(Endpoint(Target.LOCALSTACK, "http://127.0.0.1:1"), "orders")


def test_the_child_process_emulator_rolls_and_answers_fast_too() -> None:
    from salesstream.emulator.embedded import EmbeddedEmulator

    with EmbeddedEmulator(in_subprocess=True) as endpoint:
        dynamodb = endpoint.client("dynamodb")
        dynamodb.create_table(
            TableName="rolls",
            KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        _put(endpoint, "rolls", "e0", 1)
        parent_id, child_id = roll_table_stream(endpoint, "rolls")
        _put(endpoint, "rolls", "e1", 2)
        shards = _shards(endpoint, "rolls")
        assert [s["ShardId"] for s in shards] == [parent_id, child_id]
        (records,), _ = _read_all(endpoint, _iterator(endpoint, "rolls", child_id, "TRIM_HORIZON"))
        assert [r["dynamodb"]["Keys"]["event_id"]["S"] for r in records] == ["e1"]
        with pytest.raises(EmulatorError, match="ResourceNotFound"):
            roll_table_stream(endpoint, "no-such-table")
