"""Configuration of the API function, read once per process from its environment
(deploy/template.yaml sets every variable but RUNTIME_STATS_FILE; a missing one fails at start-up
with its name)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from salesstream.core.windows import MAX_WINDOW_SECONDS


class ApiSettings(BaseSettings):
    """AGGREGATES_TABLE, BATCH_TABLE, ARCHIVE_BUCKET, STREAM_NAME, WINDOW_SECONDS, AGGREGATOR_FUNCTION;
    ORDERS_TABLE, the orders table whose stream the aggregator also reads (empty when the template
    has none: OrdersTableSource=off); and, locally only, RUNTIME_STATS_FILE (`salesstream serve` /
    `up` set it): the lag comes from the local runtime's stats instead of CloudWatch."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    aggregates_table: str
    batch_table: str
    archive_bucket: str
    stream_name: str
    window_seconds: Annotated[int, Field(gt=0, le=MAX_WINDOW_SECONDS)]
    aggregator_function: str
    orders_table: str | None = None
    runtime_stats_file: Path | None = None
