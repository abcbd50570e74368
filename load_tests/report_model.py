"""A load test's report as data: the typed object written as report.json. The page, the charts
and the comparison with a baseline read it (load_tests/report.py, load_tests/charts.py)."""

from __future__ import annotations

import math
from typing import Annotated, Final, Literal

from pydantic import BaseModel, Field

from load_tests.cost import CostModel
from load_tests.faults.summary import FaultSummary

REPORT_FILE: Final = "report.json"
PAGE_FILE: Final = "index.html"
CHARTS: Final = {
    "throughput.png": "Throughput over time",
    "latency.png": "Latency percentiles",
    "lag.png": "Consumer lag per shard",
    "shards.png": "Kinesis write load per shard (share of AWS's per-shard limits)",
}


class Percentiles(BaseModel):
    samples: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float] | None) -> Percentiles:
        ordered = sorted(values or [])
        if not ordered:
            return cls(samples=0, p50=None, p95=None, p99=None, max=None)

        def rank(q: float) -> float:  # nearest rank: a value that was actually measured
            return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 4)

        return cls(
            samples=len(ordered), p50=rank(0.50), p95=rank(0.95), p99=rank(0.99), max=round(ordered[-1], 4)
        )


class Sample(BaseModel):
    """One second of the run, as the monitor saw it."""

    t: float  # seconds since the first event was handed over
    submitted: int  # events handed to the producer so far (good and bad)
    acknowledged: int  # events the stream acknowledged so far
    counted: int  # events visible in the aggregates table so far
    records_delivered: int  # Kinesis records delivered to the consumers so far
    invocations: int
    millis_behind_latest: dict[str, int | None]  # per shard (GetRecords' MillisBehindLatest)
    iterator_age_ms: dict[str, int]  # per shard: now minus arrival of the oldest record not yet done


class RunInfo(BaseModel):
    run_id: str
    command: str
    target: str
    endpoint: str | None
    stage: str
    shards: int
    window_seconds: int
    started_at: str
    machine: dict[str, object]  # cpus, load average at start and end, python, platform
    config: dict[str, object]
    runtime_options: dict[str, object]


class Throughput(BaseModel):
    offered_rate: float  # the profile's target (the peak for a day, the end of a ramp)
    planned_events: int
    sent_events: int  # handed to the producer (good) or put raw (bad)
    scheduled_seconds: float  # the profile's duration
    send_seconds: float  # how long sending took
    sent_per_second: float
    acknowledged_events: int
    acknowledged_per_second: float
    behind_schedule_seconds: float  # how late the generator finished against the schedule
    drain_seconds: float  # end of sending -> the last event counted and visible
    counted_per_second: float  # events counted / (send + drain): includes the last window's wait
    events_per_payload_unit: float
    refused_by_producer: int
    spooled_by_producer: int


class ShardLoad(BaseModel):
    shard_id: str
    records: int
    bytes: int
    payload_units: int
    events: int
    records_per_second_mean: float
    records_per_second_peak: int
    bytes_per_second_mean: float
    bytes_per_second_peak: int
    mean_share_of_limit: float  # the mean second against the tighter of the two limits
    peak_share_of_records_limit: float  # busiest second / 1,000 records/s
    peak_share_of_bytes_limit: float  # busiest second / 1 MiB/s
    seconds_over_limit: int  # seconds in which AWS would have throttled this shard
    hot: bool  # over a limit in more than 1 second in 20: too few shards, or a key too busy
    max_millis_behind_latest: int | None
    max_iterator_age_ms: int


class Latency(BaseModel):
    put_to_counted_seconds: Percentiles  # handed to the producer -> its window visible, every event
    window_end_to_closed_seconds: Percentiles  # window end -> its final invocation returned
    window_end_to_visible_seconds: dict[str, Percentiles]  # per probe (aggregates table, API, ...)


class _FunctionFigures(BaseModel):
    function: str
    memory_mb: int
    invocations: int
    failed: int
    duration_ms: Percentiles
    mean_duration_ms: float | None
    billed_gb_seconds: float  # at the in-process wall time
    cpu_seconds: float  # the handler threads' CPU: duration without waiting for the shared GIL
    # as AWS would bill it: CPU at the function's vCPU share + an in-region round trip per AWS
    # call (load_tests/prices.yaml, lambda_duration); what the cost model prices
    modelled_gb_seconds: float
    aws_calls: dict[str, int]  # "service.Operation" -> calls made inside the handler


