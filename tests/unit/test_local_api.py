"""The local HTTP API's translation, without a socket: routes, the payload 2.0 event, the answer."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from consumers.serving.lag import RuntimeStatsLag
from salesstream.emulator.local_api import LocalHttpApi, Route, http_api_event, http_response
from salesstream.runtime.invoker import FunctionInvoker


def invoker(handler: Any = lambda event, context: event) -> FunctionInvoker:
    return FunctionInvoker(
        handler, function_name="api", function_arn="arn:local", memory_mb=128, timeout_seconds=5
    )


def test_routes_match_like_api_gateway() -> None:
    sales = Route("GET", "/sales", invoker())
    item = Route("GET", "/items/{id}", invoker())
    proxy = Route("ANY", "/files/{path+}", invoker())
    assert sales.match("GET", "/sales") == {}
    assert sales.match("POST", "/sales") is None
    assert sales.match("GET", "/sales/x") is None
    assert item.match("GET", "/items/42") == {"id": "42"}
    assert item.match("GET", "/items/4/2") is None
    assert proxy.match("DELETE", "/files/a/b.txt") == {"path": "a/b.txt"}
    assert sorted([proxy, item, sales], key=lambda route: route.rank) == [sales, item, proxy]


def test_the_event_is_payload_format_2() -> None:
    route = Route("GET", "/sales", invoker())
    event = http_api_event(
        "GET",
        "/sales?store=s1&granularity=hour&store=s2&empty=",
        [
            ("Host", "127.0.0.1:8000"),
            ("User-Agent", "test"),
            ("X-Many", "a"),
            ("X-Many", "b"),
            ("Cookie", "a=1; b=2"),
        ],
        b"",
        route,
        {},
        "127.0.0.1:8000",
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /sales"
    assert (event["rawPath"], event["rawQueryString"]) == (
        "/sales",
        "store=s1&granularity=hour&store=s2&empty=",
    )
    assert event["queryStringParameters"] == {"store": "s1,s2", "granularity": "hour", "empty": ""}
    assert event["headers"] == {"host": "127.0.0.1:8000", "user-agent": "test", "x-many": "a,b"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["requestContext"]["http"] == {
        "method": "GET",
        "path": "/sales",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "test",
    }
    assert event["requestContext"]["stage"] == "$default"
    assert "pathParameters" not in event
    assert "body" not in event
    assert event["isBase64Encoded"] is False


def test_a_binary_body_is_base64_and_no_query_means_no_parameters() -> None:
    event = http_api_event("POST", "/x", [], b"\xff\x00", Route("POST", "/x", invoker()), {}, "h")
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00"
    assert "queryStringParameters" not in event


def test_answers_follow_the_payload_2_response_rules() -> None:
    assert http_response(
        {"statusCode": 201, "headers": {"X-A": "1"}, "body": "hi", "cookies": ["c=1", "d=2"]}
    ) == (
        201,
        [("x-a", "1"), ("set-cookie", "c=1"), ("set-cookie", "d=2")],
        b"hi",
    )
    assert (
        http_response(
            {"statusCode": 200, "body": base64.b64encode(b"\x01").decode(), "isBase64Encoded": True}
        )[2]
        == b"\x01"
    )
    # no statusCode: API Gateway infers 200 and sends the answer as JSON
    assert http_response({"rows": []}) == (200, [("content-type", "application/json")], b'{"rows": []}')


def test_unknown_routes_and_failing_functions_get_api_gateways_answers() -> None:
    def boom(event: Any, context: Any) -> Any:
        raise RuntimeError("broken")

    api = LocalHttpApi.__new__(LocalHttpApi)  # the routing alone; no socket is opened
    api.routes = [
        Route("GET", "/ok", invoker(lambda e, c: {"statusCode": 200, "body": e["rawPath"]})),
        Route("GET", "/boom", invoker(boom)),
    ]
    assert api.answer("GET", "/ok", [], b"", "h") == (200, [], b"/ok")
    assert api.answer("GET", "/nowhere", [], b"", "h") == (
        404,
        [("content-type", "application/json")],
        b'{"message":"Not Found"}',
    )
    assert api.answer("GET", "/boom", [], b"", "h")[0] == 500


def test_runtime_stats_give_the_lag_per_shard_and_mapping(tmp_path: Path) -> None:
    stats = tmp_path / "runtime-stats.json"
    lag = RuntimeStatsLag(stats)
    missing = lag.lag(0)
    assert missing["shards"] == {}
    assert "are the consumers running" in missing["note"]
    stats.write_text(
        json.dumps(
            {
                "idle": False,
                "errors": [],
                "shards": [
                    {
                        "mapping": "AggregatorFunction.Orders",
                        "shard_id": "shardId-1",
                        "millis_behind_latest": 5,
                        "iterator_age_ms": 1200,
                        "pending_records": 3,
                        "open_window": "2026-11-23T21:00:00Z",
                        "finished": False,
                    },
                    {
                        "mapping": "ArchiverFunction.Orders",
                        "shard_id": "shardId-1",
                        "millis_behind_latest": 0,
                        "iterator_age_ms": 0,
                        "pending_records": 0,
                        "open_window": None,
                        "finished": False,
                    },
                ],
            }
        )
    )
    found = lag.lag(round(stats.stat().st_mtime * 1000) + 700)
    assert found["age_ms"] == 700
    assert found["idle"] is False
    assert found["shards"]["shardId-1"]["AggregatorFunction.Orders"]["iterator_age_ms"] == 1200
    assert found["shards"]["shardId-1"]["ArchiverFunction.Orders"]["pending_records"] == 0
