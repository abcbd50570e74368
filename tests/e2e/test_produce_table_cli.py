"""`salesstream produce --to table` through the CLI, against a running `salesstream up` with the
orders table on: the items and the table's stream hold what the command says it wrote."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salesstream.emulator.targets import Endpoint, Target
from tests.e2e.stack_process import stack_up
from tests.e2e.test_produce_cli import ENV, salesstream

STAGE = "e2eprodtbl"
TABLE_ON = ("--param", "OrdersTableSource=on")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Endpoint]]:
    home = tmp_path_factory.mktemp("table-stack")
    with stack_up("--shards", "1", "--stage", STAGE, *TABLE_ON, cwd=home, env=ENV) as summary:
        yield home, Endpoint(Target.EMBEDDED, summary["endpoint_url"])


def produce(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return salesstream("produce", "--to", "table", "--stage", STAGE, *TABLE_ON, *args, cwd=home)


def items(endpoint: Endpoint, table: str) -> list[dict[str, Any]]:
    pages = endpoint.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


def stream_event_names(endpoint: Endpoint, table: str) -> Counter[str]:
    arn = endpoint.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = endpoint.client("dynamodbstreams")
    names: Counter[str] = Counter()
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator)
            names.update(record["eventName"] for record in page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return names


def net_by_store(stored: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    net: dict[tuple[str, str], int] = {}
    for item in stored:
        sign = -1 if item["event_type"]["S"] == "order_refunded" else 1
        key = (item["store_id"]["S"], item["currency"]["S"])
        net[key] = net.get(key, 0) + sign * int(item["total_minor"]["N"])
    return net


def test_produce_to_the_table_writes_one_item_per_event_and_a_repeat_changes_nothing(
    stack: tuple[Path, Endpoint],
) -> None:
    home, endpoint = stack
    run = produce(home, "--count", "120", "--seed", "7", "--stores", "6", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["written"], result["sent"], result["rejected"]) == (120, 120, {})
    table = result["table"]
    stored = items(endpoint, table)
    assert len({item["event_id"]["S"] for item in stored}) == len(stored) == 120
    assert all(int(item["expires_at"]["N"]) > 0 for item in stored)  # the table's TTL attribute
    tally = {(row["store_id"], row["currency"]): row["net_minor"] for row in result["tally"]}
    assert net_by_store(stored) == tally  # what the command says it wrote, to the cent
    assert stream_event_names(endpoint, table) == Counter({"INSERT": 120})

    again = produce(home, "--count", "120", "--seed", "7", "--stores", "6", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["tally"] == result["tally"]
    assert len(items(endpoint, table)) == 120  # the event id is the key: the same items again
    assert stream_event_names(endpoint, table) == Counter({"INSERT": 120, "MODIFY": 120})


def test_a_file_with_bad_lines_writes_the_good_ones_and_names_the_bad(
    stack: tuple[Path, Endpoint], tmp_path: Path
) -> None:
    home, endpoint = stack
    event = {
        "schema_version": 1,
        "event_id": "table-file.1",
        "event_type": "order_placed",
        "order_id": "o.1",
        "store_id": "store-file",
        "terminal_id": "t1",
        "occurred_at": "2026-11-23T10:15:00+01:00",
        "currency": "EUR",
        "lines": [{"sku": "GRO-1", "quantity": 2, "unit_price_minor": 150}],
        "total_minor": 300,
    }
    lines = [
        json.dumps(event),
        "{not json",
        json.dumps({**event, "event_id": "table-file.2", "currency": "XYZ"}),
    ]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(lines) + "\n")

    run = produce(home, "--from-file", str(events_file), "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["written"], result["rejected"]) == (1, {"not_json": 1, "unknown_currency": 1})
    assert "line 2: refused, not_json" in run.stderr
    assert "line 3: refused, unknown_currency" in run.stderr
    written = [item for item in items(endpoint, result["table"]) if item["store_id"]["S"] == "store-file"]
    assert [item["event_id"]["S"] for item in written] == ["table-file.1"]
    assert written[0]["total_minor"] == {"N": "300"}

    strict = produce(home, "--from-file", str(events_file), "--strict", "--json")
    assert strict.returncode == 1  # a refusal fails the run with --strict


def test_without_the_orders_table_the_command_says_how_to_turn_it_on(stack: tuple[Path, Endpoint]) -> None:
    home, _ = stack
    run = salesstream("produce", "--to", "table", "--stage", STAGE, "--count", "5", cwd=home)
    assert run.returncode != 0
    assert "pass --param OrdersTableSource=on" in run.stderr
