"""The aggregator's configuration, read once per process from the function's environment
(deploy/template.yaml sets every variable; a missing one fails at start-up with its name)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from salesstream.core.windows import MAX_WINDOW_SECONDS


class AggregatorSettings(BaseSettings):
    """AGGREGATES_TABLE, QUARANTINE_TABLE, ARCHIVE_BUCKET, STREAM_NAME, WINDOW_SECONDS,
    DEDUP_HORIZON_SECONDS."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    aggregates_table: str
    quarantine_table: str
    archive_bucket: str  # the dedup log
    stream_name: str
    window_seconds: Annotated[int, Field(gt=0, le=MAX_WINDOW_SECONDS)]
    dedup_horizon_seconds: Annotated[int, Field(ge=0)]
