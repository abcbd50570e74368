"""The archiver benchmark times what it says: both paths archive every event of their invocations
(none refused or set aside, which would flatter a rate), the raw path through the handler's own
code, and the batch layer reads every event back from the raw object."""

from __future__ import annotations

import gzip

from consumers.archive.archive import archive_object
from consumers.batch.archive_reader import read_back
from load_tests.bench_aggregator import order_payloads, windowed_invocations
from load_tests.bench_archiver import WHOLE_RANGE, decoded_object, raw_path
from salesstream.core.lambda_events import KinesisEvent


def test_every_benchmarked_event_is_archived_by_both_paths() -> None:
    events = order_payloads(2_000)
    invocations = windowed_invocations(events)[:1]
    records = KinesisEvent.model_validate({"Records": invocations[0]["Records"]}).Records
    archived, body = archive_object(WHOLE_RANGE, records)
    assert (archived.records, archived.masked) == (len(records), 0)
    read = read_back(body)
    assert (len(read.sightings), read.refused) == (2_000, [])
    assert all(sighting[5] is not None for sighting in read.sightings)
    assert raw_path(invocations) == archived.bytes
    assert gzip.decompress(decoded_object(records)).count(b"\n") == 2_000  # the baseline archives all too
