"""A short load test as a benchmark (`make bench`): the whole speed layer on the embedded emulator.

Each run is `salesstream loadtest` in a process of its own (the consumers' handlers keep
per-process state, and a fresh process is what a user runs): 20,000 events/s for 30 s into 12
shards with 30 s windows (each run crosses one window boundary; shorter windows multiply the
DynamoDB writes per event, and every boundary is a burst of transactions the emulator is slowest
at). Up to three runs;
best and median per figure, each report kept in reports/bench-loadtest-<n>/. The full-length
test (60 s, the template's 60 s windows) is `salesstream loadtest` with its defaults.

    python -m load_tests.bench --only bench_loadtest
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

from load_tests.bench import Figure
from load_tests.config import TARGET_VISIBLE_P95

ARGUMENTS: Final = ("--rate", "20000", "--duration", "30", "--shards", "12", "--window-seconds", "30")
MAX_RUNS: Final = 3


def _one(index: int) -> dict[str, Any]:
    folder = Path("reports") / f"bench-loadtest-{index}"
    command = [sys.executable, "-m", "salesstream", "loadtest", *ARGUMENTS, "--out", str(folder)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if completed.returncode not in (0, 1):  # 1: the report says events were lost; still a figure
        raise RuntimeError(f"the load test failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
    report: dict[str, Any] = json.loads((folder / "report.json").read_text())
    return report


def _figure(
    metric: str,
    unit: str,
    values: list[float],
    *,
    lower_is_better: bool = False,
    baseline: tuple[str, float] | None = None,
    note: str = "",
) -> Figure:
    best = min(values) if lower_is_better else max(values)
    return Figure(
        benchmark="load test",
        metric=metric,
        unit=unit,
        best=best,
        median=statistics.median(values),
        runs=len(values),
        baseline=baseline[0] if baseline else None,
        ratio=round(best / baseline[1], 3) if baseline and baseline[1] else None,
        note=note,
    )


def run(repeat: int) -> list[Figure]:
    reports = [_one(index) for index in range(1, max(1, min(repeat, MAX_RUNS)) + 1)]
    offered = float(reports[0]["throughput"]["offered_rate"])
    naive = sum(line["usd_per_million"] for line in reports[0]["cost"]["naive"])
    loads = [
        f"{r['run']['machine']['load_average_at_start'][0]:.1f}-{r['run']['machine']['load_average_at_end'][0]:.1f}"
        for r in reports
    ]

    def each(path: str) -> list[float]:
        values = []
        for report in reports:
            value: Any = report
            for key in path.split("."):
                value = value[key]
            values.append(float(value))
        return values

    wrong = [r["correctness"]["lost"] + r["correctness"]["double_counted"] for r in reports]
    unexplained = [r["reconciliation"].get("unexplained", 0) for r in reports]
    return [
        _figure(
            "events/s acknowledged (30 s at 20,000/s, 12 shards)",
            "events/s",
            each("throughput.acknowledged_per_second"),
            baseline=("offered rate", offered),
            note=f"load average during the runs {', '.join(loads)}",
        ),
        _figure(
            "events/s counted (send + drain, 30 s windows)", "events/s", each("throughput.counted_per_second")
        ),
        _figure(
            "p95 put -> counted",
            "s",
            each("latency.put_to_counted_seconds.p95"),
            lower_is_better=True,
        ),
        _figure(
            "p95 window end -> visible through the API (GET /shards)",
            "s",
            each("latency.window_end_to_visible_seconds.api /shards.p95"),
            lower_is_better=True,
            baseline=("the 1.5 s target", TARGET_VISIBLE_P95),
        ),
        _figure(
            "p95 window end -> visible in the aggregates table",
            "s",
            each("latency.window_end_to_visible_seconds.aggregates table.p95"),
            lower_is_better=True,
            baseline=("the 1.5 s target", TARGET_VISIBLE_P95),
        ),
        _figure("events per 25 KB payload unit", "events", each("throughput.events_per_payload_unit")),
        _figure(
            "DynamoDB write units per million events (30 s windows)",
            "units",
            each("requests.dynamodb_write_units_per_million_events"),
            lower_is_better=True,
        ),
        _figure(
            "modelled AWS cost per million events (30 s windows)",
            "USD",
            [sum(line["usd_per_million"] for line in r["cost"]["pipeline"]) for r in reports],
            lower_is_better=True,
            baseline=("naive design", naive),
        ),
        _figure(
            "events lost or double-counted",
            "events",
            [float(w) for w in wrong],
            lower_is_better=True,
            note=f"must be 0 in every run; worst run: {max(wrong)}",
        ),
        _figure(
            "events archived / accepted",
            "ratio",
            [r["correctness"]["archived"] / max(1, r["correctness"]["expected_counted"]) for r in reports],
            note="distinct event ids in the S3 archive over accepted events: must be 1",
        ),
        _figure(
            "unexplained differences (batch snapshot vs speed layer)",
            "keys",
            [float(u) for u in unexplained],
            lower_is_better=True,
            note=f"must be 0 in every run; worst run: {max(unexplained)}",
        ),
    ]


def main() -> None:
    for figure in run(MAX_RUNS):
        print(figure.model_dump_json())


if __name__ == "__main__":
    main()
