"""The load test's charts (matplotlib, the `loadtest` extra), drawn from report.json's content:
targets drawn where they apply, labels that do not overlap, shards by their ids, and no panel
that carries no information."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt

from load_tests.config import TARGET_VISIBLE_P95

if TYPE_CHECKING:
    from load_tests.report_model import LoadTestReport, Percentiles


def draw_charts(report: LoadTestReport, folder: Path) -> dict[str, str]:
    """The four PNGs into `folder`; returns a caption per chart that has something to add."""
    _throughput(report, folder / "throughput.png")
    _latency(report, folder / "latency.png")
    captions = {"lag.png": _lag(report, folder / "lag.png")}
    _shards(report, folder / "shards.png")
    return {name: caption for name, caption in captions.items() if caption}


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
    rates.legend(loc="lower center", fontsize="small", ncol=3)  # rates dip to 0 only at the ends
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
    """Horizontal bars: the long names of the measures sit on the y axis, never on each other."""
    series: list[tuple[str, Percentiles]] = [
        ("put -> counted", report.latency.put_to_counted_seconds),
        ("window end -> closed", report.latency.window_end_to_closed_seconds),
        *(
            (f"window end -> visible\n({name})", p)
            for name, p in report.latency.window_end_to_visible_seconds.items()
        ),
    ]
    figure, axis = plt.subplots(figsize=(10, 1.2 + 1.1 * len(series)))
    height = 0.26
    positions = range(len(series))
    for offset, quantile in enumerate(("p50", "p95", "p99")):
        values = [getattr(p, quantile) or 0.0 for _, p in series]
        bars = axis.barh([y + (offset - 1) * height for y in positions], values, height, label=quantile)
        axis.bar_label(bars, fmt="%.2f s", fontsize="x-small", padding=2)
    axis.axvline(TARGET_VISIBLE_P95, color="red", linestyle="--", linewidth=1.2)
    axis.annotate(
        f"target: p95 window end -> visible through the API <= {TARGET_VISIBLE_P95:g} s",
        xy=(TARGET_VISIBLE_P95, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(4, 4),
        textcoords="offset points",
        color="red",
        fontsize="small",
        va="bottom",
    )
    axis.set_yticks(list(positions), [name for name, _ in series], fontsize="small")
    axis.invert_yaxis()  # the first measure on top, as in the summary table
    axis.set_xlabel("seconds")
    axis.set_xlim(0, max(TARGET_VISIBLE_P95, *(p.p99 or 0.0 for _, p in series)) * 1.18)
    axis.grid(axis="x", color="#e5e5e5")
    axis.set_axisbelow(True)
    axis.set_title("Latency percentiles", pad=18)
    axis.legend(loc="lower right", fontsize="small")
    _save(figure, path)


def _lag(report: LoadTestReport, path: Path) -> str:
    """Iterator age per shard; MillisBehindLatest too, unless it was 0 throughout (then the
    caption says so instead of a flat panel). Returns the caption."""
    samples = report.timeline
    times = [s.t for s in samples]
    shards = sorted({shard for s in samples for shard in s.iterator_age_ms})
    behind_seen = any(value for s in samples for value in s.millis_behind_latest.values())
    figure, panels = plt.subplots(
        2 if behind_seen else 1, 1, figsize=(10, 6 if behind_seen else 3.8), sharex=True, squeeze=False
    )
    age = panels[0][0]
    for shard in shards:
        age.plot(times, [s.iterator_age_ms.get(shard, 0) for s in samples], label=shard)
    age.set_ylabel("iterator age (ms)")
    age.set_title("Consumer lag per shard: oldest record read but not yet done")
    age.grid(color="#e5e5e5")
    caption = ""
    if behind_seen:
        behind = panels[1][0]
        for shard in shards:
            behind.plot(times, [s.millis_behind_latest.get(shard) or 0 for s in samples], label=shard)
        behind.set_ylabel("MillisBehindLatest (ms)")
        behind.set_title("GetRecords' MillisBehindLatest", fontsize="small")
        behind.grid(color="#e5e5e5")
    else:
        caption = (
            "GetRecords' MillisBehindLatest was 0 throughout on every shard (moto reports 0 whenever a "
            "read returns everything), so it is not drawn."
        )
    bottom = panels[-1][0]
    bottom.set_xlabel("seconds since the first event")
    # below the x axis, so no line runs under it
    bottom.legend(
        *age.get_legend_handles_labels(),
        fontsize="x-small",
        ncol=min(4, max(1, len(shards))),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.22),
        frameon=False,
    )
    _save(figure, path)
    return caption


def _shards(report: LoadTestReport, path: Path) -> None:
    shards = report.shards
    labels = [s.shard_id for s in shards]
    figure, axis = plt.subplots(figsize=(10, 4.6))
    positions = range(len(shards))
    peaks = [100 * max(s.peak_share_of_bytes_limit, s.peak_share_of_records_limit) for s in shards]
    axis.bar(
        [x - 0.2 for x in positions], [100 * s.mean_share_of_limit for s in shards], 0.4, label="mean second"
    )
    axis.bar([x + 0.2 for x in positions], peaks, 0.4, label="busiest second (catch-up bursts included)")
    axis.axhline(100, color="red", linestyle="--", label="AWS throttles above (1 MiB/s or 1,000 records/s)")
    axis.set_xticks(list(positions), labels, fontsize="x-small", rotation=30, ha="right")
    axis.set_ylabel("% of the tighter limit")
    axis.set_ylim(0, max(110, *peaks) * 1.1 if peaks else 110)
    axis.grid(axis="y", color="#e5e5e5")
    axis.set_axisbelow(True)
    axis.set_title("Write load per shard")
    # below the shard ids: clear of the bars and of the limit line, however high they go
    axis.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, frameon=False)
    _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100, bbox_inches="tight")  # legends placed outside the axes included
    plt.close(figure)
