"""The speed-layer aggregator: a tumbling-window Lambda handler on the order stream.

Lambda (or the local event-source-mapping runtime) invokes it per shard and window with a batch
of Kinesis records, or of the orders table's DynamoDB Streams records (the event's
eventSourceARN says which), and the window's state so far. It decodes the records (one decode
step per source, into one shape), judges each event
against the dedup index, quarantines what it refused, folds the rest into the state and, on the
window's final invocation (or when AWS ended the window early), persists the segment. Settings,
clients and the dedup index live once per process and survive warm invocations.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Union

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from consumers.common.clients import CLIENT_CONFIG
from consumers.common.quarantine import Quarantine, Stored
from consumers.common.shards import StreamShards
from consumers.common.telemetry import log_metrics
from consumers.speed.dedup_log import CatchUp, DedupLog
from consumers.speed.segments import Persisted, SegmentStore
from consumers.speed.settings import AggregatorSettings
from salesstream.core.aggregation import StateLayoutChanged, WindowState, segment_of
from salesstream.core.dedup import DedupIndex
from salesstream.core.records import DecodedBatch, decode_records
from salesstream.core.window_events import KinesisWindowEvent, is_table_stream, parse_kinesis_window_event
from salesstream.core.window_fold import apply, plan
from salesstream.core.windows import parse_rfc3339

if TYPE_CHECKING:
    from salesstream.core.lambda_events import BatchItemFailure, DynamodbTimeWindowEvent
    from salesstream.core.table_records import TableDecoded

logger = Logger()
metrics = Metrics()
WindowEvent = Union[KinesisWindowEvent, "DynamodbTimeWindowEvent"]


class QuarantineUnavailable(RuntimeError):
    """A final invocation could not quarantine some record: the window cannot close without it."""


@dataclass
class Aggregator:
    """What one process keeps between invocations."""

    settings: AggregatorSettings
    shards: StreamShards
    index: DedupIndex
    log: DedupLog
    quarantine: Quarantine
    segments: SegmentStore
    # Lambda runs one invocation at a time per process; the local runtime may run shards in
    # threads, so whatever reads and changes the index holds this lock
    index_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_environment(cls) -> Aggregator:
        settings = AggregatorSettings.from_environment()
        session = boto3.session.Session()
        dynamodb, s3, kinesis = (
            session.client(name, config=CLIENT_CONFIG) for name in ("dynamodb", "s3", "kinesis")
        )
        window_ms = settings.window_seconds * 1000
        shards = StreamShards(kinesis, settings.stream_name)
        return cls(
            settings=settings,
            shards=shards,
            index=DedupIndex(horizon_ms=settings.dedup_horizon_seconds * 1000, slack_ms=window_ms),
            log=DedupLog(s3, shards, settings.archive_bucket, window_ms),
            quarantine=Quarantine(dynamodb, s3, settings.quarantine_table, settings.archive_bucket),
            segments=SegmentStore(dynamodb, settings.aggregates_table),
        )

    def catch_up(self, shard: str, batch: DecodedBatch, state: WindowState, *, from_table: bool) -> CatchUp:
        """Bring the dedup index up to date with the shard's log before judging the batch. A
        table's shard needs no ancestors' logs: its event ids are the table's keys, and a key
        seen again in a later shard is a MODIFY, judged from the record's own images."""
        if not batch.records:
            return CatchUp()
        ancestors: list[str] | None = [] if from_table else None
        return self.log.catch_up(
            self.index, shard, batch.records[0].arrival_ms, state.log_key, ancestors=ancestors
        )

    def close(self, state: WindowState, window_event: WindowEvent, stored: Stored) -> Persisted | None:
        """Persist the segment of a window that ended (or that AWS ended early)."""
        if stored.failed_records:
            # a window cannot close while records of it are neither folded nor quarantined
            raise QuarantineUnavailable(
                f"{len(stored.failed_records)} record(s) of {window_event.shardId}: {stored.errors[:3]}"
            )
        if state.is_empty:
            return None
        segment = segment_of(
            state,
            window_event.shardId,
            window_event.window.window(),
            terminated_early=window_event.isWindowTerminatedEarly,
        )
        return self.segments.persist(segment)


@cache
def aggregator() -> Aggregator:
    """The process's aggregator, built on first use (clearing this cache is a cold start)."""
    return Aggregator.from_environment()


@log_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from_table = is_table_stream(str(event.get("eventSourceARN", "")))
    table: TableDecoded | None = None
    window_event: WindowEvent
    if from_table:
        # the orders table's stream: pydantic's models, imported by the first such invocation
        from salesstream.core.lambda_events import DynamodbTimeWindowEvent
        from salesstream.core.table_records import decode_table_records

        window_event = DynamodbTimeWindowEvent.model_validate(event)
        table = decode_table_records(window_event.Records)
        batch = table.batch
    else:
        window_event = parse_kinesis_window_event(event)
        batch = decode_records(window_event.Records)
    app = aggregator()
    shard, window = window_event.shardId, window_event.window.window()
    state = resume(window_event.state)
    before = Counts.of(state)

    with app.index_lock:
        caught_up = app.catch_up(shard, batch, state, from_table=from_table)
        planned = plan(state, app.index, shard, batch)
    stored = app.quarantine.store(shard, window, batch.records, planned.to_quarantine)
    cutoff = min(stored.failed_records, default=len(batch.records))
    logged = apply(state, batch, planned, cutoff)
    if logged:
        state.log_key = app.log.append(app.index, shard, logged)
    persisted = None
    if window_event.isFinalInvokeForWindow or window_event.isWindowTerminatedEarly:
        persisted = app.close(state, window_event, stored)
    with app.index_lock:
        app.index.evict(shard)

    # the shape of lambda_events.TimeWindowEventResponse (without `state` AWS counts a failure)
    response = {
        "state": state.to_json(),
        "batchItemFailures": [failure.model_dump() for failure in failures(batch, cutoff)],
    }
    report(window_event, batch, before, state, planned.start, stored, caught_up, persisted, response)
    if table is not None:
        report_table_changes(table)
    return response


