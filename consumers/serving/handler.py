"""The serving API's Lambda handler (`ApiFunction`: an API Gateway HTTP API, payload 2.0): the
routes, through powertools' resolver, each a call of the process's `Api` (consumers/serving/api.py,
the queries) or the page (consumers/serving/page.py), and the HTTP error mapping: a bad request is
400, an unknown route 404, and when the data stores cannot be read the answer is 503 with the
cause, so the page can say what is wrong.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from botocore.exceptions import BotoCoreError, ClientError

from consumers.serving.api import Api
from consumers.serving.page import DASHBOARD, DASHBOARD_POLICY
from consumers.serving.speed import TableStreamMissing
from salesstream.core.query import BadRequest, parse_sales_query

logger = Logger()
app = APIGatewayHttpResolver()
ROUTES: Final = ("GET /", "GET /sales", "GET /summary", "GET /shards", "GET /reconciliation")


@cache
def api() -> Api:
    """The process's API, built on first use (clearing this cache is a cold start)."""
    return Api.from_environment()


def _no_parameters() -> None:
    given = sorted(app.current_event.query_string_parameters or {})
    if given:
        raise BadRequest(f"unknown parameter(s) {', '.join(given)}; this route takes none")


@app.get("/")
def dashboard() -> Response[str]:
    return Response(
        200,
        "text/html; charset=utf-8",
        DASHBOARD,
        headers={"Content-Security-Policy": DASHBOARD_POLICY, "Cache-Control": "no-cache"},
    )


@app.get("/sales")
def sales() -> dict[str, Any]:
    current = api()
    return current.sales(parse_sales_query(app.current_event.query_string_parameters, current.now_ms()))


@app.get("/summary")
def summary() -> dict[str, Any]:
    _no_parameters()
    return api().summary()


@app.get("/shards")
def shards() -> dict[str, Any]:
    _no_parameters()
    return api().shards()


@app.get("/reconciliation")
def reconciliation() -> dict[str, Any]:
    _no_parameters()
    return api().reconciliation()


@app.exception_handler(BadRequest)
def bad_request(error: BadRequest) -> Response[str]:
    return _error(400, "bad_request", str(error))


@app.exception_handler(BotoCoreError)
@app.exception_handler(ClientError)
@app.exception_handler(TableStreamMissing)
def backend_unavailable(error: BotoCoreError | ClientError | TableStreamMissing) -> Response[str]:
    """The tables, the streams or the bucket could not be read (the emulator stopped, a table
    deleted, access denied, an orders table without a stream): 503 with the cause, logged
    with its traceback, instead of API Gateway's bare 500."""
    logger.exception("the API could not read its data", extra={"route": app.current_event.path})
    # the invocation succeeds (a 503 is an answer), so Lambda's Errors miss it: count it here
    if not is_metrics_disabled():  # single_metric prints at once and ignores the switch itself
        with single_metric(name="ApiBackendUnavailable", unit=MetricUnit.Count, value=1):
            pass
    return _error(503, "backend_unavailable", f"the API cannot read its data: {error}")


@app.not_found
def not_found(_: NotFoundError) -> Response[str]:
    event = app.current_event
    return _error(
        404, "not_found", f"no route {event.http_method} {event.path}; this API serves {', '.join(ROUTES)}"
    )


def _error(status: int, code: str, message: str) -> Response[str]:
    return Response(status, content_types.APPLICATION_JSON, json.dumps({"error": code, "message": message}))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
