"""The batch layer's configuration: the snapshot function's environment on Lambda
(deploy/template.yaml sets every required variable; a missing one fails at start-up with its
name); `salesstream snapshot` and `reconcile` fill the same object from the template."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from salesstream.core.windows import MAX_WINDOW_SECONDS


class BatchSettings(BaseSettings):
    """ARCHIVE_BUCKET, BATCH_TABLE, AGGREGATES_TABLE, QUARANTINE_TABLE, STREAM_NAME,
    FAILURES_QUEUE, AGGREGATOR_FUNCTION, ARCHIVER_FUNCTION, WINDOW_SECONDS,
    DEDUP_HORIZON_SECONDS; ORDERS_TABLE only with the table source on; the SNAPSHOT_* tuning
    has defaults."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    archive_bucket: str
    batch_table: str
    aggregates_table: str
    quarantine_table: str
    stream_name: str
    failures_queue: str  # the on-failure queue's URL (Ref of an SQS queue)
    # names of the stream consumers, to tell whose on-failure notice is whose
    aggregator_function: str
    archiver_function: str
    window_seconds: Annotated[int, Field(gt=0, le=MAX_WINDOW_SECONDS)]
    dedup_horizon_seconds: Annotated[int, Field(ge=0)]
    # the orders table, when it is a source too: the horizon probes its stream's shards as well
    orders_table: str | None = None
    # slack between the stream's clock (arrival stamps) and this process's, for a caught-up shard
    snapshot_horizon_grace_seconds: Annotated[float, Field(ge=0)] = 2.0
    # sightings judged in memory at once (the snapshot's partitions are sized for it)
    snapshot_partition_events: Annotated[int, Field(gt=0)] = 100_000
    # sightings buffered by the scan before its partitions are written and the cursor saved
    snapshot_chunk_lines: Annotated[int, Field(gt=0)] = 100_000