class StreamFunctionFigures(_FunctionFigures):
    """A consumer whose mapping has no tumbling window (the archiver): every invocation is alike."""

    kind: Literal["stream"] = "stream"


class WindowedFunctionFigures(_FunctionFigures):
    """A consumer with a tumbling window (the aggregator): its final invocations persist the
    window's segment, so they are counted and timed on their own."""

    kind: Literal["windowed"] = "windowed"
    final_invocations: int
    final_duration_ms: Percentiles


FunctionFigures = Annotated[StreamFunctionFigures | WindowedFunctionFigures, Field(discriminator="kind")]


class Requests(BaseModel):
    dynamodb_write_units: dict[str, float]  # per table
    dynamodb_read_units: dict[str, float]
    dynamodb_write_units_per_million_events: float  # the billed tables only
    dynamodb_operations: dict[str, int]
    s3_put_class: int
    s3_puts_by_prefix: dict[str, int]  # PutObject per "bucket/first key segment" (archive/, dedup log)
    s3_get_class: int
    s3_operations: dict[str, int]
    sqs_requests: int
    kinesis_operations: dict[str, int]
    # per "service operation": the endpoint's answer time, milliseconds (the emulator's speed)
    latency_ms: dict[str, Percentiles]


class Correctness(BaseModel):
    sent: int
    acknowledged: int
    expected_counted: int
    counted: int
    quarantined: int
    expected_quarantined: int
    archived: int  # distinct event ids of this run in the S3 archive (the archiver's objects)
    archive_lines: int  # this run's lines in the archive, resends and replays included
    archive_missing: int  # counted by the speed layer, absent from the archive: must be 0
    archive_unexpected: int  # archived but not an accepted event (corrupted, never sent): must be 0
    lost: int
    double_counted: int
    bad_counted: int
    good_quarantined: int
    phantom: int
    foreign: int
    outside_segments: int
    counted_sightings: int
    segment_events: int
    totals_mismatches: int  # (store, currency, field) where the aggregates differ from the producer's tally
    records_discarded: int  # sent by the runtime to the on-failure destination
    consumer_errors: list[str]
    quarantine_reasons: dict[str, int]
    examples: dict[str, list[str]]
    ok: bool


class Reconciled(BaseModel):
    """The batch layer after the run: a snapshot recomputed from the archive, reconciled with the
    speed layer (consumers/batch)."""

    kind: Literal["reconciled"] = "reconciled"
    snapshot_id: str
    horizon: str  # RFC 3339: windows ending at or before it were compared
    covers_run: bool  # the horizon is at or after the end of the run's last window
    events_recomputed: int
    keys_compared: int
    differences: int
    unexplained: int  # must be 0
    seconds: float  # snapshot + reconciliation, on this machine


class NotReconciled(BaseModel):
    kind: Literal["not reconciled"] = "not reconciled"
    reason: str


Reconciliation = Annotated[Reconciled | NotReconciled, Field(discriminator="kind")]


class TargetCheck(BaseModel):
    name: str
    value: float | None
    threshold: str
    met: bool
    # whether the verdict counts it: the documented default run's targets, or the ones the run
    # asked for (load_tests/loadtest.py decides); one that does not apply is shown, not judged
    applies: bool = True


class LoadTestReport(BaseModel):
    run: RunInfo
    throughput: Throughput
    shards: list[ShardLoad]
    latency: Latency
    functions: list[FunctionFigures]
    requests: Requests
    correctness: Correctness
    reconciliation: Reconciliation
    cost: CostModel
    targets: list[TargetCheck]
    timeline: list[Sample]
    notes: list[str]
    faults: FaultSummary | None = None  # a fault run's count and verdict (load_tests/faultrun.py)

    @property
    def passed(self) -> bool:
        """Every event counted exactly once or quarantined, no unexplained difference, and in a
        fault run, the fault count's verdict."""
        unexplained = self.reconciliation.unexplained if isinstance(self.reconciliation, Reconciled) else 0
        faults_passed = self.faults is None or self.faults.passed
        return self.correctness.ok and unexplained == 0 and faults_passed


# --- output --------------------------------------------------------------------------------------
