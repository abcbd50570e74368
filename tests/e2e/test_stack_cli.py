"""One `salesstream up` and the commands a person runs against it, from another directory:
status, a second `up` refused, report before any window closed, quarantine of records a
foreign producer put straight into the stream, produce's exit codes on refused input, spools
keyed by endpoint and stream, `--json` holding stdout alone, and down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from producer.simulator import Fleet, FleetConfig
from salesstream.core.windows import parse_rfc3339
from salesstream.emulator.targets import Endpoint, Target

ROOT = Path(__file__).parents[2]
STAGE = "e2ecli"
CARD = "4111111111111111"
VISIBLE_WITHIN_SECONDS = 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`up` started in one folder; the tests run their commands from another, same home."""
    home = tmp_path_factory.mktemp("home")
    started_in = tmp_path_factory.mktemp("started-in")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SALESSTREAM_HOME": str(home),
        "SALESSTREAM_PRODUCER_MAX_ATTEMPTS": "2",
    }
    up = [sys.executable, "-m", "salesstream", "up", "--shards", "2", "--stage", STAGE]
    process = subprocess.Popen(
        [*up, "--window-seconds", "2", "--no-serve"],
        cwd=started_in,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        summary = json.loads(process.stdout.readline())
        yield {"summary": summary, "home": home, "cwd": elsewhere, "env": env, "process": process}
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def run(stack: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "salesstream", *args],
        cwd=stack["cwd"],
        env=stack["env"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_1_status_finds_the_stack_from_another_directory(stack: dict[str, Any]) -> None:
    status = run(stack, "status", "--json")
    assert status.returncode == 0, status.stderr
    found = json.loads(status.stdout)
    assert found["state"] == "running"
    assert found["endpoint_url"] == stack["summary"]["endpoint_url"]
    assert found["pid"] == stack["process"].pid
    table = run(stack, "status")
    assert stack["summary"]["endpoint_url"] in table.stdout


def test_2_a_second_up_on_the_same_home_is_refused(stack: dict[str, Any]) -> None:
    second = run(stack, "up", "--stage", "other")
    assert second.returncode == 2
    assert f"a stack is already running at {stack['summary']['endpoint_url']}" in second.stderr
    assert "salesstream down" in second.stderr
    assert json.loads((stack["home"] / "stack.json").read_text())["pid"] == stack["process"].pid


def test_3_report_before_any_window_closed_says_so(stack: dict[str, Any]) -> None:
    printed = run(stack, "report", "--stage", STAGE)
    assert printed.returncode == 0, printed.stderr
    assert "no window has closed yet" in printed.stdout
    as_json = run(stack, "report", "--stage", STAGE, "--json")
    assert json.loads(as_json.stdout)["shards"] == {}
    assert "no window has closed yet" in as_json.stderr


def test_4_quarantine_shows_refused_records_within_a_minute_never_their_values(stack: dict[str, Any]) -> None:
    (good,) = Fleet(FleetConfig(stores=2, seed=4)).events(1)
    carrier = {**json.loads(good), "event_id": "evt-cli-card", "note": f"paid with {CARD}"}
    kinesis = Endpoint(Target.EMBEDDED, stack["summary"]["endpoint_url"]).client("kinesis")
    kinesis.put_records(
        StreamName=stack["summary"]["stream"],
        Records=[
            {"Data": b"this is not json", "PartitionKey": "store-a"},
            {"Data": json.dumps(carrier).encode(), "PartitionKey": "store-b"},
        ],
    )
    deadline = time.monotonic() + VISIBLE_WITHIN_SECONDS
    listed: dict[str, Any] = {"total": 0}
    while listed["total"] < 2 and time.monotonic() < deadline:
        time.sleep(1)
        answer = run(stack, "quarantine", "--stage", STAGE, "--json")
        assert answer.returncode == 0, answer.stderr
        listed = json.loads(answer.stdout)
    assert listed["counts"] == {"card_number": 1, "not_json": 1}
    reasons = {record["reason"]: record for record in listed["records"]}
    assert reasons["card_number"]["event_id"] == "evt-cli-card"
    assert reasons["card_number"]["shard_id"].startswith("shardId-")
    window = [parse_rfc3339(reasons["not_json"][edge]) for edge in ("window_start", "window_end")]
    assert window[0] <= reasons["not_json"]["arrival_ms"] < window[1]
    only = json.loads(run(stack, "quarantine", "--stage", STAGE, "--reason", "not_json", "--json").stdout)
    assert only["counts"] == {"not_json": 1}
    shard = reasons["not_json"]["shard_id"]
    by_shard = json.loads(run(stack, "quarantine", "--stage", STAGE, "--shard", shard, "--json").stdout)
    assert {r["shard_id"] for r in by_shard["records"]} == {shard}
    assert (
        json.loads(run(stack, "quarantine", "--stage", STAGE, "--since", "1h", "--json").stdout)["total"] == 2
    )
    future = run(stack, "quarantine", "--stage", STAGE, "--since", "2999-01-01T00:00:00Z", "--json")
    assert json.loads(future.stdout)["total"] == 0
    table = run(stack, "quarantine", "--stage", STAGE)  # a pipe: rich's 80 columns
    assert table.returncode == 0
    assert all(len(line) <= 80 for line in table.stdout.splitlines()), table.stdout
    assert shard in table.stdout  # whole, never cut
    assert "not_json" in table.stdout
    for shown in (table.stdout, json.dumps(listed)):
        assert CARD not in shown
        assert "paid with" not in shown  # the raw bytes are never read


def test_5_produce_exits_1_when_every_line_is_refused_and_with_strict_on_any(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    good = Fleet(FleetConfig(stores=2, seed=5)).events(3)
    refused = tmp_path / "refused.jsonl"
    refused.write_text("not json\n{}\n")
    all_refused = run(stack, "produce", "--stage", STAGE, "--from-file", str(refused), "--json")
    assert all_refused.returncode == 1
    assert json.loads(all_refused.stdout)["rejected_total"] == 2
    assert "every event was refused" in all_refused.stderr
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(b"\n".join([*good, b"not json"]) + b"\n")
    lenient = run(stack, "produce", "--stage", STAGE, "--from-file", str(mixed), "--json")
    assert lenient.returncode == 0, lenient.stderr
    assert json.loads(lenient.stdout)["sent"] == 3
    strict = run(stack, "produce", "--stage", STAGE, "--from-file", str(mixed), "--strict", "--json")
    assert strict.returncode == 1
    assert "1 event(s) refused (--strict)" in strict.stderr


def test_6_a_spool_for_one_endpoint_is_never_sent_to_another(stack: dict[str, Any]) -> None:
    dead = "http://127.0.0.1:9"
    offline = run(
        stack, "produce", "--stage", STAGE, "--endpoint", dead, "--count", "40", "--seed", "2", "--json"
    )
    assert offline.returncode == 1
    assert json.loads(offline.stdout)["spooled"] == 40
    kept = stack["home"] / "spool" / f"custom-127.0.0.1-9--{STAGE}-salesstream-orders.jsonl"
    assert len(kept.read_text().splitlines()) == 40
    here = run(stack, "produce", "--stage", STAGE, "--count", "0", "--json")
    assert here.returncode == 0, here.stderr
    assert json.loads(here.stdout)["from_spool"] == 0
    assert kept.name in here.stderr  # named as still waiting
    assert len(kept.read_text().splitlines()) == 40


def test_7_snapshot_json_is_all_of_stdout_and_its_logs_name_the_service(stack: dict[str, Any]) -> None:
    snapshot = run(stack, "snapshot", "--stage", STAGE, "--json")
    assert snapshot.returncode in (0, 1), snapshot.stderr
    document = json.loads(snapshot.stdout)  # nothing but the object
    assert "finished" in document
    assert "service_undefined" not in snapshot.stderr
    logged = [json.loads(line) for line in snapshot.stderr.splitlines() if line.startswith("{")]
    assert "snapshot begun" in {line["message"] for line in logged}
    assert {line["service"] for line in logged} == {f"{STAGE}-salesstream"}


def test_8_down_stops_it(stack: dict[str, Any]) -> None:
    down = run(stack, "down", "--json")
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["outcome"] == "stopped"
    assert stack["process"].wait(timeout=5) == 0
    # its stdout held the one JSON line and nothing else: the handlers' logs and metrics went to stderr
    assert stack["process"].stdout.read() == ""
    assert '"message":"window step"' in stack["process"].stderr.read()
    assert not (stack["home"] / "stack.json").exists()
    assert run(stack, "status").returncode == 3
