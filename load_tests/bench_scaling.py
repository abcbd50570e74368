"""`make bench-scaling`: how the embedded pipeline's CPU cost grows with the rate and the shards.

Each point is one `salesstream loadtest` in a process of its own, with the same fleet, windows
and flags everywhere (COMMON, 20 s of traffic), at 5k, 10k and 20k events/s into 12 shards and at 10k events/s
into 4, 12 and 24 shards (a rate a loaded machine still holds); the 20k/12 point runs first and
last, to show the spread on a shared machine, and an almost idle point (10 events/s, 12 shards)
measures what a run costs whatever its events. The figure is CPU-seconds per million
acknowledged events, of every process:

- the run's CPU, by component, from the run's report.json, each taken when the last window was
  visible: the generator process (the fleet and the producer), the aggregator's and the
  archiver's handler threads, the rest of the consumers process (the event-source-mapping
  runtime, the monitor and API probes, the process's start-up) and the emulator process (its
  start-up, the stack, serving the run). Their sum per million events is the headline figure;
- the total, every process of the load test sampled from /proc while it runs, start-up to exit;
  what it has beyond the run ("after the run") is the load test's own event-by-event check and
  archive tally on both sides, its report and charts: not the pipeline's cost, shown apart.

CPU time rather than wall time: the machine's other work slows a run down but charges it
little CPU; but a run that falls behind its schedule packs fewer events per Kinesis record and
per invocation, so the events per record and the seconds behind are recorded per point, with
the load average. Not in `make bench` (10 minutes on a quiet machine, an hour on a loaded one).
Prints a table, writes reports/bench_scaling.json (after every point: `--resume` carries on an
interrupted run) and docs/images/scaling.png.

    python -m load_tests.bench_scaling [--duration 20] [--only 5k/12 10k/24 ...] [--resume]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, computed_field
from rich.console import Console
from rich.table import Table

# the same everywhere: only the rate and the shards change between points
COMMON: Final = ("--window-seconds", "30", "--stores", "1000", "--no-reconcile")
DEFAULT_DURATION: Final = 20.0
RUN_TIMEOUT: Final = 3600.0  # seconds per point: on a loaded machine a 20k point takes 15 min
COMPONENTS: Final = (
    "producer (generator process)",
    "aggregator handler",
    "archiver handler",
    "runtime and the rest of the consumers process",
    "emulator process",
    "after the run",  # the load test's own checks, report and charts: not the pipeline's
)
IN_RUN: Final = COMPONENTS[:5]
IDLE_RATE: Final = 100  # events/s below which a point measures the fixed cost, not a rate
SAMPLE_SECONDS: Final = 0.5
GENERATOR, CONSUMERS, EMULATOR = (
    "load generator process",
    "consumers process (runtime, handlers, probes, API)",
    "emulator process",
)


@dataclass(frozen=True)
class Point:
    name: str
    rate: float
    shards: int


SWEEP_RATE: Final = 10_000  # the shard sweep's rate: one the loaded machine can still hold
POINTS: Final = (
    Point("20k/12 first", 20_000, 12),
    Point("5k/12", 5_000, 12),
    Point("10k/12", SWEEP_RATE, 12),
    Point("10k/24", SWEEP_RATE, 24),
    Point("10k/4", SWEEP_RATE, 4),
    Point("20k/12 last", 20_000, 12),
    Point("idle/12", 10, 12),
)


class Measured(BaseModel):
    name: str
    rate: float
    shards: int
    exit_code: int  # 0, or 1 when the run's report says an event was lost, counted twice or missed
    wall_seconds: float
    acknowledged_events: int
    acknowledged_per_second: float
    behind_schedule_seconds: float  # how late the generator finished: > a few s, the rate was not held
    drain_seconds: float
    lost_or_double_counted: int
    events_per_record: float  # Kinesis records as the producer aggregated them
    bytes_per_event: float  # on the wire, compressed aggregates
    load_average_before: float  # 1-minute
    load_average_after: float
    # every process of the load test, start-up to exit; None when it could not be counted (a run
    # measured with getrusage, before the /proc sampling, whose emulator was not reaped)
    total_cpu_seconds: float | None
    segments: int | None = None  # window segments persisted: one per shard and window the run spanned
    cpu_seconds: dict[str, float]  # per component (COMPONENTS); "after the run" only with a total
    report: str  # its report.json

    @computed_field  # type: ignore[prop-decorator]
    @property
    def run_cpu_seconds(self) -> float:
        """The pipeline's CPU during the run: every component but what came after it."""
        return round(sum(self.cpu_seconds[name] for name in IN_RUN), 2)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cpu_seconds_per_million(self) -> float | None:
        """The run's CPU per million events; None for the idle point (its events are noise)."""
        if self.rate < IDLE_RATE or not self.acknowledged_events:
            return None
        return round(self.run_cpu_seconds / (self.acknowledged_events / 1e6), 1)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def per_million_by_component(self) -> dict[str, float] | None:
        if self.rate < IDLE_RATE or not self.acknowledged_events:
            return None
        millions = self.acknowledged_events / 1e6
        return {name: round(self.cpu_seconds[name] / millions, 1) for name in IN_RUN}


