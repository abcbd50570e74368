"""The speed layer driven through the stream, for the reliability cases (docs/reliability.md C1-C5,
B1-B7): records put into Kinesis on the embedded emulator, the event-source-mapping runtime on a
virtual clock invoking the aggregator by its template Handler path, and what it wrote read back
from DynamoDB and S3. Faults come from the runtime's hooks (`Script`) and from botocore hooks on
the handler's own clients (tests/integration/conftest.py)."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer

from consumers.common.retry import Backoff
from salesstream.core.aggregation import Totals
from salesstream.core.archive import ARCHIVE_PREFIX, stored_payloads
from salesstream.core.batch import totals_of
from salesstream.core.contract import OrderEvent
from salesstream.core.positions import sequence_key
from salesstream.core.windows import Window, parse_rfc3339
from salesstream.runtime import Call, Fault, Hooks, Runtime, VirtualClock
from salesstream.runtime.model import Failed, Outcome, PartlyFailed
from tests.integration.conftest import AggregatorStack

StoreTotals = dict[tuple[str, str], Totals]
# (sequence number, sub-sequence or "record" for a whole Kinesis record)
QuarantineKey = tuple[str, int | str]
WHOLE = "record"
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Placed:
    """Where PutRecords put a record."""

    shard_id: str
    sequence: str


@dataclass(frozen=True)
class Invocation:
    """One invocation the runtime made, as its hooks saw it."""

    shard_id: str
    sequences: tuple[str, ...]
    final: bool
    terminated_early: bool
    outcome: str  # "ok", "partly failed at <sequence>" or "failed"
    fault: Fault


def describe(call: Call, outcome: Outcome) -> str:
    if isinstance(outcome, PartlyFailed):
        return f"partly failed at {call.batch.records[outcome.failed_at].sequence_number}"
    return "failed" if isinstance(outcome, Failed) else "ok"


@dataclass
class Script(Hooks):
    """Records every invocation; `after` decides the fault that follows one (REPLAY, CRASH)."""

    after: Callable[[Call, Outcome], Fault] | None = None
    invocations: list[Invocation] = field(default_factory=list)

    def after_invoke(self, call: Call, outcome: Outcome) -> Fault:
        fault = self.after(call, outcome) if self.after else Fault.NONE
        batch = call.batch
        self.invocations.append(
            Invocation(
                call.shard_id,
                tuple(record.sequence_number for record in batch.records),
                batch.final,
                batch.terminated_early,
                describe(call, outcome),
                fault,
            )
        )
        return fault

    def finals(self) -> list[Invocation]:
        return [invocation for invocation in self.invocations if invocation.final]

    def faults(self) -> list[Fault]:
        return [invocation.fault for invocation in self.invocations if invocation.fault is not Fault.NONE]


@dataclass
class Pipeline:
    stack: AggregatorStack
    runtime: Runtime
    clock: VirtualClock
    script: Script
    window_seconds: int

    @property
    def stream(self) -> str:
        return self.stack.environment["STREAM_NAME"]

    def put(self, *datas: bytes | OrderEvent, partition_key: str = "store-1") -> list[Placed]:
        """One PutRecords call: the records land in this order."""
        answer = self.stack.endpoint.client("kinesis").put_records(
            StreamName=self.stream,
            Records=[
                {"Data": d.to_json_bytes() if isinstance(d, OrderEvent) else d, "PartitionKey": partition_key}
                for d in datas
            ],
        )
        assert answer["FailedRecordCount"] == 0
        return [Placed(entry["ShardId"], entry["SequenceNumber"]) for entry in answer["Records"]]

    def run(self) -> None:
        """Read and invoke everything available now (windows close by the clock only)."""
        self.runtime.run_until_idle()

    def close_windows(self) -> None:
        """Move the clock past every window the stream has so far, and run the final invocations."""
        self.clock.set(max(self.clock.now_ms(), time.time_ns() // 1_000_000))
        self.clock.advance(self.window_seconds + self.runtime.options.window_close_grace_seconds + 1)
        self.run()

    def errors(self) -> list[str]:
        return self.runtime.stats().errors

    def no_sleep(self) -> list[float]:
        """The handler's backoff pauses (quarantine and persistence) are recorded, not slept."""
        pauses: list[float] = []
        app = self.stack.app
        app.segments.backoff = app.quarantine.backoff = Backoff(sleep=pauses.append)
        return pauses

    # --- reading back what the speed layer wrote -------------------------------------------

    def totals(self) -> StoreTotals:
        return self.stack.store_totals()

    def segments(self) -> list[dict[str, Any]]:
        return self.stack.segments()

    def counters(self) -> dict[str, int]:
        """The shards' running counters, summed over shards."""
        summed: dict[str, int] = {}
        for item in self.stack.items(self.stack.aggregates_table):
            if item["pk"].startswith("SHARD#") and item["sk"] == "COUNTERS":
                for name, value in item.items():
                    if name in {"events", "duplicates", "conflicts", "quarantined", "segments"}:
                        summed[name] = summed.get(name, 0) + int(value)
        return summed

    def quarantine(self) -> dict[QuarantineKey, tuple[str, bytes, str | None]]:
        """key -> (reason, the stored (redacted) raw bytes, event id); raw bytes kept in S3 are
        fetched. Checks on the way that each item says where it sat in the stream."""
        s3 = self.stack.endpoint.client("s3")
        found: dict[QuarantineKey, tuple[str, bytes, str | None]] = {}
        for item in self.stack.items(self.stack.quarantine_table):
            sequence = item["sequence_number"]
            sub: int | str = int(item["subsequence"]) if "subsequence" in item else WHOLE
            assert item["pk"] == item["shard_id"]
            assert item["sk"] == f"{sequence_key(sequence)}#{sub if sub == WHOLE else f'{sub:06d}'}"
            assert item.get("whole_record", False) is (sub == WHOLE)
            window = Window.from_event(item["window_start"], item["window_end"])
            assert window.contains(int(item["arrival_ms"]))
            assert parse_rfc3339(item["arrival"]) == int(item["arrival_ms"])
            assert item["detail"]
            if "raw" in item:
                raw = bytes(item["raw"])
            else:
                raw = s3.get_object(Bucket=self.stack.bucket, Key=item["raw_s3_key"])["Body"].read()
            found[(sequence, sub)] = (item["reason"], raw, item.get("event_id"))
        return found

    def everything_stored(self) -> Iterator[tuple[str, bytes]]:
        return everything_stored(self.stack.endpoint, self.stack.provisioned)


