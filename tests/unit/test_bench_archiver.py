"""The archiver benchmark times what it says: every event of its invocations is archived (none
refused or set aside, which would flatter the rate), through the handler's own code."""

from __future__ import annotations

from consumers.archiver.handler import archive_object
from load_tests.bench_aggregator import order_payloads, windowed_invocations
from load_tests.bench_archiver import WHOLE_RANGE
from salesstream.core.archive import read_object
from salesstream.core.lambda_events import KinesisEvent


def test_every_benchmarked_event_is_archived() -> None:
    events = order_payloads(2_000)
    (invocation,) = windowed_invocations(events)[:1]
    records = KinesisEvent.model_validate({"Records": invocation["Records"]}).Records
    archived, body = archive_object(WHOLE_RANGE, records)
    assert (archived.events, archived.refused, archived.misplaced) == (2_000, 0, 0)
    assert [line.raw for line in read_object(body)] == events[:2_000]
