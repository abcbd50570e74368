"""The speed-layer aggregator's Lambda handler: a tumbling-window handler on the order stream.

Lambda (or the local event-source-mapping runtime) invokes it per shard and window with a batch
of Kinesis records, or of the orders table's DynamoDB Streams records (the event's
eventSourceARN says which), and the window's state so far. The handler decodes the records (one
decode step per source, into one shape), resumes the state, runs the window step
(consumers/speed/aggregate.py), turns the state and the first record not folded back into the
answer, and reports the step: one log line and the EMF metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Union

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from consumers.common.telemetry import log_metrics
from consumers.speed.aggregate import Aggregator, WindowStep
from salesstream.core.aggregation import StateLayoutChanged, WindowState
from salesstream.core.records import DecodedBatch, decode_records
from salesstream.core.window_events import KinesisWindowEvent, is_table_stream, parse_kinesis_window_event
from salesstream.core.windows import parse_rfc3339

if TYPE_CHECKING:
    from salesstream.core.lambda_events import BatchItemFailure, DynamodbTimeWindowEvent
    from salesstream.core.table_records import TableDecoded

logger = Logger()
metrics = Metrics()
WindowEvent = Union[KinesisWindowEvent, "DynamodbTimeWindowEvent"]


@cache
def aggregator() -> Aggregator:
    """The process's aggregator, built on first use (clearing this cache is a cold start)."""
    return Aggregator.from_environment()


@log_metrics(metrics)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    window_event, batch, table = decode(event)
    app = aggregator()
    state = resume(window_event.state)
    before = Counts.of(state)
    step = app.step(
        window_event.shardId,
        window_event.window.window(),
        batch,
        state,
        from_table=table is not None,
        closes=window_event.isFinalInvokeForWindow or window_event.isWindowTerminatedEarly,
        terminated_early=window_event.isWindowTerminatedEarly,
    )
    response = answer(step, batch)
    report(window_event, batch, before, step, response)
    if table is not None:
        report_table_changes(table)
    return response


def decode(event: dict[str, Any]) -> tuple[WindowEvent, DecodedBatch, TableDecoded | None]:
    """The window event and its records in the one shape both sources decode into (with what
    the table's stream carried besides, for the report)."""
    if not is_table_stream(str(event.get("eventSourceARN", ""))):
        window_event = parse_kinesis_window_event(event)
        return window_event, decode_records(window_event.Records), None
    # the orders table's stream: pydantic's models, imported by the first such invocation
    from salesstream.core.lambda_events import DynamodbTimeWindowEvent
    from salesstream.core.table_records import decode_table_records

    table_event = DynamodbTimeWindowEvent.model_validate(event)
    table = decode_table_records(table_event.Records)
    return table_event, table.batch, table


def answer(step: WindowStep, batch: DecodedBatch) -> dict[str, Any]:
    """The shape of lambda_events.TimeWindowEventResponse (without `state` AWS counts a failure)."""
    return {
        "state": step.state.to_json(),
        "batchItemFailures": [failure.model_dump() for failure in failures(batch, step.cutoff)],
    }


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
    step: WindowStep,
    response: dict[str, Any],
) -> None:
    """One structured log line and the EMF metrics of the invocation (never a payload)."""
    state, stored, caught_up, persisted = step.state, step.stored, step.caught_up, step.persisted
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
            "already_in_state": step.already_in_state,
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