def everything_stored(endpoint: Any, provisioned: Any) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) for every item of every table of a stack (the runtime's checkpoints
    included) and every object of every bucket, gunzipped when gzip'd: what a data-protection
    check scans."""
    deserialize = TypeDeserializer().deserialize
    for table in provisioned.tables.values():
        for page in endpoint.client("dynamodb").get_paginator("scan").paginate(TableName=table):
            for raw in page["Items"]:
                item = {k: deserialize(v) for k, v in raw.items()}
                where = f"{table} {item['pk']} {item['sk']}"
                yield where, repr(item).encode()
                for data in _binaries(item):
                    yield where, data
    s3 = endpoint.client("s3")
    for bucket in provisioned.buckets.values():
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                where = f"s3://{bucket}/{entry['Key']}"
                data = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
                yield where, entry["Key"].encode()
                yield where, gzip.decompress(data) if data[:2] == GZIP_MAGIC else data
                if entry["Key"].startswith(ARCHIVE_PREFIX):  # base64 records, KPL aggregates: decoded
                    for payload in stored_payloads(data):
                        yield where, payload


def _binaries(value: Any) -> Iterator[bytes]:
    """Every binary attribute in an item, and its zlib-inflated content when it is compressed
    (segment stores, checkpointed window state)."""
    if isinstance(value, Binary):
        data = bytes(value)
        yield data
        with contextlib.suppress(zlib.error):  # not compressed: scanned as it is above
            yield zlib.decompress(data)
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _binaries(inner)
    elif isinstance(value, list | set):
        for inner in value:
            yield from _binaries(inner)


def model(events: Iterable[bytes | OrderEvent]) -> StoreTotals:
    """What the speed layer must show: totals per store and currency over the distinct event ids
    (the first sighting of an id counts)."""
    distinct: dict[str, OrderEvent] = {}
    for event in events:
        parsed = event if isinstance(event, OrderEvent) else OrderEvent.model_validate_json(event)
        distinct.setdefault(parsed.event_id, parsed)
    totals: StoreTotals = {}
    for event in distinct.values():
        amount = event.total_minor
        one = (
            Totals(refunds=1, refunds_minor=amount)
            if event.is_refund
            else Totals(orders=1, gross_minor=amount)
        )
        key = (event.store_id, event.currency)
        totals[key] = totals.get(key, Totals()) + one
    return totals


def decoded_stores(segment: dict[str, Any]) -> StoreTotals:
    """A segment item's per-store totals (zlib JSON), keyed (store, currency)."""
    return {tuple(key.split("/")): totals for key, totals in _decoded(segment["stores_zjson"]).items()}  # type: ignore[misc]


