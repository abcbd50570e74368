"""`salesstream consume` and `salesstream up` running the consumers, through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3

from salesstream.deploy.template import DEFAULT_TEMPLATE

ROOT = Path(__file__).parents[2]
HANDLER = "AggregatorFunction=tests.cli_handlers.count_records"
ONLY_AGGREGATOR = ("--function", "AggregatorFunction")  # the batch layer's functions have their own tests
UNTIL_IDLE = ("--until-idle", "--for", "60", "--json")


def salesstream(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "salesstream", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "POWERTOOLS_LOG_LEVEL": "WARNING"},
    )


def put(endpoint_url: str, stream: str, count: int) -> None:
    kinesis = boto3.client(
        "kinesis",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    kinesis.put_records(
        StreamName=stream,
        Records=[{"Data": json.dumps({"amount": i}).encode(), "PartitionKey": f"k{i}"} for i in range(count)],
    )


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=30)


def test_consume_runs_the_mappings_until_idle_against_a_running_stack(tmp_path: Path) -> None:
    common = ("--shards", "2", "--stage", "clitest", "--window-seconds", "1")
    up = salesstream("up", *common, "--no-consumers", cwd=tmp_path)
    try:
        assert up.stdout is not None
        summary = json.loads(up.stdout.readline())
        assert summary["consumers"] == []
        put(summary["endpoint_url"], summary["stream"], 30)
        consume = subprocess.run(
            [
                sys.executable,
                "-m",
                "salesstream",
                "consume",
                *common,
                *ONLY_AGGREGATOR,
                "--handler",
                HANDLER,
                *UNTIL_IDLE,
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT), "POWERTOOLS_LOG_LEVEL": "WARNING"},
            timeout=120,
            check=False,
        )
    finally:
        stop(up)
    assert consume.returncode == 0, consume.stderr
    stats = json.loads(consume.stdout)
    assert stats["idle"] is True
    assert stats["totals"]["records_delivered"] == 30
    assert stats["totals"]["windows_closed"] >= 2  # one per shard at least
    assert json.loads((tmp_path / "var" / "runtime-stats.json").read_text())["totals"] == stats["totals"]


def test_up_runs_the_consumers_too(tmp_path: Path) -> None:
    up = salesstream(
        "up", "--shards", "1", "--stage", "upconsumers", *ONLY_AGGREGATOR, "--handler", HANDLER, cwd=tmp_path
    )
    try:
        assert up.stdout is not None
        summary = json.loads(up.stdout.readline())
        assert summary["consumers"] == ["AggregatorFunction.Orders"]
        put(summary["endpoint_url"], summary["stream"], 12)
        stats_file = tmp_path / "var" / "runtime-stats.json"
        deadline = time.monotonic() + 30
        delivered = 0
        while delivered < 12 and time.monotonic() < deadline:
            time.sleep(0.5)
            if stats_file.exists():
                delivered = json.loads(stats_file.read_text())["totals"]["records_delivered"]
        assert delivered == 12
    finally:
        stop(up)


def test_up_names_a_handler_it_cannot_import(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        DEFAULT_TEMPLATE.read_text().replace("consumers.speed.handler", "consumers.nowhere.handler")
    )
    up = salesstream("up", "--stage", "badhandler", "--template", str(template), cwd=tmp_path)
    _, stderr = up.communicate(timeout=60)
    assert up.returncode == 2
    assert "cannot import its handler consumers.nowhere.handler.lambda_handler" in stderr
    assert "AggregatorFunction" in stderr
    assert not (tmp_path / "var" / "stack.json").exists()
