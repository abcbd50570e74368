"""What the archiver kept of a load test's events: the S3 archive read back, per event id.

The archiver (consumers/archive) writes one gzip JSON-lines object per invocation under
`archive/<hour>/`, the Kinesis records as received (format: salesstream/core/archive.py); they
are read back as the batch layer reads them, decoded by the aggregator's pipeline
(consumers/batch/archive_reader.py), and only the accepted events count. A resent event (the producer
retried a write that had been stored) or a replayed batch appears more than once, so the archive
is judged per event id: every accepted event of the run (acknowledged, not corrupted) must be in
it at least once, and nothing else of the run may be (a corrupted event is archived raw, but
must decode as refused). `tally_archive` is pure; `S3Archive` reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from consumers.batch.archive_reader import read_back
from load_tests.truth import EXAMPLES, SATURATED, EventIds, SendLedger
from salesstream.core.archive import ARCHIVE_PREFIX, hour_prefix


@dataclass
class ArchiveTally:
    lines: int = 0  # accepted archived events of this run, resends and replays included
    archived: int = 0  # distinct event ids of this run
    missing: int = 0  # accepted events not archived: must be 0
    unexpected: int = 0  # archived ids that are no accepted event (corrupted, never sent): must be 0
    foreign: int = 0  # lines of other runs (a reused stack): ignored
    examples: dict[str, list[str]] = field(default_factory=dict)

    def _example(self, kind: str, event_id: str) -> None:
        found = self.examples.setdefault(kind, [])
        if len(found) < EXAMPLES:
            found.append(event_id)


def tally_archive(event_ids: Iterable[str], ledger: SendLedger, ids: EventIds) -> ArchiveTally:
    """Match the archive's event ids (one per line) against what the run sent."""
    tally = ArchiveTally()
    seen = bytearray(ledger.total + 1)
    for event_id in event_ids:
        number = ids.event_number(event_id)
        if number is None:
            tally.foreign += 1
            continue
        tally.lines += 1
        if number > ledger.total:
            tally.unexpected += 1
            tally._example("archived_never_sent", event_id)
            continue
        seen[number] = min(SATURATED, seen[number] + 1)
    for number in range(1, ledger.total + 1):
        if not seen[number]:
            if ledger.acknowledged(number) and number not in ledger.bad:
                tally.missing += 1
                tally._example("not_archived", ids.event_id(number))
            continue
        tally.archived += 1
        if number in ledger.bad:
            tally.unexpected += 1
            tally._example("corrupted_archived", ids.event_id(number))
    return tally


_LIST_PAGE: Final = 1000


@dataclass
class S3Archive:
    """The archive bucket, read as the batch layer reads it (LIST by hour, GET, gunzip)."""

    s3: Any
    bucket: str
    objects: int = 0

    def event_ids(self, since_ms: int) -> Iterator[str]:
        """The event id of every accepted event in objects of the hours from `since_ms` on
        (refused ones are not events)."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=ARCHIVE_PREFIX,
            StartAfter=hour_prefix(since_ms),
            PaginationConfig={"PageSize": _LIST_PAGE},
        )
        for page in pages:
            for entry in page.get("Contents", []):
                self.objects += 1
                body = self.s3.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read()
                for sighting in read_back(body, entry["Key"]).sightings:
                    yield sighting[0]
