"""A load test's report: one typed object, written as report.json, a summary table, PNG charts
and an HTML page bundling them (reports/loadtest-<run id>/)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final, Literal

from pydantic import BaseModel, Field
from rich.table import Table

from load_tests.cost import CostModel
from salesstream.faults.summary import FaultSummary

if TYPE_CHECKING:
    from rich.console import Console

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


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _rows(report: LoadTestReport) -> list[tuple[str, str]]:
    throughput, latency, correctness = report.throughput, report.latency, report.correctness
    visible = [
        (f"window end -> visible ({name}) p50 / p95 / p99", _triple(p))
        for name, p in latency.window_end_to_visible_seconds.items()
    ]
    hot = [shard.shard_id.removeprefix("shardId-") for shard in report.shards if shard.hot]
    busiest = max(report.shards, key=lambda s: s.mean_share_of_limit, default=None)
    return [
        ("sent / acknowledged", f"{throughput.sent_events:,} / {throughput.acknowledged_events:,} events"),
        (
            "sent / acknowledged per second",
            f"{throughput.sent_per_second:,.0f} / {throughput.acknowledged_per_second:,.0f} events/s "
            f"(offered {throughput.offered_rate:,.0f}/s for {throughput.send_seconds:.1f} s)",
        ),
        ("counted per second (send + drain)", f"{throughput.counted_per_second:,.0f} events/s"),
        ("drain (end of sending -> last event visible)", _seconds(throughput.drain_seconds)),
        ("events per 25 KB payload unit", f"{throughput.events_per_payload_unit:.1f}"),
        (
            "busiest shard: mean / peak second against AWS's limits",
            "-"
            if busiest is None
            else f"{busiest.shard_id}: {busiest.mean_share_of_limit:.0%} / "
            f"{max(busiest.peak_share_of_bytes_limit, busiest.peak_share_of_records_limit):.0%}",
        ),
        ("hot shards (over a limit in > 5% of seconds)", ", ".join(hot) or "none"),
        (
            "max consumer lag: iterator age / MillisBehindLatest",
            f"{max((s.max_iterator_age_ms for s in report.shards), default=0):,} ms / "
            f"{max((s.max_millis_behind_latest or 0 for s in report.shards), default=0):,} ms",
        ),
        ("put -> counted p50 / p95 / p99", _triple(latency.put_to_counted_seconds)),
        ("window end -> closed p50 / p95 / p99", _triple(latency.window_end_to_closed_seconds)),
        *visible,
        *(_function_row(f) for f in report.functions),
        (
            "DynamoDB write units per million events",
            f"{report.requests.dynamodb_write_units_per_million_events:,.0f}",
        ),
        (
            "counted / quarantined / archived (archive lines)",
            f"{correctness.counted:,} / {correctness.quarantined:,} / {correctness.archived:,} "
            f"({correctness.archive_lines:,})",
        ),
        ("lost / double-counted", f"{correctness.lost} / {correctness.double_counted}"),
        ("reconciliation with the batch layer", _reconciliation(report.reconciliation)),
        (
            "modelled AWS cost per million events",
            f"${report.cost.pipeline_total:.4f} (naive design ${report.cost.naive_total:.2f}; "
            f"Lambda at in-process wall time: "
            f"${report.cost.lambda_duration_at_wall_time.usd_per_million:.4f} instead of "
            f"${report.cost.lambda_duration:.4f})",
        ),
    ]


def _function_row(f: StreamFunctionFigures | WindowedFunctionFigures) -> tuple[str, str]:
    figures = f"{f.invocations:,} ({f.failed} failed) / {_ms(f.duration_ms.p50)} / {_ms(f.duration_ms.p95)}"
    cpu = (
        f"; {f.modelled_gb_seconds:,.1f} GB-s modelled ({f.cpu_seconds:,.1f} s CPU), "
        f"{f.billed_gb_seconds:,.1f} GB-s at wall time"
    )
    if isinstance(f, WindowedFunctionFigures):
        return (
            f"{f.function} invocations / duration p50 / p95 / final p50",
            f"{figures} / {_ms(f.final_duration_ms.p50)} ({f.final_invocations:,} final){cpu}",
        )
    return f"{f.function} invocations / duration p50 / p95", figures + cpu


def _reconciliation(reconciliation: Reconciled | NotReconciled) -> str:
    if isinstance(reconciliation, NotReconciled):
        return f"not run: {reconciliation.reason}"
    return (
        f"{reconciliation.events_recomputed:,} events recomputed, {reconciliation.differences} "
        f"difference(s), {reconciliation.unexplained} unexplained (up to {reconciliation.horizon}, "
        f"{reconciliation.seconds:.1f} s)"
    )


def _triple(p: Percentiles) -> str:
    if p.samples == 0:
        return "-"
    return f"{p.p50:.2f} / {p.p95:.2f} / {p.p99:.2f} s ({p.samples:,} samples)"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def summary_table(report: LoadTestReport) -> Table:
    table = Table("figure", "value", title=f"load test {report.run.run_id}")
    for name, value in _rows(report):
        table.add_row(name, value)
    return table


def targets_table(report: LoadTestReport) -> Table:
    table = Table("target", "measured", "wanted", "met", title="targets")
    for target in report.targets:
        value = "-" if target.value is None else f"{target.value:,.4g}"
        table.add_row(target.name, value, target.threshold, "[green]yes[/]" if target.met else "[red]no[/]")
    return table


def print_summary(report: LoadTestReport, console: Console) -> None:
    console.print(summary_table(report))
    console.print(targets_table(report))
    if report.faults is not None:
        console.print(report.faults.table())
    for note in report.notes:
        console.print(f"[dim]note:[/] {note}")


def write_report(report: LoadTestReport, folder: Path) -> Path:
    """report.json, the charts and index.html into `folder`; returns the page."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT_FILE).write_text(report.model_dump_json(indent=2) + "\n")
    from load_tests.charts import draw_charts  # matplotlib is imported only when drawing

    draw_charts(report, folder)
    page = folder / PAGE_FILE
    page.write_text(html_page(report))
    return page


