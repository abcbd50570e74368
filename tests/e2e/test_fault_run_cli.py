"""`salesstream loadtest --faults`, through the CLI: the standard profile at a reduced size, and a
harsher profile that makes every kind of fault happen in a small run. The summary must say:
nothing lost, nothing counted twice, every malformed record and every conflicting duplicate
quarantined at its position with its reason, no unexplained reconciliation difference, no card
number anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from load_tests.faults.catalogue import CATALOGUE
from load_tests.faults.kinds import Injected

ROOT = Path(__file__).parents[2]
HARSH = """
orders: 6000
rate: 2000
stores: 40
shards: 2
window_seconds: 1
put_entry_failure: 0.2
lost_response: 0.15
replay_batch: 0.3
crash_after_write: 0.15
delay_final: 0.5
dynamodb_throttle: 0.3
transaction_cancel: 0.5
reshards: 1
malformed: 0.02
conflicting_duplicate: 0.005
foreign_mixed_key: 0.05
"""


def fault_run(tmp_path: Path, *arguments: str) -> tuple[dict[str, Any], str]:
    folder = tmp_path / "report"
    completed = subprocess.run(
        [sys.executable, "-m", "salesstream", "loadtest", "--out", str(folder), *arguments],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-4000:]
    assert "fault run: profile" in completed.stdout
    report: dict[str, Any] = json.loads((folder / "report.json").read_text())
    return report, completed.stdout


def assert_nothing_lost_or_double_counted(summary: dict[str, Any]) -> None:
    assert (summary["lost"], summary["duplicated"], summary["bad_counted"], summary["good_quarantined"]) == (
        0,
        0,
        0,
        0,
    )
    assert summary["counted"] == summary["expected_counted"] > 0
    assert summary["totals_mismatches"] == 0
    assert summary["unexplained_differences"] == 0
    assert summary["card_numbers_found"] == []
    assert summary["places_scanned"] > 100
    assert summary["failures"] == []
    # every kind quarantined, at its position, with the reason the catalogue promises
    expected_reasons: Counter[str] = Counter()
    for kind, check in summary["malformed"].items():
        assert check["expected_reason"] == CATALOGUE[kind].reason.value
        assert (check["quarantined"], check["missing"], check["wrong_reason"]) == (
            check["injected"],
            0,
            {},
        ), kind
        expected_reasons[check["expected_reason"]] += check["injected"]
    conflicts = summary["conflicting_duplicates"]
    assert (conflicts["quarantined"], conflicts["missing"], conflicts["wrong_reason"]) == (
        conflicts["injected"],
        0,
        {},
    )
    expected_reasons["duplicate_conflict"] += conflicts["injected"]
    assert summary["quarantined"] == {reason: n for reason, n in sorted(expected_reasons.items()) if n}
    injected = summary["faults_injected"]
    assert injected["malformed"] == sum(check["injected"] for check in summary["malformed"].values())
    assert injected.get("conflicting_duplicate", 0) == conflicts["injected"]
    assert summary["archived"] == summary["counted"]  # the batch layer recomputed every counted event


def test_the_standard_profile_at_a_reduced_size(tmp_path: Path) -> None:
    report, printed = fault_run(
        tmp_path, "--faults", "standard", "--orders", "12000", "--window-seconds", "4"
    )

    summary = report["faults"]
    assert summary["profile"]["name"] == "standard"
    assert summary["profile"]["orders"] == 12_000
    assert_nothing_lost_or_double_counted(summary)
    assert 30 <= summary["faults_injected"]["malformed"] <= 100  # 0.5% of 12,000
    assert {kind for kind, check in summary["malformed"].items() if check["injected"]} == set(CATALOGUE)
    injected = summary["faults_injected"]
    assert injected["put_entry_failed"] > 0
    assert injected["shard_split"] == 1
    assert injected["foreign_mixed_key"] > 0  # good events from a foreign producer, counted once
    assert report["run"]["shards"] == 4 + 2  # the parent and its two children, all read
    assert report["correctness"]["ok"] is True
    assert "PASS" in printed


def test_a_harsh_profile_makes_every_kind_of_fault_happen_and_nothing_is_falsified(tmp_path: Path) -> None:
    profile = tmp_path / "harsh.yaml"
    profile.write_text(HARSH)
    # small batches: many invocations and DynamoDB writes, so each share meets enough draws that
    # every kind of fault happens in a few seconds of traffic
    report, _ = fault_run(tmp_path, "--faults", str(profile), "--param", "BatchSize=5")

    summary = report["faults"]
    assert_nothing_lost_or_double_counted(summary)
    # every kind but the table stream's roll, which only the orders-table source has
    # (tests/e2e/test_loadtest_table_source.py requires it there)
    on_kinesis = {kind.value for kind in Injected} - {Injected.SHARD_ROLLED.value}
    assert set(summary["faults_injected"]) == on_kinesis, summary["faults_injected"]
    assert all(n > 0 for n in summary["faults_injected"].values())
