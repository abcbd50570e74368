"""A load test's report: one typed object, written as report.json, a summary table, PNG charts
and an HTML page bundling them (reports/loadtest-<run id>/)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from jinja2 import Environment, StrictUndefined
from pydantic import ValidationError
from rich.table import Table

from load_tests.report_model import (
    CHARTS,
    PAGE_FILE,
    REPORT_FILE,
    LoadTestReport,
    NotReconciled,
    Percentiles,
    Reconciled,
    StreamFunctionFigures,
    TargetCheck,
    WindowedFunctionFigures,
)

if TYPE_CHECKING:
    from rich.console import Console


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


# --- the verdict: correctness, and the targets that applied ----------------------------------------


@dataclass(frozen=True)
class Verdict:
    correct: bool  # LoadTestReport.passed: every event counted once or quarantined, layers agree
    judged: list[TargetCheck]  # the targets that applied to this run
    not_judged: list[TargetCheck]

    @property
    def missed(self) -> list[TargetCheck]:
        return [target for target in self.judged if not target.met]

    @property
    def passed(self) -> bool:
        return self.correct and not self.missed

    @property
    def headline(self) -> str:
        if not self.correct:
            return (
                "FAIL: events were lost, counted twice, misfiled or not archived, or the batch layer "
                "disagrees"
            )
        if self.missed:
            names = "; ".join(target.name for target in self.missed)
            return f"FAIL: {len(self.missed)} of {len(self.judged)} targets missed ({names})"
        if not self.judged:
            return "PASS: every event counted exactly once or quarantined; no target applied to this run"
        return (
            f"PASS: every event counted exactly once or quarantined, and all {len(self.judged)} "
            "targets that applied were met"
        )


def judging_only(report: LoadTestReport, applies: Callable[[TargetCheck], bool]) -> LoadTestReport:
    """A copy whose targets say whether they apply to this run (the CLI knows which were asked
    for); the page and the console show the others as not judged."""
    targets = [target.model_copy(update={"applies": applies(target)}) for target in report.targets]
    return report.model_copy(update={"targets": targets})


def verdict(report: LoadTestReport) -> Verdict:
    return Verdict(
        correct=report.passed,
        judged=[target for target in report.targets if target.applies],
        not_judged=[target for target in report.targets if not target.applies],
    )


# --- a comparison with an earlier run --------------------------------------------------------------


class BaselineError(ValueError):
    """The baseline file is not a load test's report.json."""


def load_baseline(path: Path) -> LoadTestReport:
    try:
        return LoadTestReport.model_validate_json(path.read_bytes())
    except OSError as error:
        raise BaselineError(f"cannot read the baseline {path}: {error.strerror}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BaselineError(
            f"{path} is not a load test's report.json ({error.error_count()} problem(s), the first at "
            f"{where or 'the top'}: {first['msg']})"
        ) from None


def baseline_argument(text: str) -> LoadTestReport:
    """`--baseline PATH` for argparse: the report, or a usage error that names the problem."""
    try:
        return load_baseline(Path(text))
    except BaselineError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@dataclass(frozen=True)
class Compared:
    figure: str
    value: float | None
    baseline: float | None
    better: Literal["higher", "lower"]
    decimals: int = 0

    @property
    def change(self) -> str:
        if self.value is None or self.baseline is None:
            return "-"
        if self.value == self.baseline:
            return "0%"
        if self.baseline == 0:
            return "new"
        return f"{self.value / self.baseline - 1:+.0%}"

    @property
    def direction(self) -> Literal["better", "worse", "same", "-"]:
        if self.value is None or self.baseline is None:
            return "-"
        if self.value == self.baseline:
            return "same"
        return "better" if (self.value > self.baseline) == (self.better == "higher") else "worse"

    def shown(self, value: float | None) -> str:
        return "-" if value is None else f"{value:,.{self.decimals}f}"


Figure = Callable[["LoadTestReport"], float | None]


def _p95(percentiles: Percentiles | None) -> float | None:
    return None if percentiles is None else percentiles.p95


def _figures(report: LoadTestReport) -> list[tuple[str, Figure, Literal["higher", "lower"], int]]:
    probes = sorted(report.latency.window_end_to_visible_seconds)
    return [
        ("acknowledged per second", lambda r: r.throughput.acknowledged_per_second, "higher", 0),
        ("counted per second (send + drain)", lambda r: r.throughput.counted_per_second, "higher", 0),
        ("put -> counted p95 (s)", lambda r: r.latency.put_to_counted_seconds.p95, "lower", 2),
        ("window end -> closed p95 (s)", lambda r: r.latency.window_end_to_closed_seconds.p95, "lower", 2),
        *(
            (
                f"window end -> visible ({name}) p95 (s)",
                lambda r, name=name: _p95(r.latency.window_end_to_visible_seconds.get(name)),
                "lower",
                2,
            )
            for name in probes
        ),
        (
            "max iterator age (ms)",
            lambda r: max((s.max_iterator_age_ms for s in r.shards), default=0),
            "lower",
            0,
        ),
        ("events per 25 KB payload unit", lambda r: r.throughput.events_per_payload_unit, "higher", 1),
        (
            "DynamoDB write units per million events",
            lambda r: r.requests.dynamodb_write_units_per_million_events,
            "lower",
            0,
        ),
        ("modelled AWS cost per million events (USD)", lambda r: r.cost.pipeline_total, "lower", 4),
        ("lost events", lambda r: r.correctness.lost, "lower", 0),
        ("double-counted events", lambda r: r.correctness.double_counted, "lower", 0),
    ]


