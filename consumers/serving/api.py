"""The serving layer's use case: the `Api` object one process keeps between requests (settings,
clients, the readers of both layers and of the lag) and its queries, each answering a route's
JSON. `GET /sales` merges the batch view (up to the snapshot horizon) with the speed layer (after
it), `GET /shards` gives the running totals per shard and the consumers' lag, `GET /reconciliation`
the latest reconciliation, `GET /summary` the dashboard's headline figures. What Lambda hands in
and gets back (the routes, HTTP errors) is consumers/serving/handler.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import boto3

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
from salesstream.core.query import DAY_MS, Granularity, SalesQuery
from salesstream.core.windows import parse_rfc3339, rfc3339


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
        dynamodb, s3, kinesis, streams = (
            session.client(name, config=CLIENT_CONFIG)
            for name in ("dynamodb", "s3", "kinesis", "dynamodbstreams")
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
            speed=SpeedLayer(
                views, dynamodb, kinesis, settings.stream_name, streams, orders_table=settings.orders_table
            ),
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
        sources = self.speed.shard_sources()
        totals = self.speed.shard_totals()
        shards = []
        # by source (the stream first), then by id; a shard without a closed window yet too
        for shard_id, source in sorted(sources.items(), key=lambda entry: (entry[1].kind, entry[0])):
            shard = totals.get(shard_id) or {"currencies": {}, **dict.fromkeys(SHARD_COUNTERS, 0)}
            last_end = shard.get("last_window_end") or None
            shards.append(
                {
                    "shard_id": shard_id,
                    "source": source.kind,
                    "source_name": source.name,
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
            "sources": [source.as_json() for source in self.speed.sources()],
            "lag": {name: value for name, value in lag.items() if name != "shards"},
        }

    def reconciliation(self) -> dict[str, Any]:
        return reconciliation_json(self.views)
