"""The load test's charts (matplotlib, the `loadtest` extra), drawn from report.json's content."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from load_tests.report import LoadTestReport, Percentiles


def draw_charts(report: LoadTestReport, folder: Path) -> None:
    _throughput(report, folder / "throughput.png")
    _latency(report, folder / "latency.png")
    _lag(report, folder / "lag.png")
    _shards(report, folder / "shards.png")


def _rates(times: list[float], totals: list[int]) -> list[float]:
    rates = [0.0]
    for (t0, a), (t1, b) in zip(
        zip(times, totals, strict=True), zip(times[1:], totals[1:], strict=True), strict=False
    ):
        rates.append((b - a) / (t1 - t0) if t1 > t0 else 0.0)
    return rates


def _throughput(report: LoadTestReport, path: Path) -> None:
    samples = report.timeline
    times = [s.t for s in samples]
    series = (
        ("sent", [s.submitted for s in samples]),
        ("acknowledged by Kinesis", [s.acknowledged for s in samples]),
        ("counted (visible in the aggregates table)", [s.counted for s in samples]),
    )
    figure, (rates, totals) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for label, values in series[:2]:
        rates.plot(times, _rates(times, values), label=label)
    rates.axhline(report.throughput.offered_rate, color="grey", linestyle=":", label="offered rate")
    rates.set_ylabel("events per second")
    rates.set_title("Throughput")
    rates.legend(loc="lower right", fontsize="small")
    for label, values in series:
        totals.plot(times, values, label=label)
    totals.set_ylabel("events so far")
    totals.set_xlabel("seconds since the first event")
    totals.set_title(
        "Counted moves in steps: a window's events become visible when it closes", fontsize="small"
    )
    totals.legend(loc="upper left", fontsize="small")
    for axis in (rates, totals):
        axis.axvline(report.throughput.send_seconds, color="grey", linestyle="--")
    _save(figure, path)


def _latency(report: LoadTestReport, path: Path) -> None:
    series: list[tuple[str, Percentiles]] = [
        ("put -> counted", report.latency.put_to_counted_seconds),
        ("window end -> closed", report.latency.window_end_to_closed_seconds),
        *(
            (f"window end -> visible ({name})", p)
            for name, p in report.latency.window_end_to_visible_seconds.items()
        ),
    ]
    figure, axis = plt.subplots(figsize=(10, 4.5))
    width = 0.25
    positions = range(len(series))
    for offset, (quantile, attribute) in enumerate((("p50", "p50"), ("p95", "p95"), ("p99", "p99"))):
        values = [getattr(p, attribute) or 0.0 for _, p in series]
        bars = axis.bar([x + (offset - 1) * width for x in positions], values, width, label=quantile)
        axis.bar_label(bars, fmt="%.2f", fontsize="x-small")
    axis.set_xticks(list(positions), [name for name, _ in series], fontsize="small")
    axis.set_ylabel("seconds")
    axis.set_title("Latency percentiles")
    axis.legend()
    _save(figure, path)


def _lag(report: LoadTestReport, path: Path) -> None:
    samples = report.timeline
    times = [s.t for s in samples]
    shards = sorted({shard for s in samples for shard in s.iterator_age_ms})
    figure, (age, behind) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for shard in shards:
        label = _short(shard)
        age.plot(times, [s.iterator_age_ms.get(shard, 0) for s in samples], label=label)
        behind.plot(times, [s.millis_behind_latest.get(shard) or 0 for s in samples], label=label)
    age.set_ylabel("iterator age (ms)")
    age.set_title("Consumer lag per shard: oldest record read but not yet done")
    behind.set_ylabel("MillisBehindLatest (ms)")
    behind.set_title(
        "GetRecords' MillisBehindLatest (moto reports 0 whenever a read returns everything)", fontsize="small"
    )
    behind.set_xlabel("seconds since the first event")
    age.legend(fontsize="x-small", ncol=6)
    _save(figure, path)


def _short(shard_id: str) -> str:
    return shard_id.removeprefix("shardId-").lstrip("0") or "0"


def _shards(report: LoadTestReport, path: Path) -> None:
    shards = report.shards
    labels = [_short(s.shard_id) for s in shards]
    figure, axis = plt.subplots(figsize=(10, 4))
    positions = range(len(shards))
    peaks = [100 * max(s.peak_share_of_bytes_limit, s.peak_share_of_records_limit) for s in shards]
    axis.bar(
        [x - 0.2 for x in positions], [100 * s.mean_share_of_limit for s in shards], 0.4, label="mean second"
    )
    axis.bar([x + 0.2 for x in positions], peaks, 0.4, label="busiest second (catch-up bursts included)")
    axis.axhline(100, color="red", linestyle="--", label="AWS throttles above (1 MiB/s or 1,000 records/s)")
    axis.set_xticks(list(positions), labels, fontsize="small")
    axis.set_ylabel("% of the tighter limit")
    axis.set_title("Write load per shard")
    axis.legend(fontsize="small")
    _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
