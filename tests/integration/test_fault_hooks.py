"""The fault layer's botocore hooks on real clients against the embedded moto server: each fault
really happens (the emulator's contents say so) and is counted."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from load_tests.faults.clients import CANCEL_CODES, THROTTLE_CODES, ClientFaults
from load_tests.faults.draw import Draws
from producer import Producer, ProducerSettings
from producer.sender import PRODUCER_CLIENT_CONFIG
from producer.simulator import Fleet, FleetConfig
from tests.kinesis_reading import read_stream

ALWAYS = 0.999_999  # a share below 1 that every draw of these tests falls under
NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1})


def fresh(endpoint: Any, service: str, config: Config | None = None) -> Any:
    """A client of its own session, as the Lambda handlers make theirs."""
    return boto3.session.Session().client(
        service, endpoint_url=endpoint.url, region_name=endpoint.region, config=config
    )


@pytest.fixture
def stream(make_stack: Any) -> Callable[..., str]:
    def make(shards: int = 2) -> str:
        template, _ = make_stack(ShardCount=shards)
        return str(template.physical_name("OrdersStream"))

    return make


@pytest.fixture
def table(make_stack: Any) -> str:
    template, _ = make_stack()
    return str(template.physical_name("AggregatesTable"))


def entries(count: int) -> list[dict[str, Any]]:
    return [{"Data": f"record {n}".encode(), "PartitionKey": f"store-{n % 7}"} for n in range(count)]


def landed_data(endpoint: Any, name: str) -> list[bytes]:
    _, landed = read_stream(fresh(endpoint, "kinesis"), name)
    return [record.data for record in landed]


def test_failed_put_records_entries_are_not_stored_and_answered_with_an_error_code(
    endpoint: Any, stream: Callable[..., str]
) -> None:
    name = stream()
    faults = ClientFaults(Draws(1), put_entry_failure=0.3)
    client = faults.attach(fresh(endpoint, "kinesis"))
    sent = entries(200)
    answer = client.put_records(StreamName=name, Records=sent)

    failed = [n for n, entry in enumerate(answer["Records"]) if "ErrorCode" in entry]
    assert len(answer["Records"]) == 200
    assert 30 < len(failed) < 90  # ~30% of 200
    assert answer["FailedRecordCount"] == len(failed)
    assert all(answer["Records"][n]["ErrorCode"] == "ProvisionedThroughputExceededException" for n in failed)
    assert all("ShardId" in entry for n, entry in enumerate(answer["Records"]) if n not in failed)
    assert faults.counts() == {"put_entry_failed": len(failed)}
    assert sorted(landed_data(endpoint, name)) == sorted(
        e["Data"] for n, e in enumerate(sent) if n not in failed
    )


def test_a_call_whose_every_entry_fails_sends_nothing(endpoint: Any, stream: Callable[..., str]) -> None:
    name = stream()
    faults = ClientFaults(Draws(1), put_entry_failure=ALWAYS)
    answer = faults.attach(fresh(endpoint, "kinesis")).put_records(StreamName=name, Records=entries(3))
    assert [entry["ErrorCode"] for entry in answer["Records"]] == [
        "ProvisionedThroughputExceededException"
    ] * 3
    assert answer["FailedRecordCount"] == 3
    assert faults.counts() == {"put_entry_failed": 3}
    assert landed_data(endpoint, name) == []


def test_a_lost_put_records_response_raises_after_the_records_were_stored(
    endpoint: Any, stream: Callable[..., str]
) -> None:
    name = stream()
    faults = ClientFaults(Draws(1), lost_response=ALWAYS)
    client = faults.attach(fresh(endpoint, "kinesis", NO_RETRIES))
    sent = entries(5)
    with pytest.raises(ReadTimeoutError):
        client.put_records(StreamName=name, Records=sent)
    assert faults.counts() == {"put_response_lost": 1}
    assert sorted(landed_data(endpoint, name)) == sorted(e["Data"] for e in sent)


def test_the_producer_under_both_kinesis_faults_resends_and_every_event_lands(
    endpoint: Any, stream: Callable[..., str], tmp_path: Path
) -> None:
    name = stream()
    # the draws' keys hold the stack's random stream name: shares and calls (15 flushes, each
    # at least one call) high enough that both faults happen in all but ~1 in 30,000 runs
    faults = ClientFaults(Draws(3), put_entry_failure=0.05, lost_response=0.5)
    client = faults.attach(fresh(endpoint, "kinesis", PRODUCER_CLIENT_CONFIG))
    events = Fleet(FleetConfig(stores=30, seed=4)).events(3_000)
    producer = Producer(
        client,
        name,
        tmp_path / "spool.jsonl",
        # a call's response is lost half the time: enough attempts that none runs out (0.5**40)
        settings=ProducerSettings(linger_seconds=3600, aggregate=False, max_attempts=40),
        sleep=lambda _: None,
        rng=random.Random(0),
    )
    with producer:
        for chunk in range(0, len(events), 200):
            producer.submit_many(events[chunk : chunk + 200])
            producer.flush()
    counts = faults.counts()
    assert counts["put_entry_failed"] > 0
    assert counts["put_response_lost"] > 0
    result = producer.result
    assert (result.sent, result.spooled) == (3_000, 0)
    assert result.resent >= counts["put_entry_failed"]
    landed = [json.loads(data)["event_id"] for data in landed_data(endpoint, name)]
    assert set(landed) == {json.loads(raw)["event_id"] for raw in events}
    assert len(landed) > len(events)  # the lost responses' calls were stored twice


def test_dynamodb_writes_are_throttled_before_they_are_sent_and_botocore_sees_the_answer(
    endpoint: Any, table: str
) -> None:
    faults = ClientFaults(Draws(5), dynamodb_throttle=0.5, tables=frozenset({table}))
    dynamodb = faults.attach(fresh(endpoint, "dynamodb", NO_RETRIES))
    refused: list[str] = []
    for n in range(60):
        try:
            dynamodb.put_item(TableName=table, Item={"pk": {"S": f"p{n}"}, "sk": {"S": "s"}})
        except ClientError as error:
            refused.append(error.response["Error"]["Code"])
    # botocore retries some of them even with one attempt configured (its retry handler sees the
    # injected answer as it would see DynamoDB's): what reaches the caller was throttled every time
    throttled = faults.counts()["dynamodb_throttled"]
    assert 0 < len(refused) <= throttled
    assert set(refused) <= set(THROTTLE_CODES)
    stored = dynamodb.scan(TableName=table)["Items"]
    assert len(stored) == 60 - len(refused)  # a throttled write stored nothing
    # every attempt (botocore's retries included) ended throttled or stored: about half throttled
    # (~90 attempts: 0.3-0.7 is ~4 standard deviations; the draws follow the stack's random name)
    assert 0.3 < throttled / (throttled + len(stored)) < 0.7


def test_botocore_retries_an_injected_throttle(endpoint: Any, table: str) -> None:
    faults = ClientFaults(Draws(5), dynamodb_throttle=0.5, tables=frozenset({table}))
    dynamodb = faults.attach(
        fresh(endpoint, "dynamodb", Config(retries={"mode": "standard", "max_attempts": 10}))
    )
    for n in range(30):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": f"p{n}"}, "sk": {"S": "s"}})
    assert faults.counts()["dynamodb_throttled"] > 5  # each one retried by botocore: none reached us
    assert len(dynamodb.scan(TableName=table)["Items"]) == 30


def test_other_tables_and_reads_are_left_alone(endpoint: Any, table: str, make_stack: Any) -> None:
    other_template, _ = make_stack()
    other = other_template.physical_name("AggregatesTable")
    faults = ClientFaults(Draws(5), dynamodb_throttle=ALWAYS, lost_response=ALWAYS, tables=frozenset({table}))
    dynamodb = faults.attach(fresh(endpoint, "dynamodb", NO_RETRIES))
    dynamodb.put_item(TableName=other, Item={"pk": {"S": "p"}, "sk": {"S": "s"}})
    dynamodb.get_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "s"}})
    assert faults.counts() == {}


def test_a_cancelled_transaction_names_a_reason_per_item_and_applies_nothing(
    endpoint: Any, table: str
) -> None:
    faults = ClientFaults(Draws(2), transaction_cancel=ALWAYS, tables=frozenset({table}))
    dynamodb = faults.attach(fresh(endpoint, "dynamodb", NO_RETRIES))
    items = [
        {"Put": {"TableName": table, "Item": {"pk": {"S": f"p{n}"}, "sk": {"S": "s"}}}} for n in range(3)
    ]
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
        dynamodb.transact_write_items(TransactItems=items)
    codes = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert len(codes) == 3
    assert sorted(codes)[:2] == ["None", "None"]
    assert {code for code in codes if code != "None"} <= set(CANCEL_CODES)
    assert faults.counts() == {"transaction_cancelled": 1}
    assert dynamodb.scan(TableName=table)["Items"] == []


def test_a_lost_dynamodb_response_raises_after_the_write_was_applied(endpoint: Any, table: str) -> None:
    faults = ClientFaults(Draws(2), lost_response=ALWAYS, tables=frozenset({table}))
    dynamodb = faults.attach(fresh(endpoint, "dynamodb", NO_RETRIES))
    with pytest.raises(ReadTimeoutError):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": "s"}})
    assert faults.counts() == {"dynamodb_response_lost": 1}
    assert len(dynamodb.scan(TableName=table)["Items"]) == 1


def test_installed_reaches_every_client_made_from_a_new_session_inside_and_only_those(
    endpoint: Any, table: str
) -> None:
    """The seam the fault run uses for the Lambda handlers: they make their clients from a new
    boto3 session on their first invocation."""
    before = fresh(endpoint, "dynamodb", NO_RETRIES)
    faults = ClientFaults(Draws(2), dynamodb_throttle=ALWAYS, tables=frozenset({table}))
    with faults.installed():
        inside = fresh(endpoint, "dynamodb", NO_RETRIES)
        with pytest.raises(ClientError):
            inside.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"S": "s"}})
        before.put_item(TableName=table, Item={"pk": {"S": "b"}, "sk": {"S": "s"}})
    after = fresh(endpoint, "dynamodb", NO_RETRIES)
    after.put_item(TableName=table, Item={"pk": {"S": "c"}, "sk": {"S": "s"}})
    assert set(faults.counts()) == {"dynamodb_throttled"}  # only `inside` (botocore may retry it)
    assert sorted(item["pk"]["S"] for item in after.scan(TableName=table)["Items"]) == ["b", "c"]
