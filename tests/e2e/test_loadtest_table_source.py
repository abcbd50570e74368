"""`salesstream loadtest --source table`, small, through the CLI: the fleet written into the orders
table by batch writes, every event counted exactly once and archived, the batch layer agreeing,
the cost modelled with the table's lines; and the fault run on this source, with a profile that
makes its faults happen in a small run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.e2e.test_fault_run_cli import fault_run
from tests.e2e.test_loadtest_cli import run_load_test

if TYPE_CHECKING:
    from pathlib import Path

# every fault that applies to the table source, often enough to happen in 600 events (a lost
# response is drawn per DynamoDB write: with 300 events and ~20 writes, a run without one came
# about once in four); `reshards` rolls the table stream's shard once
HARSH = """
orders: 600
rate: 100
stores: 20
shards: 1
window_seconds: 2
lost_response: 0.2
replay_batch: 0.3
crash_after_write: 0.2
delay_final: 0.3
dynamodb_throttle: 0.3
transaction_cancel: 0.3
conflicting_duplicate: 0.02
reshards: 1
malformed: 0.01
foreign_mixed_key: 0.05
"""


def test_a_load_test_from_the_orders_table_counts_archives_and_reconciles_every_event(tmp_path: Path) -> None:
    report = run_load_test(
        tmp_path, "--source", "table", "--rate", "60", "--duration", "5", "--bad-share", "0.02"
    )
    correctness, throughput = report["correctness"], report["throughput"]
    assert throughput["acknowledged_events"] == throughput["planned_events"] == 300
    assert correctness["ok"] is True
    assert (correctness["lost"], correctness["double_counted"], correctness["totals_mismatches"]) == (0, 0, 0)
    # the corrupted events written past the writer are quarantined, every good one archived
    assert correctness["quarantined"] == correctness["expected_quarantined"] == 6
    assert (correctness["archive_missing"], correctness["archive_unexpected"]) == (0, 0)
    reconciliation = report["reconciliation"]
    assert (reconciliation["differences"], reconciliation["unexplained"]) == (0, 0)
    shards = {shard["shard_id"] for shard in report["shards"]}
    assert len(shards) == 1
    assert not shards & {"shardId-000000000000"}  # the table stream's shard, not the idle Kinesis one
    lines = {line["item"]: line for line in report["cost"]["pipeline"]}
    assert lines["DynamoDB orders-table writes"]["quantity_per_million"] >= 1_000_000  # one unit per item
    assert not [item for item in lines if item.startswith("Kinesis")]
    visible = report["latency"]["window_end_to_visible_seconds"]["aggregates table"]
    assert visible["samples"] > 0
    # the table stream's shards are on /shards too: the target is judged through the API, as on Kinesis
    assert report["latency"]["window_end_to_visible_seconds"]["api /shards"]["samples"] > 0


def test_the_fault_run_on_the_orders_table_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    profile = tmp_path / "harsh.yaml"
    profile.write_text(HARSH)
    report, _ = fault_run(tmp_path, "--source", "table", "--faults", str(profile))
    summary = report["faults"]
    assert summary["failures"] == []
    assert (summary["lost"], summary["duplicated"], summary["unexplained_differences"]) == (0, 0, 0)
    injected = summary["faults_injected"]
    for kind in (
        "dynamodb_throttled",
        "dynamodb_response_lost",
        "batch_replayed",
        "conflicting_duplicate",
        "shard_rolled",
    ):
        assert injected.get(kind, 0) > 0, (kind, injected)
    # what cannot apply to the table source is neither injected nor expected
    assert not {"shard_split", "malformed", "foreign_mixed_key", "put_entry_failed"} & set(injected)
    assert not {"shard_split", "malformed", "foreign_mixed_key"} & set(summary["not_exercised"])
    conflicts = summary["conflicting_duplicates"]
    assert conflicts["quarantined"] == conflicts["injected"] > 0
    assert summary["quarantined"].get("duplicate_conflict", 0) == conflicts["injected"]
