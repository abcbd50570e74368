"""The serving API: an API Gateway HTTP API (payload 2.0) Lambda handler.

`GET /sales` merges the batch view (up to the snapshot horizon) with the speed layer (after it),
`GET /shards` gives the running totals per shard and the consumers' lag, `GET /reconciliation`
the latest reconciliation, `GET /summary` the dashboard's headline figures, `GET /` the dashboard
page that shows them all. Settings, clients and readers live once per process; the route functions
only translate between HTTP and them. When the data stores cannot be read the answer is 503 with
the cause, so the page can say what is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.resources import files
from typing import Any, Final

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from botocore.exceptions import BotoCoreError, ClientError

from consumers.batch.views import BatchViews, SnapshotInfo
from consumers.common.clients import CLIENT_CONFIG
from consumers.serving.batch import reconciliation_json, snapshot_rows, sources_of
from consumers.serving.lag import CloudWatchLag, LagSource, RuntimeStatsLag
from consumers.serving.settings import ApiSettings
from consumers.serving.speed import SpeedLayer
from consumers.serving.summary import RATE_SPAN_MS, summarize
from consumers.speed.layout import SHARD_COUNTERS
from salesstream.core.currencies import minor_unit_exponent
from salesstream.core.merge import Page, Row, merge
from salesstream.core.query import DAY_MS, BadRequest, Granularity, SalesQuery, parse_sales_query
from salesstream.core.windows import parse_rfc3339, rfc3339

logger = Logger()
app = APIGatewayHttpResolver()
ROUTES: Final = ("GET /", "GET /sales", "GET /summary", "GET /shards", "GET /reconciliation")
# the page inlines the vendored chart library (uPlot, MIT): one self-contained answer, no build step
VENDORED: Final = ("uplot.min.css", "uplot.min.js", "uplot.LICENSE.txt")


def _dashboard() -> tuple[str, str]:
    """The page with the chart library inlined, and a Content-Security-Policy that allows its
    inline scripts and nothing from elsewhere."""
    folder = files("consumers.serving")
    style, library, licence = (folder.joinpath(name).read_text(encoding="utf-8") for name in VENDORED)
    page = (
        folder.joinpath("dashboard.html")
        .read_text(encoding="utf-8")
        .replace("<!--vendor:uplot.min.css-->", f"<style>{style}</style>")
        .replace("<!--vendor:uplot.min.js-->", f"<script>/*!\n{licence}*/\n{library}</script>")
    )
    digests = [
        base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        for script in re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    ]
    scripts = " ".join(f"'sha256-{digest}'" for digest in digests)
    policy = f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; connect-src 'self'"
    return page, policy


DASHBOARD, DASHBOARD_POLICY = _dashboard()


@dataclass
class Api:
    """What one process keeps between requests."""

    settings: ApiSettings
    views: BatchViews
    speed: SpeedLayer
    lag: LagSource
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def from_environment(cls) -> Api:
        settings = ApiSettings()  # every field comes from the environment
        session = boto3.session.Session()
        dynamodb, s3, kinesis = (
            session.client(name, config=CLIENT_CONFIG) for name in ("dynamodb", "s3", "kinesis")
        )
        lag: LagSource = (
            RuntimeStatsLag(settings.runtime_stats_file)
            if settings.runtime_stats_file is not None
            else CloudWatchLag(
                session.client("cloudwatch", config=CLIENT_CONFIG), settings.aggregator_function
            )
        )
        views = BatchViews(
            dynamodb,
            s3,
            batch_table=settings.batch_table,
            aggregates_table=settings.aggregates_table,
            bucket=settings.archive_bucket,
        )
        return cls(
            settings=settings,
            views=views,
            speed=SpeedLayer(views, dynamodb, kinesis, settings.stream_name),
            lag=lag,
        )

    def now_ms(self) -> int:
        return round(self.clock() * 1000)

    def sales(self, query: SalesQuery) -> dict[str, Any]:
        snapshot = self.views.latest_snapshot()
        return {
            **query.describe(),
            "window_seconds": self.settings.window_seconds,
            "sources": sources_of(snapshot),
            **self._page(query, snapshot).as_json(),
        }

    def _page(self, query: SalesQuery, snapshot: SnapshotInfo | None) -> Page:
        horizon = snapshot.horizon_ms if snapshot is not None else None
        window_ms = self.settings.window_seconds * 1000
        low, high = query.window_starts() or (0, self.now_ms() + window_ms)
        if horizon is not None:  # the speed layer answers for windows ending after the horizon only
            low = max(low, horizon - window_ms + 1)
        return merge(
            query,
            horizon,
            snapshot_rows(self.views, snapshot, query) if snapshot is not None else (),
            self.speed.rows(low, high),
        )

    def _all_rows(self, query: SalesQuery, snapshot: SnapshotInfo | None) -> list[Row]:
        """Every row the query selects, in one pass (no page limit: the summary's own queries)."""
        return self._page(replace(query, limit=2**62), snapshot).rows

    def summary(self) -> dict[str, Any]:
        now = self.now_ms()
        midnight = now - now % DAY_MS  # today, UTC
        day = SalesQuery(Granularity.DAY, from_ms=midnight, to_ms=midnight + DAY_MS)
        # windows of the last 10 minutes: orders per minute over the 5 up to the newest closed one
        recent_from = now - 2 * RATE_SPAN_MS - self.settings.window_seconds * 1000
        windows = SalesQuery(Granularity.WINDOW, from_ms=recent_from, to_ms=now)
        snapshot = self.views.latest_snapshot()  # one horizon for both queries
        return {
            **summarize(day.from_day, self._all_rows(day, snapshot), self._all_rows(windows, snapshot), now),
            "window_seconds": self.settings.window_seconds,
        }

    def shards(self) -> dict[str, Any]:
        now = self.now_ms()
        lag = self.lag.lag(now)
        totals = self.speed.shard_totals()
        shards = []
        for shard_id in sorted(self.speed.shard_ids()):  # a shard without a closed window yet too
            shard = totals.get(shard_id) or {"currencies": {}, **dict.fromkeys(SHARD_COUNTERS, 0)}
            last_end = shard.get("last_window_end") or None
            shards.append(
                {
                    "shard_id": shard_id,
                    **shard,
                    "last_window_end": last_end,
                    # how old the newest closed window is: a freshness measure on every target
                    "last_window_end_age_ms": now - parse_rfc3339(last_end) if last_end else None,
                    "lag": lag["shards"].get(shard_id),
                }
            )
        currencies = sorted({code for shard in shards for code in shard["currencies"]})
        return {
            "generated_at": rfc3339(now),
            "shards": shards,
            "currencies": {code: {"exponent": minor_unit_exponent(code)} for code in currencies},
            "lag": {name: value for name, value in lag.items() if name != "shards"},
        }

    def reconciliation(self) -> dict[str, Any]:
        return reconciliation_json(self.views)


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
def backend_unavailable(error: BotoCoreError | ClientError) -> Response[str]:
    """The tables or the bucket could not be read (the emulator stopped, a table deleted, access
    denied): 503 with the cause, logged with its traceback, instead of API Gateway's bare 500."""
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