def decoded_days(segment: dict[str, Any]) -> dict[str, Totals]:
    """A segment item's per store, currency and business day totals, keyed `<store>/<currency>/<day>`."""
    return _decoded(segment["days_zjson"])


def _decoded(attribute: Any) -> dict[str, Totals]:
    rows = json.loads(zlib.decompress(bytes(attribute)))
    return {key: totals_of(totals) for key, totals in rows.items()}


def with_room_in_the_window(window_seconds: int) -> None:
    """Wait for the next window if this one ends soon, so a test's records share one window
    (Kinesis stamps arrivals with the real time)."""
    now = time.time()
    left = window_seconds - now % window_seconds
    if left < min(10.0, window_seconds / 2):
        time.sleep(left + 0.05)


# only JSON's \uXXXX escapes: the unicode_escape codec also reads (and warns about) every other
# backslash in the bytes
_JSON_UNICODE_ESCAPE = re.compile(rb"\\u([0-9a-fA-F]{4})")


def card_numbers_in(data: bytes, cards: Iterable[bytes]) -> list[bytes]:
    """Which of these card numbers (digits only) the bytes hold, however they were grouped or
    escaped. (A generic Luhn scan would flag the 13-digit epoch milliseconds stored everywhere:
    a tenth of them pass Luhn.)"""
    unescaped = _JSON_UNICODE_ESCAPE.sub(lambda m: chr(int(m[1], 16)).encode("utf-8", errors="replace"), data)
    squeezed = [variant.translate(None, b" -") for variant in (data, unescaped)]
    return [card for card in cards if any(card in variant for variant in squeezed)]


@contextlib.contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Every line the handlers' (aggregator, archiver, snapshot) and the runtime's powertools
    loggers write while inside, as their own formatter writes it (their stream handlers were bound
    before any capture)."""
    from consumers.archive.handler import logger as archiver_logger
    from consumers.batch.snapshot import logger as snapshot_logger
    from consumers.speed.handler import logger as handler_logger
    from salesstream.runtime.log import logger as runtime_logger

    sink = io.StringIO()
    added = []
    for logger in (handler_logger, archiver_logger, snapshot_logger, runtime_logger):
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logger.registered_formatter)
        logger.addHandler(handler)
        added.append((logging.getLogger(logger.name), handler))
    try:
        yield sink
    finally:
        for stdlib_logger, handler in added:
            stdlib_logger.removeHandler(handler)
