"""The load test's report as a reviewer reads it: the verdict judges only the targets that
applied, the page is built from its template with tables (not raw dicts), the comparison with a
baseline says which way each figure moved, and the charts carry no empty panel. The report is a
real one: a 15-second run at 2,000 events/s on 4 shards (tests/data/loadtest-report.json)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from load_tests.report import (
    BaselineError,
    baseline_argument,
    compare,
    differences_in_setup,
    html_page,
    judging_only,
    load_baseline,
    table_rows,
    verdict,
    write_report,
)
from load_tests.report_model import LoadTestReport

REPORT = Path(__file__).parents[1] / "data" / "loadtest-report.json"
CORRECTNESS = ("lost events", "double-counted events")


def report() -> LoadTestReport:
    return load_baseline(REPORT)


def small_run(r: LoadTestReport) -> LoadTestReport:
    """As the CLI judges a run smaller than the documented one: correctness targets only."""
    return judging_only(r, lambda target: target.name in CORRECTNESS)


def test_the_real_report_missed_the_scale_targets_it_was_never_sized_for() -> None:
    r = report()
    assert r.throughput.offered_rate == 2000
    missed = {t.name for t in r.targets if not t.met}
    assert any(name.startswith("sustained") for name in missed)  # 20,000/s for 60 s: not this run


def test_a_small_run_passes_on_the_targets_that_applied_and_lists_the_others_as_not_judged() -> None:
    judged = verdict(small_run(report()))
    assert [t.name for t in judged.judged] == list(CORRECTNESS)
    assert len(judged.not_judged) == 4
    assert judged.passed
    assert judged.headline == (
        "PASS: every event counted exactly once or quarantined, and all 2 targets that applied were met"
    )


def test_when_every_target_applies_the_missed_ones_are_named() -> None:
    judged = verdict(report())  # as on the documented default run: every target judged
    assert not judged.passed
    assert judged.headline.startswith("FAIL: 3 of 6 targets missed (sustained:")
    assert "modelled AWS cost per million events (USD)" in judged.headline


def test_incorrect_counting_fails_whatever_the_targets() -> None:
    r = small_run(report())
    r.correctness.ok = False
    judged = verdict(r)
    assert not judged.passed
    assert judged.headline.startswith("FAIL: events were lost, counted twice")


def test_no_target_applied_is_said_plainly() -> None:
    judged = verdict(judging_only(report(), lambda target: False))
    assert judged.passed
    assert judged.headline.endswith("no target applied to this run")


def test_the_page_has_the_banner_the_targets_and_the_machine_as_tables() -> None:
    page = html_page(small_run(report()))
    assert '<div class="banner pass" data-testid="verdict">' in page
    assert "PASS: every event counted exactly once or quarantined" in page
    assert "4 target(s) not judged" in page
    assert page.count('<span class="tag none">not judged</span>') == 4
    assert page.count('<span class="tag met">met</span>') == 2
    machine = re.search(r'<table data-testid="machine">(.*?)</table>', page, flags=re.DOTALL)
    assert machine is not None
    assert "<th>cpus</th>" in machine.group(1)
    assert "<th>load average at start (1 / 5 / 15 min)</th>" in machine.group(1)
    assert "6.3 / 4.8 / 2.81" in machine.group(1)
    assert "{&#39;cpus&#39;" not in page  # no dict printed raw
    assert "{'cpus'" not in page
    assert "Against the baseline" not in page  # none given
    for chart in ("throughput.png", "latency.png", "lag.png", "shards.png"):
        assert f'src="{chart}"' in page


def test_the_page_escapes_what_it_shows() -> None:
    r = report()
    r.notes.append("<script>alert(1)</script>")
    page = html_page(r)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_nested_values_become_one_row_each() -> None:
    rows = dict(table_rows({"cpu_seconds": {"emulator process": 9.4}, "python": "3.11.7", "cpus": 2}))
    assert rows == {"cpu seconds: emulator process": "9.4", "python": "3.11.7", "cpus": "2"}


def test_the_comparison_says_which_way_each_figure_moved() -> None:
    r, baseline = report(), report()
    baseline.throughput.acknowledged_per_second = r.throughput.acknowledged_per_second / 1.25
    baseline.latency.put_to_counted_seconds.p95 = (r.latency.put_to_counted_seconds.p95 or 0) / 2
    rows = {row.figure: row for row in compare(r, baseline)}
    faster = rows["acknowledged per second"]
    assert (faster.change, faster.direction) == ("+25%", "better")
    slower = rows["put -> counted p95 (s)"]
    assert (slower.change, slower.direction) == ("+100%", "worse")
    assert (rows["lost events"].change, rows["lost events"].direction) == ("0%", "same")
    assert "window end -> visible (api /shards) p95 (s)" in rows  # one row per visibility probe


def test_the_page_compares_with_a_baseline_and_names_what_differs_in_the_set_up() -> None:
    r, baseline = report(), report()
    baseline.run.run_id = "earlier000001"
    baseline.run.shards = 2
    baseline.run.config["rate"] = 1000.0
    assert differences_in_setup(r, baseline) == ["shards: 2 -> 4", "rate: 1000.0 -> 2000.0"]
    page = html_page(r, baseline)
    assert "Against the baseline earlier000001" in page
    assert "The runs differ in their set-up, which explains some of the change: shards: 2 -&gt; 4" in page
    assert '<table data-testid="comparison">' in page


def test_a_baseline_that_is_not_a_report_is_refused_with_the_reason(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"run": {}}')
    with pytest.raises(BaselineError, match=r"wrong.json is not a load test's report.json \(\d+ problem"):
        load_baseline(wrong)
    with pytest.raises(argparse.ArgumentTypeError, match=r"cannot read the baseline .*missing\.json"):
        baseline_argument(str(tmp_path / "missing.json"))
    assert baseline_argument(str(REPORT)).run.run_id == "d4a3edbcf0c4"


def test_the_report_folder_has_the_charts_and_a_flat_lag_panel_is_said_not_drawn(tmp_path: Path) -> None:
    r = report()
    assert not any(v for s in r.timeline for v in s.millis_behind_latest.values())  # moto: 0 throughout
    page = write_report(small_run(r), tmp_path / "run", baseline=report())
    for chart in ("throughput.png", "latency.png", "lag.png", "shards.png"):
        assert (tmp_path / "run" / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "MillisBehindLatest was 0 throughout on every shard" in text
    assert load_baseline(tmp_path / "run" / "report.json").targets[0].applies is False


def test_a_lag_panel_with_information_is_drawn(tmp_path: Path) -> None:
    r = report()
    r.timeline[3].millis_behind_latest["shardId-000000000001"] = 1500
    page = write_report(r, tmp_path / "run")
    assert "MillisBehindLatest was 0 throughout" not in page.read_text()
