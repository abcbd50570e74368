"""`salesstream produce` through the CLI, against a running `salesstream up`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salesstream.emulator.targets import Endpoint, Target
from tests.e2e.stack_process import stack_up
from tests.kinesis_reading import all_event_ids, read_stream

ROOT = Path(__file__).parents[2]
STAGE = "e2eprod"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "SALESSTREAM_PRODUCER_MAX_ATTEMPTS": "2"}


def salesstream(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "salesstream", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A `salesstream up` in its own folder; commands run in that folder find it."""
    home = tmp_path_factory.mktemp("stack")
    with stack_up("--shards", "3", "--stage", STAGE, cwd=home, env=ENV) as summary:
        yield home, summary


def stream_contents(summary: dict[str, Any]) -> tuple[list[str], dict[tuple[str, str], int]]:
    kinesis = Endpoint(Target.EMBEDDED, summary["endpoint_url"]).client("kinesis")
    _, landed = read_stream(kinesis, summary["stream"])
    net: dict[tuple[str, str], int] = {}
    for record in landed:
        for user_record in record.user_records:
            event = json.loads(user_record.data)
            sign = -1 if event["event_type"] == "order_refunded" else 1
            key = (event["store_id"], event["currency"])
            net[key] = net.get(key, 0) + sign * event["total_minor"]
    return all_event_ids(landed), net


def test_produce_sends_the_simulated_fleet_and_reports_what_landed(
    stack: tuple[Path, dict[str, Any]],
) -> None:
    home, summary = stack
    run = salesstream("produce", "--count", "700", "--seed", "5", "--stage", STAGE, "--json", cwd=home)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["accepted"], result["sent"], result["spooled"], result["rejected_total"]) == (
        700,
        700,
        0,
        0,
    )
    assert result["source"] == "simulator(stores=20, seed=5)"
    assert result["stream"] == summary["stream"]

    event_ids, net = stream_contents(summary)
    assert len(event_ids) == len(set(event_ids)) == 700
    assert {(row["store_id"], row["currency"]): row["net_minor"] for row in result["tally"]} == net
    assert sum(shard["events"] for shard in result["shards"].values()) == 700


def test_a_file_with_bad_lines_sends_the_good_ones_and_names_the_bad(
    stack: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    home, _ = stack
    event = {
        "schema_version": 1,
        "event_id": "file.1",
        "event_type": "order_placed",
        "order_id": "o.1",
        "store_id": "store-9",
        "terminal_id": "t1",
        "occurred_at": "2026-11-23T10:15:00+01:00",
        "currency": "EUR",
        "lines": [{"sku": "GRO-1", "quantity": 2, "unit_price_minor": 150}],
        "total_minor": 300,
    }
    lines = [json.dumps(event), "{not json", json.dumps({**event, "event_id": "file.2", "currency": "XYZ"})]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(lines) + "\n")

    run = salesstream("produce", "--from-file", str(events_file), "--stage", STAGE, "--json", cwd=home)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["accepted"], result["sent"]) == (1, 1)
    assert result["rejected"] == {"not_json": 1, "unknown_currency": 1}
    assert "line 2: refused, not_json" in run.stderr
    assert "line 3: refused, unknown_currency" in run.stderr


def test_a_dead_endpoint_gives_one_line_and_a_spool_the_next_run_drains(
    stack: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    home, summary = stack
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    spool = tmp_path / "spool.jsonl"
    common = ["--stage", STAGE, "--spool", str(spool), "--json"]
    before, _ = stream_contents(summary)

    offline = salesstream("produce", "--endpoint", dead, "--count", "120", "--seed", "9", *common, cwd=home)
    assert offline.returncode == 1
    assert "Traceback" not in offline.stderr
    (message,) = offline.stderr.strip().splitlines()
    assert message.startswith("salesstream produce: endpoint_unreachable")
    assert "120 events spooled" in message
    assert json.loads(offline.stdout)["spooled"] == 120
    assert len(spool.read_text().splitlines()) == 120

    drained = salesstream("produce", "--count", "0", *common, cwd=home)
    assert drained.returncode == 0, drained.stderr
    result = json.loads(drained.stdout)
    assert (result["from_spool"], result["sent"], result["spooled"]) == (120, 120, 0)
    assert not spool.exists()
    after, _ = stream_contents(summary)
    assert len(after) - len(before) == 120


def test_the_summary_table_is_printed_without_json(stack: tuple[Path, dict[str, Any]]) -> None:
    home, _ = stack
    run = salesstream("produce", "--count", "50", "--seed", "1", "--stage", STAGE, cwd=home)
    assert run.returncode == 0, run.stderr
    assert "sent (acknowledged)" in run.stdout
    assert "acknowledged per shard" in run.stdout