def _tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) of `root` and of each of its descendants, by pid, from /proc.
    Each process's own, not its children's: summed over the tree, nothing counts twice."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it ended while we looked
            continue
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(stat.parent.name)
        parents[pid], cpu[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks
    tree, grown = {root}, True
    while grown:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree, grown = tree | below, bool(below)
    return {pid: cpu[pid] for pid in tree if pid in cpu}


def _segments(report: dict[str, Any]) -> int:
    return sum(int(f.get("final_invocations", 0)) for f in report["functions"])


def _components(report: dict[str, Any], total: float) -> dict[str, float]:
    machine = report["run"]["machine"]["cpu_seconds"]
    missing = [name for name in (GENERATOR, CONSUMERS, EMULATOR) if name not in machine]
    if missing:
        raise RuntimeError(f"the report has no CPU figure for {', '.join(missing)}: {machine}")
    handlers = {f["function"]: float(f["cpu_seconds"]) for f in report["functions"]}
    aggregator, archiver = handlers.get("AggregatorFunction", 0.0), handlers.get("ArchiverFunction", 0.0)
    parts = {
        COMPONENTS[0]: float(machine[GENERATOR]),
        COMPONENTS[1]: aggregator,
        COMPONENTS[2]: archiver,
        COMPONENTS[3]: float(machine[CONSUMERS]) - aggregator - archiver,
        COMPONENTS[4]: float(machine[EMULATOR]),
    }
    parts[COMPONENTS[5]] = total - sum(parts.values())
    return {name: round(value, 2) for name, value in parts.items()}


def measure(point: Point, duration: float, folder: Path) -> Measured:
    """One load test at `point`, in a process of its own, and what every process of it used.

    The processes' CPU is sampled from /proc while it runs (each pid's last reading counts): the
    load test does not always reap the emulator (it kills it when it is slow to stop), so
    `getrusage(RUSAGE_CHILDREN)` would miss it."""
    out = folder / point.name.replace("/", "-").replace(" ", "-")
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "salesstream",
        "loadtest",
        *("--rate", f"{point.rate:g}", "--shards", str(point.shards), "--duration", f"{duration:g}"),
        *COMMON,
        *("--out", str(out)),
    ]
    load_before, started = os.getloadavg()[0], time.monotonic()
    seen: dict[int, float] = {}
    with (out / "loadtest.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own interpreter
        while process.poll() is None:
            seen.update(_tree_cpu(process.pid))
            if time.monotonic() - started > RUN_TIMEOUT:
                process.kill()
                process.wait()
                raise RuntimeError(f"the load test at {point.name} ran for more than {RUN_TIMEOUT:g} s")
            time.sleep(SAMPLE_SECONDS)
    wall, total = time.monotonic() - started, sum(seen.values())
    load_after = os.getloadavg()[0]
    if process.returncode not in (0, 1):  # 1: the report says the run was not correct; still measured
        raise RuntimeError(
            f"the load test at {point.name} failed ({process.returncode}): see {out / 'loadtest.log'}"
        )
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    shards = report["shards"]
    records = sum(s["records"] for s in shards)
    produced = sum(s["events"] for s in shards)
    return Measured(
        name=point.name,
        rate=point.rate,
        shards=point.shards,
        exit_code=process.returncode,
        wall_seconds=round(wall, 1),
        acknowledged_events=int(report["correctness"]["acknowledged"]),
        acknowledged_per_second=float(report["throughput"]["acknowledged_per_second"]),
        behind_schedule_seconds=float(report["throughput"]["behind_schedule_seconds"]),
        drain_seconds=float(report["throughput"]["drain_seconds"]),
        lost_or_double_counted=int(report["correctness"]["lost"])
        + int(report["correctness"]["double_counted"]),
        events_per_record=round(produced / records, 1) if records else 0.0,
        bytes_per_event=round(sum(s["bytes"] for s in shards) / produced, 1) if produced else 0.0,
        load_average_before=round(load_before, 2),
        load_average_after=round(load_after, 2),
        total_cpu_seconds=round(total, 2),
        cpu_seconds=_components(report, total),
        segments=_segments(report),
        report=str(out / "report.json"),
    )


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting: the normal equations of a small least squares."""
    size = len(vector)
    rows = [[*row, value] for row, value in zip(matrix, vector, strict=True)]
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(rows[r][column]))
        rows[column], rows[pivot] = rows[pivot], rows[column]
        if abs(rows[column][column]) < 1e-12:
            raise ValueError("the points do not separate the terms of the model")
        for r in range(column + 1, size):
            factor = rows[r][column] / rows[column][column]
            rows[r] = [a - factor * b for a, b in zip(rows[r], rows[column], strict=True)]
    solution = [0.0] * size
    for r in reversed(range(size)):
        known = sum(rows[r][c] * solution[c] for c in range(r + 1, size))
        solution[r] = (rows[r][size] - known) / rows[r][r]
    return solution


def fit(points: Sequence[Measured]) -> dict[str, float] | None:
    """Least squares of the run's CPU over every point: a fixed cost per run, a cost per million
    events and a cost per window segment persisted. A segment is one shard's window: its
    boundary transaction (the shard's store-day updates) and that shard's 30 s of polling, which
    this model cannot tell apart. A run that falls behind spans more windows, so the last term is
    what separates a slow run from a costly rate."""
    usable = [p for p in points if p.segments is not None]
    if len(usable) < 4:
        return None
    terms = [[1.0, p.acknowledged_events / 1e6, float(p.segments or 0)] for p in usable]
    ys = [p.run_cpu_seconds for p in usable]
    normal = [[sum(t[i] * t[j] for t in terms) for j in range(3)] for i in range(3)]
    right = [sum(t[i] * y for t, y in zip(terms, ys, strict=True)) for i in range(3)]
    try:
        fixed, per_million, per_segment = _solve(normal, right)
    except ValueError:
        return None
    residuals = [
        y - (fixed + t[1] * per_million + t[2] * per_segment) for t, y in zip(terms, ys, strict=True)
    ]
    return {
        "points": len(usable),
        "fixed_cpu_seconds_per_run": round(fixed, 1),
        "cpu_seconds_per_million_events": round(per_million, 1),
        "cpu_seconds_per_segment": round(per_segment, 2),
        "largest_residual_cpu_seconds": round(max(abs(r) for r in residuals), 1),
    }


def draw(points: Sequence[Measured], path: Path, duration: float) -> None:
    """Stacked bars of CPU-seconds per million events by component: the rate sweep, the shard sweep."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    measured = [p for p in points if p.per_million_by_component is not None]
    by_rate = sorted((p for p in measured if p.shards == 12), key=lambda p: (p.rate, p.name))
    by_shards = sorted((p for p in measured if p.rate == SWEEP_RATE), key=lambda p: (p.shards, p.name))
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    colours = [f"C{index}" for index in range(len(IN_RUN))]  # the default cycle
    for axis, sweep, title in (
        (axes[0], by_rate, "12 shards, by rate"),
        (axes[1], by_shards, f"{SWEEP_RATE:,} events/s, by shard count"),
    ):
        labels = [p.name.replace(" ", "\n") for p in sweep]
        bottoms = [0.0] * len(sweep)
        for colour, component in zip(colours, IN_RUN, strict=False):
            heights = [max(0.0, (p.per_million_by_component or {})[component]) for p in sweep]
            axis.bar(labels, heights, bottom=bottoms, color=colour, label=component)
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        for index, p in enumerate(sweep):
            axis.annotate(
                f"{p.acknowledged_per_second:,.0f}/s acked\n"
                f"load {p.load_average_before:.0f}-{p.load_average_after:.0f}",
                (index, bottoms[index]),
                ha="center",
                va="bottom",
                fontsize="x-small",
            )
        axis.set_title(title, fontsize="medium")
    axes[0].set_ylabel("CPU-seconds per million events")
    handles, labels = axes[0].get_legend_handles_labels()  # the same components in both panels
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize="x-small")
    figure.suptitle(
        f"The embedded pipeline's CPU per million events ({duration:g} s runs, {' '.join(COMMON)})",
        fontsize="medium",
    )
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _commit() -> str | None:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, fixed arguments
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.stdout.strip() or None


def spread(points: Sequence[Measured]) -> float | None:
    """The repeated 20k/12 point: its CPU per million events, last run over first."""
    first, last = (
        next((p for p in points if p.name == f"20k/12 {which}"), None) for which in ("first", "last")
    )
    if first is None or last is None or not first.cpu_seconds_per_million or not last.cpu_seconds_per_million:
        return None
    return round(last.cpu_seconds_per_million / first.cpu_seconds_per_million, 3)


def _earlier(path: Path, duration: float) -> list[Measured]:
    """The points of an interrupted run, to resume it (a long benchmark on a shared machine)."""
    if not path.exists():
        return []
    earlier = json.loads(path.read_text())
    if earlier["loadtest_arguments"] != [*COMMON, "--duration", f"{duration:g}"]:
        raise SystemExit(
            f"{path} was measured with {earlier['loadtest_arguments']}: not resumable with these"
        )
    points = []
    for point in earlier["points"]:
        parts = point["cpu_seconds"]
        after = parts.pop("outside the run", None)  # the name it had when the total was getrusage's
        if after is not None and after >= 0:
            parts[COMPONENTS[5]] = after
        elif after is not None:  # getrusage missed an emulator the load test did not reap
            point["total_cpu_seconds"] = None
        if point.get("segments") is None:  # measured before the field: its report has it
            point["segments"] = _segments(json.loads(Path(point["report"]).read_text()))
        points.append(Measured.model_validate(point))
    return points


def write(path: Path, command: str, duration: float, points: Sequence[Measured]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": command,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "loadtest_arguments": [*COMMON, "--duration", f"{duration:g}"],
        "components": list(COMPONENTS),
        "points": [p.model_dump() for p in points],
        "fit": fit(points),
        "spread_20k_12_last_over_first": spread(points),
    }
    path.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.bench_scaling", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        help=f"seconds per point (default {DEFAULT_DURATION:g})",
    )
    parser.add_argument("--only", nargs="*", default=None, help="point names to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench_scaling.json"))
    parser.add_argument("--chart", type=Path, default=Path("docs/images/scaling.png"))
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the points already in --out (measured with the same duration) and run only the others",
    )
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    chosen = [p for p in POINTS if args.only is None or p.name in args.only]
    if not chosen:
        parser.error(f"no point named {args.only}; the points: {', '.join(p.name for p in POINTS)}")
    folder = args.out.parent / "bench-scaling"
    command = "python -m load_tests.bench_scaling " + " ".join(argv if argv is not None else sys.argv[1:])
    points = _earlier(args.out, args.duration) if args.resume else []
    for point in chosen:
        if any(p.name == point.name for p in points):
            continue
        console.print(f"{point.name}: {point.rate:,.0f} events/s into {point.shards} shards ...", style="dim")
        points.append(measure(point, args.duration, folder))
        write(args.out, command, args.duration, points)  # after every point: a stopped run keeps its figures
    write(args.out, command, args.duration, points)  # also when resuming had nothing left to run

    table = Table(
        "point",
        "events",
        "acked/s",
        "behind s",
        "events/record",
        "B/event",
        "load",
        "run CPU s",
        "CPU s / M events",
        *(c.split(" (")[0] for c in IN_RUN),
        "after the run, s",
        title="The run's CPU-seconds per million events",
    )
    for p in points:
        by_component = p.per_million_by_component or {c: p.cpu_seconds[c] for c in IN_RUN}
        after = p.cpu_seconds.get(COMPONENTS[5])
        table.add_row(
            p.name,
            f"{p.acknowledged_events:,}",
            f"{p.acknowledged_per_second:,.0f}",
            f"{p.behind_schedule_seconds:.1f}",
            f"{p.events_per_record:.0f}",
            f"{p.bytes_per_event:.0f}",
            f"{p.load_average_before:.1f}-{p.load_average_after:.1f}",
            f"{p.run_cpu_seconds:.1f}",
            f"{p.cpu_seconds_per_million:.1f}" if p.cpu_seconds_per_million is not None else "(CPU s)",
            *(f"{by_component[c]:.1f}" for c in IN_RUN),
            f"{after:.1f}" if after is not None else "n/a",
        )
    console.print(table)
    model = fit(points)
    if model:
        console.print(
            f"least squares over {model['points']} runs: "
            f"run CPU = {model['fixed_cpu_seconds_per_run']:.1f} s "
            f"+ {model['cpu_seconds_per_million_events']:.1f} s per million events "
            f"+ {model['cpu_seconds_per_segment']:.2f} s per window segment persisted "
            f"(largest residual {model['largest_residual_cpu_seconds']:.1f} s)"
        )
    ratio = spread(points)
    if ratio is not None:
        console.print(f"20k/12 spread: CPU per million events, last run / first run: {ratio:.2f}x")
    bad = [p.name for p in points if p.exit_code or p.lost_or_double_counted]
    if bad:
        console.print(f"[bold red]not correct[/]: {', '.join(bad)} (see their report.json)")
    draw(points, args.chart, args.duration)
    console.print(f"written to {args.out} and {args.chart}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
