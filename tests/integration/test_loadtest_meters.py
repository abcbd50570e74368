"""The request meter counts what real boto3 clients ask the embedded emulator, through botocore's
event hooks (load_tests/meters.py), and the visibility probe reads what a reader of the
aggregates table sees (load_tests/visibility.py)."""

from __future__ import annotations

from typing import Any

from load_tests.meters import InvocationMeter, RequestMeter, write_units
from load_tests.visibility import AggregatesTableProbe
from salesstream.emulator.targets import Endpoint


def fresh(endpoint: Any) -> Endpoint:
    """An Endpoint whose clients are created now (Endpoint caches its clients)."""
    return Endpoint(endpoint.target, endpoint.url, endpoint.region)


def test_the_meter_counts_the_requests_of_clients_created_while_it_is_installed(
    make_stack: Any, endpoint: Any
) -> None:
    template, provisioned = make_stack(ShardCount=2)
    stream, table = template.physical_name("OrdersStream"), template.physical_name("AggregatesTable")
    bucket, queue = next(iter(provisioned.buckets.values())), next(iter(provisioned.queues.values()))
    meter = RequestMeter()
    with meter.installed():
        clients = fresh(endpoint)
        kinesis, dynamodb, s3, sqs = (clients.client(s) for s in ("kinesis", "dynamodb", "s3", "sqs"))
        ignored = meter.exclude(fresh(endpoint).client("dynamodb"))
        meter.reset()
        keys = [str(2**127 - 5), str(2**127 + 5)]  # one record on each shard
        answer = kinesis.put_records(
            StreamName=stream,
            Records=[
                {"Data": b"x" * 100, "PartitionKey": "k1", "ExplicitHashKey": keys[0]},
                {"Data": b"y" * 30_000, "PartitionKey": "k2", "ExplicitHashKey": keys[1]},
            ],
        )
        item: dict[str, dict[str, Any]] = {"pk": {"S": "a"}, "sk": {"S": "b"}, "blob": {"B": b"z" * 3_000}}
        dynamodb.put_item(TableName=table, Item=item)
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "c"}, "sk": {"S": "d"}}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": "e"}, "sk": {"S": "f"}},
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )
        dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :a",
            ExpressionAttributeValues={":a": {"S": "a"}},
            ConsistentRead=True,
        )
        ignored.put_item(TableName=table, Item={"pk": {"S": "not"}, "sk": {"S": "counted"}})
        s3.put_object(Bucket=bucket, Key="dedup/x", Body=b"1")
        s3.list_objects_v2(Bucket=bucket, Prefix="dedup/")
        s3.get_object(Bucket=bucket, Key="dedup/x")["Body"].read()
        sqs.send_message(QueueUrl=queue, MessageBody="m")
    after = fresh(endpoint).client("dynamodb")  # created after: not hooked any more
    after.put_item(TableName=table, Item={"pk": {"S": "late"}, "sk": {"S": "x"}})

    counts = meter.snapshot()
    shards = [entry["ShardId"] for entry in answer["Records"]]
    assert counts.kinesis_records == {shards[0]: 1, shards[1]: 1}
    assert counts.kinesis_bytes == {shards[0]: 102, shards[1]: 30_002}  # data + partition key
    assert counts.kinesis_payload_units == {shards[0]: 1, shards[1]: 2}  # 25 KB units
    assert [second for second in counts.kinesis_seconds[shards[1]]] == [0]
    assert (
        counts.write_units[table] == write_units(item) + 2 * 1 + 2 * 1
    )  # the put is 3 KB; 2 per item in a transaction
    assert counts.read_units[table] == 1  # one consistent read of one small item
    assert counts.operations("dynamodb") == {"PutItem": 1, "TransactWriteItems": 1, "Query": 1}
    assert (sum(counts.s3_put_class.values()), sum(counts.s3_get_class.values())) == (2, 1)
    assert sum(counts.sqs_requests.values()) == 1
    assert set(counts.latencies) >= {("kinesis", "PutRecords"), ("dynamodb", "TransactWriteItems")}


def test_the_probe_sees_segments_even_when_the_counter_moves_before_the_item_lands(
    make_stack: Any, endpoint: Any
) -> None:
    template, _ = make_stack()
    table = template.physical_name("AggregatesTable")
    dynamodb = endpoint.client("dynamodb")
    probe = AggregatesTableProbe(dynamodb, table, ["shard-0"])
    assert probe.poll(1.0) == []

    def counters(segments: int, events: int) -> None:
        dynamodb.put_item(
            TableName=table,
            Item={
                "pk": {"S": "SHARD#shard-0"},
                "sk": {"S": "COUNTERS"},
                "segments": {"N": str(segments)},
                "events": {"N": str(events)},
            },
        )

    def segment(start_ms: int, events: int) -> None:
        dynamodb.put_item(
            TableName=table,
            Item={
                "pk": {"S": "SEGMENT#shard-0"},
                "sk": {"S": f"{start_ms:015d}#1"},
                "window_start": {"S": "2026-11-23T10:00:00Z"},
                "window_end": {"S": "2026-11-23T10:01:00Z"},
                "first_sequence": {"S": "1"},
                "first_subsequence": {"N": "0"},
                "last_sequence": {"S": "9"},
                "last_subsequence": {"N": "3"},
                "events": {"N": str(events)},
                "terminated_early": {"BOOL": False},
                "stores_zjson": {"B": b"not read by the probe"},
            },
        )

    counters(1, 40)  # a chunked persistence: the counters first, the segment item in a later chunk
    assert probe.poll(2.0) == []
    segment(1_000, 40)
    (seen,) = probe.poll(3.0)
    assert (seen.seen_at, seen.events, seen.last.sequence, seen.last.subsequence) == (3.0, 40, 9, 3)
    assert probe.counted() == 40
    assert probe.poll(4.0) == []  # seen once


def test_an_invocation_keeps_the_aws_calls_its_handler_made_on_its_thread(
    make_stack: Any, endpoint: Any
) -> None:
    """The cost model prices each call of an invocation as an in-region round trip: the meter must
    attribute calls to the invocation that made them, and not the calls of other threads."""
    template, _ = make_stack(ShardCount=1)
    table = template.physical_name("AggregatesTable")
    meter = RequestMeter()
    with meter.installed():
        dynamodb = fresh(endpoint).client("dynamodb")

        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            for n in range(event["writes"]):
                dynamodb.put_item(TableName=table, Item={"pk": {"S": f"p{n}"}, "sk": {"S": "x"}})
            dynamodb.get_item(TableName=table, Key={"pk": {"S": "p0"}, "sk": {"S": "x"}})
            return {"batchItemFailures": []}

        invocations = InvocationMeter(handler, memory_mb=1024, function="F")
        invocations({"writes": 2}, None)
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "outside"}, "sk": {"S": "x"}})
        invocations({"writes": 0}, None)
    assert [i.calls for i in invocations.invocations] == [
        (("dynamodb", "PutItem"), ("dynamodb", "PutItem"), ("dynamodb", "GetItem")),
        (("dynamodb", "GetItem"),),
    ]
