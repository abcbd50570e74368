"""`make bench`: run every registered benchmark, print the figures, write reports/bench.json.

A benchmark is a module with `run(repeat: int) -> list[Figure]`; register it by adding its name
to BENCHMARKS. The machine is shared and noisy, so every timed figure is repeated (best and
median reported) and, where it has one, compared with a baseline measured in the same run.

    python -m load_tests.bench [--repeat N] [--only NAME ...] [--out reports/bench.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

BENCHMARKS: list[str] = [
    "load_tests.bench_producer",
    "load_tests.bench_aggregator",
    "load_tests.bench_runtime",
    "load_tests.bench_snapshot",
    "load_tests.bench_archiver",
    "load_tests.bench_emulator",
    "load_tests.bench_loadtest",
    "load_tests.bench_cards",
    "load_tests.bench_coldstart",
]


class Figure(BaseModel):
    benchmark: str
    metric: str
    unit: str
    best: float
    median: float
    runs: int
    baseline: str | None = None  # what `ratio` compares against (measured in the same run)
    ratio: float | None = None  # best / the baseline's best
    note: str = ""


def per_second(count: int, work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) of count / CPU seconds of this thread over `repeat` runs of `work`.
    CPU time rather than wall time: 'per core', and less disturbed by neighbours on the machine."""
    rates = []
    for _ in range(repeat):
        started = time.thread_time()
        work()
        rates.append(count / (time.thread_time() - started))
    return max(rates), statistics.median(rates)


def _number(value: float) -> str:
    if value >= 1_000:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 1 or value == 0 else f"{value:.3g}"  # a cost in dollars


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load_tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per timed figure (default 7)")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark modules to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench.json"))
    args = parser.parse_args(argv)
    # a log is not a terminal: give the table room instead of rich's 80-column default
    console = Console(width=None if sys.stdout.isatty() else 160)
    figures: list[Figure] = []
    for name in BENCHMARKS:
        if args.only and not any(name.endswith(wanted) for wanted in args.only):
            continue
        console.print(f"running {name} ...", style="dim")
        figures.extend(importlib.import_module(name).run(args.repeat))

    table = Table(
        "benchmark", "metric", "best", "median", "unit", "vs baseline", title="salesstream benchmarks"
    )
    for figure in figures:
        ratio = f"{figure.ratio:.2f}x {figure.baseline}" if figure.ratio is not None else ""
        table.add_row(
            figure.benchmark, figure.metric, _number(figure.best), _number(figure.median), figure.unit, ratio
        )
    console.print(table)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python -m load_tests.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "figures": [figure.model_dump() for figure in figures],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
