"""The serving API through HTTP: the local HTTP API (API Gateway's payload 2.0 translation) in
front of the template's ApiFunction handler, reading what the real pipeline wrote on the embedded
moto server: the producer, the aggregator and archiver run by the local runtime through the
stream, the snapshot job and the reconciliation."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consumers.serving.handler import api
from salesstream.cli.table_writer import TableWriter
from salesstream.core.windows import parse_rfc3339, rfc3339
from salesstream.emulator.local_api import LocalHttpApi
from tests.api_support import all_rows, call, get_json, net_by_store
from tests.batch_support import Pipeline, cold_start

Serve = Callable[..., str]


@pytest.fixture
def pipeline(make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path) -> Iterator[Pipeline]:
    template, _ = make_stack(ShardCount=2, WindowSeconds=1)
    cold_start()
    yield Pipeline(endpoint, template, tmp_path / "spool.jsonl", 1)
    cold_start()


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Serve]:
    """serve(pipeline, runtime_stats=True) -> base URL of a local HTTP API for its template."""
    servers: list[LocalHttpApi] = []

    def start(run: Pipeline, *, runtime_stats: bool = True) -> str:
        for name, value in run.template.function("ApiFunction").environment.items():
            monkeypatch.setenv(name, value)  # restored after the test, whatever the server sets
        if runtime_stats:
            stats = tmp_path / "runtime-stats.json"
            run.runtime.write_stats(stats)
            monkeypatch.setenv("RUNTIME_STATS_FILE", str(stats))
        else:
            monkeypatch.delenv("RUNTIME_STATS_FILE", raising=False)
        api.cache_clear()  # a cold start with this environment
        servers.append(LocalHttpApi.from_template(run.template).start())
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()
    api.cache_clear()


def days_around_today() -> str:
    today = datetime.now(UTC).date()
    return f"from={today - timedelta(days=2)}&to={today + timedelta(days=2)}"


def test_sales_come_from_the_batch_view_up_to_the_horizon_and_from_the_speed_layer_after_it(
    pipeline: Pipeline, serve: Serve
) -> None:
    pipeline.send(pipeline.fleet_events(240, seed=1))
    pipeline.settle()
    snapshot = pipeline.snapshot().snapshot
    assert snapshot is not None
    assert pipeline.reconcile().summary.status.value == "clean"
    pipeline.send(pipeline.fleet_events(160, seed=2))  # after the horizon: the speed layer's
    pipeline.settle()
    base = serve(pipeline)

    answer = get_json(f"{base}/sales?granularity=window")
    assert answer["sources"]["batch"]["snapshot"] == snapshot.snapshot_id
    horizon = parse_rfc3339(answer["sources"]["batch"]["horizon"])
    assert horizon == snapshot.horizon_ms
    rows = answer["rows"]
    assert {row["source"] for row in rows} == {"batch", "speed"}
    for row in rows:  # every window from the layer that answers for it
        assert row["source"] == ("batch" if parse_rfc3339(row["end"]) <= horizon else "speed")
    # the two layers together: every acknowledged order counted once, to the cent
    assert net_by_store(rows) == pipeline.tally()
    assert net_by_store(all_rows(base, "granularity=hour")) == pipeline.tally()
    hour = rows[0]["start"][:13]  # an hour whose start only is in [from, to): all of its windows
    in_hour = net_by_store([row for row in rows if row["start"].startswith(hour)])
    to = rfc3339(parse_rfc3339(hour + ":00:00Z") + 1000)
    assert net_by_store(all_rows(base, f"granularity=hour&from={hour}:00:00Z&to={to}")) == in_hour
    day_rows = all_rows(base, "granularity=day&" + days_around_today())
    assert net_by_store(day_rows) == pipeline.tally()
    assert {"batch", "speed"} <= {part for row in day_rows for part in row["source"].split("+")}

    one_store = sorted(pipeline.tally())[0]
    store_rows = all_rows(base, f"granularity=window&store={one_store[0]}")
    assert {row["store_id"] for row in store_rows} == {one_store[0]}
    assert net_by_store(store_rows)[one_store] == pipeline.tally()[one_store]

    reconciliation = get_json(f"{base}/reconciliation")
    assert reconciliation["status"] == "clean"
    assert reconciliation["summary"]["snapshot_id"] == snapshot.snapshot_id
    assert reconciliation["summary"]["keys_compared"] > 0
    assert reconciliation["differences"] == []


def test_without_a_snapshot_every_row_is_the_speed_layers_and_says_so(
    pipeline: Pipeline, serve: Serve
) -> None:
    pipeline.send(pipeline.fleet_events(120, seed=3))
    pipeline.settle()
    base = serve(pipeline)
    answer = get_json(f"{base}/sales")
    assert answer["sources"] == {
        "batch": None,
        "speed": {"answers": "every arrival window: no batch snapshot yet"},
    }
    assert {row["source"] for row in answer["rows"]} == {"speed"}
    assert net_by_store(answer["rows"]) == pipeline.tally()
    assert get_json(f"{base}/reconciliation") == {
        "status": "none",
        "summary": None,
        "differences": [],
        "note": "no reconciliation has run yet",
    }


def test_pages_of_a_small_limit_add_up_to_the_whole_answer(pipeline: Pipeline, serve: Serve) -> None:
    pipeline.send(pipeline.fleet_events(150, seed=4))
    pipeline.settle()
    base = serve(pipeline)
    whole = get_json(f"{base}/sales?granularity=window&limit=5000")
    assert whole["next"] is None
    assert len(whole["rows"]) > 3
    paged = all_rows(base, "granularity=window&limit=2")
    assert paged == whole["rows"]


def test_shards_give_running_totals_and_the_local_runtimes_lag(pipeline: Pipeline, serve: Serve) -> None:
    pipeline.send(pipeline.fleet_events(200, seed=5))
    pipeline.settle()
    base = serve(pipeline)
    answer = get_json(f"{base}/shards")
    assert [shard["shard_id"] for shard in answer["shards"]] == [
        "shardId-000000000000",
        "shardId-000000000001",
    ]
    net_by_currency: dict[str, int] = {}
    for shard in answer["shards"]:
        assert shard["events"] > 0
        assert shard["segments"] >= 1
        assert shard["last_window_end_age_ms"] >= 0
        assert shard["lag"]["AggregatorFunction.Orders"]["pending_records"] == 0
        for currency, totals in shard["currencies"].items():
            net_by_currency[currency] = net_by_currency.get(currency, 0) + totals["net_sales_minor"]
    tally: dict[str, int] = {}
    for (_, currency), net in pipeline.tally().items():
        tally[currency] = tally.get(currency, 0) + net
    assert net_by_currency == tally
    assert answer["lag"]["source"] == "runtime"
    assert answer["currencies"]["EUR"] == {"exponent": 2}


def test_on_aws_the_lag_is_the_aggregators_iterator_age_metric(pipeline: Pipeline, serve: Serve) -> None:
    function = pipeline.template.physical_name("AggregatorFunction")
    pipeline.endpoint.client("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "IteratorAge",
                "Dimensions": [{"Name": "FunctionName", "Value": function}],
                "Value": 1234.0,
                "Unit": "Milliseconds",
                "Timestamp": datetime.now(UTC) - timedelta(seconds=30),
            }
        ],
    )
    base = serve(pipeline, runtime_stats=False)
    lag = get_json(f"{base}/shards")["lag"]
    assert (lag["source"], lag["function"], lag["iterator_age_ms"]) == ("cloudwatch", function, 1234)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("granularity=minute", "unknown granularity 'minute'"),
        ("from=2026-11-23T12:00:00Z&to=2026-11-23T11:00:00Z", "must be before to"),
        ("from=noon", "is not a time"),
        ("from=2026-01-01&to=2026-11-01", "range too large"),
        ("shop=1", "unknown parameter(s) shop"),
        ("limit=0", "limit='0'"),
    ],
)
def test_bad_parameters_get_400_with_a_message(
    pipeline: Pipeline, serve: Serve, query: str, message: str
) -> None:
    answer = call(f"{serve(pipeline)}/sales?{query}")
    assert answer.status == 400
    assert answer.body["error"] == "bad_request"
    assert message in answer.body["message"]


def test_routes_that_do_not_exist_get_404_and_parameterless_routes_refuse_parameters(
    pipeline: Pipeline, serve: Serve
) -> None:
    base = serve(pipeline)
    assert call(f"{base}/windows").status == 404
    assert call(f"{base}/sales", method="POST").status == 404  # no such route in the template
    refused = call(f"{base}/shards?verbose=1")
    assert refused.status == 400
    assert "this route takes none" in refused.body["message"]
    assert call(f"{base}/reconciliation?x=").status == 400


def test_the_dashboard_page_is_served_with_a_policy_that_allows_only_its_own_scripts(
    pipeline: Pipeline, serve: Serve
) -> None:
    answer = call(f"{serve(pipeline)}/")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    library, page_script = re.findall(r"<script>(.*?)</script>", answer.body, flags=re.DOTALL)
    assert "The MIT License" in library  # the vendored chart library travels with its licence
    assert "uPlot (v1.6.32)" in library
    digests = [base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in (library, page_script)]
    policy = answer.headers["content-security-policy"]
    assert f"script-src 'sha256-{digests[0]}' 'sha256-{digests[1]}';" in policy
    assert "default-src 'none'" in policy
    assert "<!--vendor:" not in answer.body


def test_the_summary_gives_the_dashboards_headline_figures_from_the_sales_rows(
    pipeline: Pipeline, serve: Serve
) -> None:
    pipeline.send(pipeline.fleet_events(200, seed=6))
    pipeline.settle()
    base = serve(pipeline)
    summary = get_json(f"{base}/summary")
    today = datetime.now(UTC).date()
    assert summary["business_day"] == today.isoformat()
    days = all_rows(base, f"granularity=day&from={today}&to={today + timedelta(days=1)}")
    assert days  # the fleet's sales happen now
    net: dict[str, int] = {}
    for row in days:
        net[row["currency"]] = net.get(row["currency"], 0) + row["net_minor"]
    assert {code: totals["net_minor"] for code, totals in summary["today"].items()} == net
    assert {s["store_id"] for s in summary["stores"]} == {row["store_id"] for row in days}

    windows = all_rows(base, "granularity=window")
    newest = max(parse_rfc3339(row["end"]) for row in windows)
    assert summary["newest_window_end"] == rfc3339(newest)
    rate = summary["orders_per_minute"]
    since = parse_rfc3339(rate["from"])
    assert rate["orders"] == sum(row["orders"] for row in windows if parse_rfc3339(row["start"]) >= since)
    assert rate["value"] == round(rate["orders"] * 60 / rate["seconds"], 1)
    assert call(f"{base}/summary?day=1").status == 400


def test_when_the_data_cannot_be_read_the_api_answers_503_with_the_cause(
    pipeline: Pipeline, serve: Serve, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    base = serve(pipeline)
    for route in ("/summary", "/sales", "/shards", "/reconciliation"):
        answer = call(f"{base}{route}")
        assert answer.status == 503, (route, answer.body)
        assert answer.body["error"] == "backend_unavailable"
        assert answer.body["message"].startswith("the API cannot read its data: Could not connect")
        assert "http://127.0.0.1:9" in answer.body["message"]
    # counted for the operators' dashboard: the invocations themselves succeeded
    assert capsys.readouterr().out.count('"ApiBackendUnavailable":[1.0]') == 4


@pytest.fixture
def both_sources(make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path) -> Iterator[Pipeline]:
    """The stack with the orders table as a second source (OrdersTableSource=on)."""
    template, _ = make_stack(ShardCount=1, WindowSeconds=1, OrdersTableSource="on")
    cold_start()
    yield Pipeline(endpoint, template, tmp_path / "spool.jsonl", 1)
    cold_start()


def test_shards_list_both_sources_with_their_totals_and_lag_and_sales_add_both_up(
    both_sources: Pipeline, serve: Serve
) -> None:
    run = both_sources
    table = run.template.physical_name("OrdersTable")
    writer = TableWriter(run.endpoint.client("dynamodb"), table)
    table_events = run.fleet_events(90, seed=11)
    assert writer.submit_many(table_events) == []
    run.send(run.fleet_events(60, seed=12))
    run.settle()
    base = serve(run)
    answer = get_json(f"{base}/shards")

    assert answer["sources"] == [{"source": "stream", "name": run.stream}, {"source": "table", "name": table}]
    streams = run.endpoint.client("dynamodbstreams")
    stream_arn = run.endpoint.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    table_shards = [
        s["ShardId"] for s in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    ]
    kinesis_shards = [
        s["ShardId"] for s in run.endpoint.client("kinesis").list_shards(StreamName=run.stream)["Shards"]
    ]
    by_source: dict[str, list[dict[str, Any]]] = {}
    for shard in answer["shards"]:
        by_source.setdefault(shard["source"], []).append(shard)
    assert [s["shard_id"] for s in by_source["stream"]] == sorted(kinesis_shards)
    assert [s["shard_id"] for s in by_source["table"]] == sorted(table_shards)
    assert {s["source_name"] for s in by_source["table"]} == {table}

    def net_by_currency(shards: list[dict[str, Any]]) -> dict[str, int]:
        net: dict[str, int] = {}
        for shard in shards:
            for currency, totals in shard["currencies"].items():
                net[currency] = net.get(currency, 0) + totals["net_sales_minor"]
        return net

    def tally_by_currency(rows: Iterable[Any]) -> dict[str, int]:
        net: dict[str, int] = {}
        for row in rows:
            net[row.currency] = net.get(row.currency, 0) + row.net_minor
        return net

    assert sum(s["events"] for s in by_source["table"]) == len(table_events)
    assert net_by_currency(by_source["table"]) == tally_by_currency(writer.result.tally)
    assert net_by_currency(by_source["stream"]) == tally_by_currency(run.results[0].tally)
    for shard in by_source["table"]:
        assert shard["segments"] >= 1
        assert shard["last_window_end_age_ms"] >= 0
        # the runtime's lag on the table's mapping: no MillisBehindLatest, as DynamoDB Streams has none
        lag = shard["lag"]["AggregatorFunction.AggregatorOrdersTableMapping"]
        assert (lag["pending_records"], lag["millis_behind_latest"]) == (0, None)

    # the table's windows reach /sales through the speed layer too (no snapshot yet)
    both = run.tally()
    for row in writer.result.tally:
        both[(row.store_id, row.currency)] = both.get((row.store_id, row.currency), 0) + row.net_minor
    assert net_by_store(all_rows(base, "granularity=window")) == both
