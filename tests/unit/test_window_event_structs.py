"""The aggregator parses its Kinesis event with msgspec structs (salesstream/core/window_events.py),
the local runtime builds it with pydantic's models (salesstream/core/lambda_events.py): both read
every event alike, so the two cannot drift."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from consumers.speed.settings import AggregatorSettings, SettingsError
from salesstream.core.lambda_events import KinesisTimeWindowEvent
from salesstream.core.window_events import KinesisWindowEvent, parse_kinesis_window_event
from tests.conftest import load_event
from tests.window_events import Shard, kpl, order


def _read(event: KinesisWindowEvent | KinesisTimeWindowEvent) -> tuple[Any, ...]:
    records = [
        (
            r.kinesis.partitionKey,
            r.kinesis.sequenceNumber,
            r.kinesis.data,
            r.kinesis.approximateArrivalTimestamp,
            r.eventID,
            r.eventSourceARN,
        )
        for r in event.Records
    ]
    return (
        records,
        event.window.window(),
        event.shardId,
        event.eventSourceARN,
        event.isFinalInvokeForWindow,
        event.isWindowTerminatedEarly,
        event.state,
    )


def events() -> list[dict[str, Any]]:
    shard = Shard()
    first = [shard.put(kpl(order("store-1", 100), order("store-2", 250))), shard.put(order("store-3", 5))]
    return [
        load_event("kinesis_tumbling_window.json"),  # the AWS documentation's sample
        shard.event(first),
        shard.event([], {"v": 1}, final=True),
        shard.event([shard.put(order("store-1", 7))], terminated_early=True),
        # as JSON over the wire (the runtime's invoke path), and with a field AWS might add
        json.loads(json.dumps({**shard.event(first), "someNewField": {"x": 1}})),
    ]


@pytest.mark.parametrize("event", events())
def test_both_read_the_same_event(event: dict[str, Any]) -> None:
    assert _read(parse_kinesis_window_event(event)) == _read(KinesisTimeWindowEvent.model_validate(event))


def test_both_refuse_an_event_without_its_shard() -> None:
    event = events()[1]
    del event["shardId"]
    with pytest.raises(msgspec.ValidationError, match="shardId"):
        parse_kinesis_window_event(event)
    with pytest.raises(ValueError, match="shardId"):
        KinesisTimeWindowEvent.model_validate(event)


ENVIRONMENT = {
    "AGGREGATES_TABLE": "aggregates",
    "QUARANTINE_TABLE": "quarantine",
    "ARCHIVE_BUCKET": "archive",
    "STREAM_NAME": "orders",
    "WINDOW_SECONDS": "60",
    "DEDUP_HORIZON_SECONDS": "300",
    "SOMETHING_ELSE": "ignored",
}


def test_the_settings_come_from_the_environment() -> None:
    settings = AggregatorSettings.from_environment(ENVIRONMENT)
    assert (settings.aggregates_table, settings.window_seconds, settings.dedup_horizon_seconds) == (
        "aggregates",
        60,
        300,
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [({"STREAM_NAME": None}, "stream_name"), ({"WINDOW_SECONDS": "0"}, "window_seconds")],
)
def test_a_missing_or_bad_setting_fails_with_its_name(change: dict[str, str | None], named: str) -> None:
    environment = {k: v for k, v in {**ENVIRONMENT, **change}.items() if v is not None}
    with pytest.raises(SettingsError, match=named):
        AggregatorSettings.from_environment(environment)
