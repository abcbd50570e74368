"""How far behind the stream the speed layer is, for `GET /shards`.

Locally the event-source-mapping runtime knows it per shard and writes it to its stats file
(`salesstream up` / `consume`, every 2 s): GetRecords' MillisBehindLatest, the age of the oldest
record read but not yet checkpointed, and how many such records there are. On AWS, Lambda keeps
that to itself and publishes the `IteratorAge` metric per function instead (AWS/Lambda, the age
of the last record of each batch when Lambda read it): the answer then carries the function's
latest one-minute maximum, not a value per shard.

Both sources have an iterator age: Lambda emits IteratorAge for its Kinesis and its DynamoDB
Streams mappings alike, under the function's dimensions (FunctionName, Resource, ExecutedVersion),
so with the orders table the aggregator's one series covers both mappings and says nothing of
which one is behind. Locally a table shard's entry has `iterator_age_ms` and `pending_records`
but no `millis_behind_latest`: DynamoDB Streams' GetRecords reports none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from salesstream.core.windows import rfc3339

_LAG_FIELDS: Final = ("millis_behind_latest", "iterator_age_ms", "pending_records", "open_window", "finished")
_METRIC_PERIOD_SECONDS: Final = 60
_METRIC_LOOKBACK: Final = timedelta(minutes=10)

logger = Logger()


class LagSource(Protocol):
    def lag(self, now_ms: int) -> dict[str, Any]:
        """`{"source": ..., "shards": {shard_id: {...}}, ...}`; never raises for a missing value."""
        ...


@dataclass(frozen=True)
class RuntimeStatsLag:
    """The local runtime's stats file: per shard, per mapping (function.event)."""

    path: Path

    def lag(self, now_ms: int) -> dict[str, Any]:
        try:
            stats = json.loads(self.path.read_text())
            written_ms = round(self.path.stat().st_mtime * 1000)
        except FileNotFoundError:
            return {
                "source": "runtime",
                "shards": {},
                "note": f"no runtime stats in {self.path.name}: are the consumers running "
                "(salesstream up without --no-consumers, or salesstream consume)?",
            }
        shards: dict[str, dict[str, Any]] = {}
        for entry in stats.get("shards", []):
            lag = {name: entry.get(name) for name in _LAG_FIELDS}
            shards.setdefault(entry["shard_id"], {})[entry["mapping"]] = lag
        return {
            "source": "runtime",
            "as_of": rfc3339(written_ms),
            "age_ms": max(0, now_ms - written_ms),
            "idle": stats.get("idle"),
            "errors": stats.get("errors", []),
            "shards": shards,
        }


@dataclass(frozen=True)
class CloudWatchLag:
    """Lambda's IteratorAge metric of the aggregator function (AWS)."""

    cloudwatch: Any
    function_name: str

    def lag(self, now_ms: int) -> dict[str, Any]:
        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        answer: dict[str, Any] = {
            "source": "cloudwatch",
            "metric": "AWS/Lambda IteratorAge, Maximum per minute",
            "function": self.function_name,
            "shards": {},
            "note": "Lambda publishes iterator age per function, not per shard: one series for "
            "all of the function's mappings (the Kinesis stream's and the orders table's)",
        }
        try:
            result = self.cloudwatch.get_metric_data(
                MetricDataQueries=[
                    {
                        "Id": "age",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "AWS/Lambda",
                                "MetricName": "IteratorAge",
                                "Dimensions": [{"Name": "FunctionName", "Value": self.function_name}],
                            },
                            "Period": _METRIC_PERIOD_SECONDS,
                            "Stat": "Maximum",
                        },
                    }
                ],
                StartTime=now - _METRIC_LOOKBACK,
                EndTime=now,
                ScanBy="TimestampDescending",
            )
        except (ClientError, BotoCoreError) as error:
            # the totals are still worth answering; the lag (and the log) say why it is missing
            logger.warning("iterator age unavailable", extra={"error": str(error)})
            return {**answer, "iterator_age_ms": None, "error": f"{type(error).__name__}: {error}"}
        series = result["MetricDataResults"][0]
        if not series["Values"]:
            return {**answer, "iterator_age_ms": None, "at": None}
        return {
            **answer,
            "iterator_age_ms": round(series["Values"][0]),
            "at": rfc3339(round(series["Timestamps"][0].timestamp() * 1000)),
        }