def compare(report: LoadTestReport, baseline: LoadTestReport) -> list[Compared]:
    """This run's headline figures beside the baseline's, each with its change and whether it
    went the good way."""
    return [
        Compared(name, figure(report), figure(baseline), better, decimals)
        for name, figure, better, decimals in _figures(report)
    ]


def differences_in_setup(report: LoadTestReport, baseline: LoadTestReport) -> list[str]:
    """What differs between the two runs' set-ups: a change there explains a change in figures."""

    def setup(r: LoadTestReport) -> dict[str, object]:
        keys = ("shape", "rate", "duration", "stores", "zipf_exponent", "bad_share")
        return {
            "target": r.run.target,
            "shards": r.run.shards,
            "window seconds": r.run.window_seconds,
            "cpus": r.run.machine.get("cpus"),
            **{key.replace("_", " "): r.run.config.get(key) for key in keys},
        }

    mine, theirs = setup(report), setup(baseline)
    return [f"{key}: {theirs[key]} -> {mine[key]}" for key in mine if mine[key] != theirs[key]]


# --- console and files -----------------------------------------------------------------------------


def summary_table(report: LoadTestReport) -> Table:
    table = Table("figure", "value", title=f"load test {report.run.run_id}")
    for name, value in _rows(report):
        table.add_row(name, value)
    return table


def _measured(target: TargetCheck) -> str:
    return "-" if target.value is None else f"{target.value:,.4g}"


def targets_table(report: LoadTestReport) -> Table:
    table = Table("target", "measured", "wanted", "met", title="targets")
    for target in report.targets:
        met = "[green]yes[/]" if target.met else "[red]no[/]"
        table.add_row(
            target.name, _measured(target), target.threshold, met if target.applies else "not judged"
        )
    return table


def comparison_table(report: LoadTestReport, baseline: LoadTestReport) -> Table:
    table = Table(
        "figure", "this run", f"baseline {baseline.run.run_id}", "change", title="against the baseline"
    )
    colour = {"better": "green", "worse": "red"}
    for row in compare(report, baseline):
        change = f"[{colour[row.direction]}]{row.change}[/]" if row.direction in colour else row.change
        table.add_row(row.figure, row.shown(row.value), row.shown(row.baseline), change)
    return table


def print_summary(report: LoadTestReport, console: Console, baseline: LoadTestReport | None = None) -> None:
    console.print(summary_table(report))
    console.print(targets_table(report))
    if baseline is not None:
        console.print(comparison_table(report, baseline))
    if report.faults is not None:
        console.print(report.faults.table())
    for note in report.notes:
        console.print(f"[dim]note:[/] {note}")
    judged = verdict(report)
    console.print(f"[bold {'green' if judged.passed else 'red'}]{judged.headline}[/]")


def write_report(report: LoadTestReport, folder: Path, baseline: LoadTestReport | None = None) -> Path:
    """report.json, the charts and index.html into `folder`; returns the page."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT_FILE).write_text(report.model_dump_json(indent=2) + "\n")
    from load_tests.charts import draw_charts  # matplotlib is imported only when drawing

    captions = draw_charts(report, folder)
    page = folder / PAGE_FILE
    page.write_text(html_page(report, baseline, captions))
    return page


# --- the page (load_tests/report_page.html, a Jinja2 template) ------------------------------------


def _label(key: str) -> str:
    return key.replace("_", " ")


def _describe(value: object) -> str:
    if isinstance(value, list | tuple):
        return " / ".join(_describe(item) for item in value)
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "-" if value is None else str(value)


def table_rows(values: dict[str, object]) -> list[tuple[str, str]]:
    """A dict as (name, value) rows for a table: nested dicts one row per entry, lists joined."""
    rows: list[tuple[str, str]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            rows += [(f"{_label(key)}: {name}", _describe(inner)) for name, inner in value.items()]
        elif key.startswith("load_average"):
            rows.append((f"{_label(key)} (1 / 5 / 15 min)", _describe(value)))
        else:
            rows.append((_label(key), _describe(value)))
    return rows


def _environment() -> Environment:
    environment = Environment(
        autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    environment.filters["measured"] = _measured
    environment.filters["percent"] = lambda share: f"{share:.0%}"
    environment.filters["money"] = lambda usd, decimals=5: f"${usd:.{decimals}f}"
    return environment


TEMPLATE_FILE: Final = "report_page.html"


def html_page(
    report: LoadTestReport, baseline: LoadTestReport | None = None, captions: dict[str, str] | None = None
) -> str:
    template = _environment().from_string(
        files("load_tests").joinpath(TEMPLATE_FILE).read_text(encoding="utf-8")
    )
    cost = report.cost
    return template.render(
        report=report,
        run=report.run,
        verdict=verdict(report),
        summary=_rows(report),
        machine=table_rows(report.run.machine),
        config=table_rows(report.run.config),
        runtime_options=table_rows(report.run.runtime_options),
        charts=[(name, title, (captions or {}).get(name, "")) for name, title in CHARTS.items()],
        cost_lines=[("salesstream", line) for line in cost.pipeline]
        + [("naive", line) for line in cost.naive],
        comparison=None if baseline is None else compare(report, baseline),
        setup_changes=[] if baseline is None else differences_in_setup(report, baseline),
        baseline=baseline,
    )
