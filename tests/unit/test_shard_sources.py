"""The orders table stream's shard source, where the emulator cannot show it: DescribeStream pages
(moto lists one shard), the probe's requests after the last archived record, empty pages before
a record, a parent shard archived to its end, and a table without a stream. Each answer goes
through a real boto3 client with botocore's Stubber, which checks requests and responses against
the DynamoDB Streams API's shapes; probing through the real API is covered by
tests/integration/test_table_batch_layer.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from consumers.batch.shard_sources import ListedShard, TableStreamMissing, TableStreamShards
from salesstream.core.recompute import Probe

pytestmark = pytest.mark.unit

ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2026-12-03T00:00:00.000"
PARENT, CHILD = "shardId-00000001764720000000-parent01", "shardId-00000001764734400000-child001"
# sequence numbers as DynamoDB gives them (21 to 40 digits), compared as numbers
ARCHIVED, NEXT, END = "100000000000000000150", "100000000000000000151", "100000000000000000300"
CREATED = 1_764_720_000.75  # a finer time than AWS gives: the archive keeps whole seconds


def client(service: str) -> Any:
    return boto3.client(
        service, region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def streams() -> Iterator[tuple[Any, Stubber]]:
    real = client("dynamodbstreams")
    with Stubber(real) as stubber:
        yield real, stubber
        stubber.assert_no_pending_responses()


def shard(shard_id: str, ending: str | None = None, parent: str | None = None) -> dict[str, Any]:
    numbers = {
        "StartingSequenceNumber": "100000000000000000100",
        **({"EndingSequenceNumber": ending} if ending else {}),
    }
    return {
        "ShardId": shard_id,
        "SequenceNumberRange": numbers,
        **({"ParentShardId": parent} if parent else {}),
    }


def description(shards: list[dict[str, Any]], last: str | None = None) -> dict[str, Any]:
    described = {"StreamArn": ARN, "StreamStatus": "ENABLED", "Shards": shards}
    return {"StreamDescription": {**described, **({"LastEvaluatedShardId": last} if last else {})}}


def record(sequence: str) -> dict[str, Any]:
    created = datetime.fromtimestamp(CREATED, UTC)
    return {
        "eventName": "INSERT",
        "dynamodb": {"SequenceNumber": sequence, "ApproximateCreationDateTime": created},
    }


def test_the_shard_list_follows_describe_stream_pages(streams: tuple[Any, Stubber]) -> None:
    real, stubber = streams
    stubber.add_response(
        "describe_stream", description([shard(PARENT, ending=END)], last=PARENT), {"StreamArn": ARN}
    )
    stubber.add_response(
        "describe_stream",
        description([shard(CHILD, parent=PARENT)]),
        {"StreamArn": ARN, "ExclusiveStartShardId": PARENT},
    )
    assert TableStreamShards(real, ARN).list_shards() == [ListedShard(PARENT, END), ListedShard(CHILD, None)]


def test_the_probe_reads_past_empty_pages_after_the_last_archived_record(
    streams: tuple[Any, Stubber],
) -> None:
    real, stubber = streams
    stubber.add_response(
        "get_shard_iterator",
        {"ShardIterator": "it-0"},
        {
            "StreamArn": ARN,
            "ShardId": CHILD,
            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "SequenceNumber": ARCHIVED,
        },
    )
    stubber.add_response(
        "get_records", {"Records": [], "NextShardIterator": "it-1"}, {"ShardIterator": "it-0", "Limit": 1}
    )
    stubber.add_response(
        "get_records", {"Records": [], "NextShardIterator": "it-2"}, {"ShardIterator": "it-1", "Limit": 1}
    )
    stubber.add_response(
        "get_records",
        {"Records": [record(NEXT)], "NextShardIterator": "it-3"},
        {"ShardIterator": "it-2", "Limit": 1},
    )
    probe = TableStreamShards(real, ARN).probe(ListedShard(CHILD, None), ARCHIVED)
    assert probe == Probe(1_764_720_000_000, shard_ended=False, caught_up=False)


def test_a_quiet_open_shard_is_caught_up_after_five_empty_pages(streams: tuple[Any, Stubber]) -> None:
    real, stubber = streams
    stubber.add_response(
        "get_shard_iterator",
        {"ShardIterator": "it-0"},
        {"StreamArn": ARN, "ShardId": CHILD, "ShardIteratorType": "TRIM_HORIZON"},
    )
    for page in range(5):
        stubber.add_response(
            "get_records",
            {"Records": [], "NextShardIterator": f"it-{page + 1}"},
            {"ShardIterator": f"it-{page}", "Limit": 1},
        )
    assert TableStreamShards(real, ARN).probe(ListedShard(CHILD, None), None) == Probe(None, False, True)


def test_a_parent_archived_to_its_end_is_ended_without_a_read(streams: tuple[Any, Stubber]) -> None:
    real, _ = streams  # no response is scripted: any call fails the test
    probe = TableStreamShards(real, ARN).probe(ListedShard(PARENT, END), END)
    assert probe == Probe(None, shard_ended=True, caught_up=True)


def test_a_parent_read_to_its_end_is_ended(streams: tuple[Any, Stubber]) -> None:
    real, stubber = streams
    stubber.add_response("get_shard_iterator", {"ShardIterator": "it-0"})
    stubber.add_response("get_records", {"Records": []})  # no NextShardIterator: closed, read to its end
    assert TableStreamShards(real, ARN).probe(ListedShard(PARENT, "100000000000000000999"), END) == Probe(
        None, True, True
    )


def test_a_table_without_a_stream_is_refused_by_name() -> None:
    dynamodb = client("dynamodb")
    with Stubber(dynamodb) as stubber:
        stubber.add_response("describe_table", {"Table": {"TableName": "orders"}}, {"TableName": "orders"})
        with pytest.raises(TableStreamMissing, match="ORDERS_TABLE orders has no enabled stream"):
            TableStreamShards.of_table(dynamodb, client("dynamodbstreams"), "orders")
        stubber.add_response(
            "describe_table",
            {
                "Table": {
                    "TableName": "orders",
                    "LatestStreamArn": ARN,
                    "StreamSpecification": {"StreamEnabled": True},
                }
            },
        )
        assert TableStreamShards.of_table(dynamodb, client("dynamodbstreams"), "orders").stream_arn == ARN