def html_page(report: LoadTestReport) -> str:
    def table(headers: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    summary = table(["figure", "value"], [[name, value] for name, value in _rows(report)])
    targets = table(
        ["target", "measured", "wanted", "met"],
        [
            [t.name, "-" if t.value is None else f"{t.value:,.4g}", t.threshold, "yes" if t.met else "NO"]
            for t in report.targets
        ],
    )
    shards = table(
        [
            "shard",
            "records",
            "payload units",
            "events",
            "peak records/s",
            "peak MiB/s",
            "mean / peak of the limits",
            "seconds over",
            "max iterator age",
        ],
        [
            [
                s.shard_id,
                f"{s.records:,}",
                f"{s.payload_units:,}",
                f"{s.events:,}",
                f"{s.records_per_second_peak:,}",
                f"{s.bytes_per_second_peak / 1_048_576:.2f}",
                f"{s.mean_share_of_limit:.0%} / "
                f"{max(s.peak_share_of_bytes_limit, s.peak_share_of_records_limit):.0%}"
                + (" HOT" if s.hot else ""),
                str(s.seconds_over_limit),
                f"{s.max_iterator_age_ms:,} ms",
            ]
            for s in report.shards
        ],
    )
    cost = table(
        ["design", "item", "per million events", "USD per million events"],
        [
            [
                design,
                line.item,
                f"{line.quantity_per_million:,.4g} {line.unit}",
                f"${line.usd_per_million:.5f}",
            ]
            for design, lines in (("salesstream", report.cost.pipeline), ("naive", report.cost.naive))
            for line in lines
        ]
        + [
            ["salesstream", "total", "", f"${report.cost.pipeline_total:.5f}"],
            ["naive", "total", "", f"${report.cost.naive_total:.4f}"],
            [
                "salesstream (not in the total)",
                report.cost.lambda_duration_at_wall_time.item,
                f"{report.cost.lambda_duration_at_wall_time.quantity_per_million:,.4g} GB-second",
                f"${report.cost.lambda_duration_at_wall_time.usd_per_million:.5f}",
            ],
        ],
    )
    charts = "".join(
        f'<figure><img src="{name}" alt="{html.escape(title)}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for name, title in CHARTS.items()
    )
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in report.notes)
    run = report.run
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>salesstream load test {html.escape(run.run_id)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>salesstream load test {html.escape(run.run_id)}</h1>
<p>{html.escape(run.command)}<br>target {html.escape(run.target)}, {run.shards} shards,
{run.window_seconds} s windows, started {html.escape(run.started_at)};
machine {html.escape(str(run.machine))}</p>
<h2>Summary</h2>{summary}<h2>Targets</h2>{targets}<h2>Charts</h2>{charts}
<h2>Shards</h2>{shards}<h2>Cost model (prices of {html.escape(report.cost.prices_checked)},
{html.escape(report.cost.region)}: load_tests/prices.yaml)</h2>{cost}
<h2>Notes</h2><ul>{notes}</ul><p>Everything above is in report.json.</p></body></html>
"""
