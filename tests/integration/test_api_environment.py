"""The served API's configuration and its operators' signal, through the local HTTP API in front
of the template's ApiFunction on the embedded moto server:

- what the API is given beyond the template (RUNTIME_STATS_FILE, as `salesstream serve` and the
  load test give it) reaches the function and only the function: the process environment is
  the same after the requests as before;
- a 503 is counted as ApiUnavailableAlarm counts it: the EMF line the handler prints has the
  namespace, metric and `service` the alarm's query selects."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.serving.handler import api
from salesstream.emulator.local_api import LocalHttpApi
from tests.api_support import call, get_json


@pytest.fixture
def template(make_stack: Callable[..., Any]) -> Iterator[Any]:
    made, _ = make_stack(ShardCount=1, WindowSeconds=1)
    api.cache_clear()  # a cold start with this stack's environment
    yield made
    api.cache_clear()


@pytest.fixture
def served(template: Any) -> Iterator[Callable[..., str]]:
    servers: list[LocalHttpApi] = []

    def start(**environment: str) -> str:
        servers.append(LocalHttpApi.from_template(template, environment=environment).start())
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


def test_what_the_api_is_given_reaches_the_function_and_leaves_the_process_as_it_was(
    template: Any, served: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNTIME_STATS_FILE", raising=False)
    for name in template.function("ApiFunction").environment:
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    stats = tmp_path / "runtime-stats.json"  # not written: the answer names it
    base = served(RUNTIME_STATS_FILE=str(stats))
    answer = get_json(f"{base}/shards")
    assert answer["lag"]["source"] == "runtime"  # not CloudWatch: the variable reached the API
    assert stats.name in answer["lag"]["note"]
    assert [shard["shard_id"] for shard in answer["shards"]] == ["shardId-000000000000"]
    assert dict(os.environ) == before


def test_a_503_is_counted_where_the_unavailable_alarm_looks(
    template: Any,
    served: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    base = served()
    capsys.readouterr()
    assert call(f"{base}/sales").status == 503
    emitted = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"ApiBackendUnavailable"' in line
    ]
    (metric,) = emitted
    (directive,) = metric["_aws"]["CloudWatchMetrics"]
    assert [m["Name"] for m in directive["Metrics"]] == ["ApiBackendUnavailable"]
    assert metric["ApiBackendUnavailable"] == [1.0]

    alarm = template.properties("ApiUnavailableAlarm")
    (query,) = alarm["Metrics"]
    selected = re.fullmatch(
        r"SELECT SUM\((\w+)\) FROM \"([\w/]+)\" WHERE service = '([\w-]+)'", query["Expression"]
    )
    assert selected is not None, query["Expression"]
    name, namespace, service = selected.groups()
    assert (name, namespace) == ("ApiBackendUnavailable", directive["Namespace"])
    assert ["service"] in directive["Dimensions"]
    assert metric["service"] == service
    # fires on any 503 in two of three periods
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_an_orders_table_without_a_stream_is_a_503_that_names_it(
    template: Any, served: Callable[..., str], endpoint: Any
) -> None:
    # not the template's table (its stream is always on): one an operator pointed ORDERS_TABLE at
    dynamodb = endpoint.client("dynamodb")
    dynamodb.create_table(
        TableName="orders-without-stream",
        AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    base = served(ORDERS_TABLE="orders-without-stream")
    answer = call(f"{base}/shards")
    assert answer.status == 503
    assert answer.body["error"] == "backend_unavailable"
    assert "the orders table orders-without-stream has no stream" in answer.body["message"]