def report_table_changes(table: TableDecoded) -> None:
    """What the table's stream carried that is not counted: unchanged items, removals."""
    for name, count in (
        ("TableUnchanged", table.unchanged),
        ("TableRemoved", table.removed),
        ("TableExpired", table.expired),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
    if table.unchanged or table.removed or table.expired:
        logger.info(
            "table changes not counted",
            extra={"unchanged": table.unchanged, "removed": table.removed, "expired": table.expired},
        )


def resume(state: dict[str, Any]) -> WindowState:
    """The window state so far; a state of another layout version restarts the segment."""
    try:
        return WindowState.resume(state)
    except StateLayoutChanged as changed:
        logger.error(
            "window state of another layout dropped; reconciliation will show its events",
            extra={"error": str(changed)},
        )
        metrics.add_metric(name="StateLayoutResets", unit=MetricUnit.Count, value=1)
        return WindowState()


def failures(batch: DecodedBatch, cutoff: int) -> list[BatchItemFailure]:
    """The first record that could not be quarantined: Lambda redelivers from there."""
    if cutoff >= len(batch.records):
        return []
    from salesstream.core.lambda_events import BatchItemFailure  # pydantic: on a failure only

    return [BatchItemFailure(itemIdentifier=batch.records[cutoff].sequence_number)]


@dataclass(frozen=True)
class Counts:
    events: int
    duplicates: int
    quarantined: dict[str, int]

    @classmethod
    def of(cls, state: WindowState) -> Counts:
        return cls(state.events, state.duplicates, dict(state.quarantined))


def report(
    window_event: WindowEvent,
    batch: DecodedBatch,
    before: Counts,
    state: WindowState,
    already_in_state: int,
    stored: Stored,
    caught_up: CatchUp,
    persisted: Persisted | None,
    response: dict[str, Any],
) -> None:
    """One structured log line and the EMF metrics of the invocation (never a payload)."""
    state_bytes = len(json.dumps(response["state"], separators=(",", ":")))
    folded = state.events - before.events
    duplicates = state.duplicates - before.duplicates
    quarantined = {
        reason: count - before.quarantined.get(reason, 0)
        for reason, count in state.quarantined.items()
        if count != before.quarantined.get(reason, 0)
    }
    metrics.add_metric(name="EventsCounted", unit=MetricUnit.Count, value=folded)
    metrics.add_metric(name="Duplicates", unit=MetricUnit.Count, value=duplicates)
    metrics.add_metric(
        name="Conflicts", unit=MetricUnit.Count, value=quarantined.get("duplicate_conflict", 0)
    )
    metrics.add_metric(name="StateBytes", unit=MetricUnit.Bytes, value=state_bytes)
    if persisted is not None and window_event.isFinalInvokeForWindow:
        # the window's totals are written: how fresh the speed layer is (the operators' dashboard)
        visible_ms = time.time() * 1000 - parse_rfc3339(window_event.window.end)
        metrics.add_metric(name="WindowEndToVisibleMs", unit=MetricUnit.Milliseconds, value=visible_ms)
    if state.lateness.count:
        metrics.add_metric(
            name="WindowLatenessMaxMs", unit=MetricUnit.Milliseconds, value=state.lateness.max_ms
        )
        metrics.add_metric(
            name="WindowLatenessMeanMs", unit=MetricUnit.Milliseconds, value=state.lateness.mean_ms
        )
        # negative when a terminal's clock runs ahead of the stream's: skew the maximum never shows
        metrics.add_metric(
            name="WindowLatenessMinMs", unit=MetricUnit.Milliseconds, value=state.lateness.min_ms
        )
    # single_metric prints at once and, unlike the Metrics flush, ignores POWERTOOLS_METRICS_DISABLED
    for reason, count in quarantined.items() if not is_metrics_disabled() else ():
        with single_metric(name="Quarantined", unit=MetricUnit.Count, value=count) as metric:
            metric.add_dimension(name="reason", value=reason)
    logger.info(
        "window step",
        extra={
            "shard": window_event.shardId,
            "window": window_event.window.start,
            "records": len(batch.records),
            "already_in_state": already_in_state,
            "events_folded": folded,
            "duplicates": duplicates,
            "quarantined": quarantined,
            "quarantine_errors": stored.errors[:3],
            "redelivered_from": response["batchItemFailures"][0]["itemIdentifier"]
            if response["batchItemFailures"]
            else None,
            "dedup_catch_up": vars(caught_up),
            "final": window_event.isFinalInvokeForWindow,
            "terminated_early": window_event.isWindowTerminatedEarly,
            "persisted": None if persisted is None else vars(persisted),
            "state_bytes": state_bytes,
        },
    )
