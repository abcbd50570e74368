"""The runtime's reading client takes GetRecords' records from the response's JSON as they are;
on moto, through real boto3 clients, they are the records botocore's parser gives, and the
other clients of the process are left as they were."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from salesstream.runtime.kinesis import KinesisShardApi, reading_client
from salesstream.runtime.model import RuntimeConfigError, WireRecord

DATA = [b"", b"\x00\xff binary", '{"store": "caf\u00e9"}'.encode(), bytes(range(256)) * 40]
KEYS = ["pk", 'caf\u00e9 "quoted" \\ key', "k" * 256, "\u0001control"]


@pytest.fixture
def stream(endpoint: Any) -> Iterator[tuple[str, str]]:
    kinesis = endpoint.client("kinesis")
    name = f"wire-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)
    kinesis.put_records(
        StreamName=name, Records=[{"Data": d, "PartitionKey": k} for d, k in zip(DATA, KEYS, strict=True)]
    )
    shard_id = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    yield name, shard_id
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def test_the_wire_records_are_botocores_records(endpoint: Any, stream: tuple[str, str]) -> None:
    name, shard_id = stream
    api = KinesisShardApi(reading_client(endpoint), name)
    page = api.get_records(api.new_iterator(shard_id, "TRIM_HORIZON", None), 100)

    plain = endpoint.client("kinesis")  # the process's own client keeps botocore's parsing
    iterator = plain.get_shard_iterator(StreamName=name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    parsed = plain.get_records(ShardIterator=iterator["ShardIterator"], Limit=100)["Records"]
    assert [(r["Data"], r["PartitionKey"]) for r in parsed] == list(zip(DATA, KEYS, strict=True))
    assert page.records == [
        WireRecord(
            r["SequenceNumber"],
            round(r["ApproximateArrivalTimestamp"].timestamp() * 1000),
            base64.b64encode(r["Data"]).decode("ascii"),
            r["PartitionKey"],
        )
        for r in parsed
    ]
    assert page.next_iterator
    assert page.millis_behind == 0


def test_errors_are_raised_as_botocore_raises_them(endpoint: Any, stream: tuple[str, str]) -> None:
    client = reading_client(endpoint)
    assert reading_client(endpoint) is client  # one client, its hook registered once
    errors = []
    for each in (client, endpoint.client("kinesis")):
        with pytest.raises(each.exceptions.ClientError) as raised:
            each.get_records(ShardIterator="not-an-iterator", Limit=1)
        errors.append((type(raised.value).__name__, raised.value.response["Error"]["Code"]))
    assert errors[0] == errors[1]
    assert errors[0][1]


def test_a_reader_on_another_client_is_refused_clearly(endpoint: Any, stream: tuple[str, str]) -> None:
    name, shard_id = stream
    api = KinesisShardApi(endpoint.client("kinesis"), name)
    with pytest.raises(RuntimeConfigError, match="reading_client"):
        api.get_records(api.new_iterator(shard_id, "TRIM_HORIZON", None), 1)
