"""The embedded stack is provisioned from the template, idempotently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from salesstream.emulator.provision import provision


def test_provisioning_creates_what_the_template_defines(make_stack: Any, endpoint: Any) -> None:
    template, provisioned = make_stack(ShardCount=3)
    kinesis = endpoint.client("kinesis")
    (stream,) = template.streams()
    shards = kinesis.list_shards(StreamName=stream.name)["Shards"]
    assert len(shards) == 3
    tables = endpoint.client("dynamodb").list_tables()["TableNames"]
    assert set(provisioned.tables.values()) <= set(tables)
    assert set(provisioned.buckets.values()) <= {
        b["Name"] for b in endpoint.client("s3").list_buckets()["Buckets"]
    }
    # a second run finds everything in place and changes nothing
    assert provision(template, endpoint) == provisioned


def test_up_prints_one_line_of_json_when_ready(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "salesstream", "up", "--shards", "2", "--stage", "uptest", "--no-consumers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        summary = json.loads(line)
        assert summary["endpoint_url"].startswith("http://127.0.0.1:")
        assert summary["stream"] == "uptest-salesstream-orders"
        assert "AggregatesTable" in summary["tables"]
        recorded = json.loads((tmp_path / "var" / "stack.json").read_text())
        assert recorded["endpoint_url"] == summary["endpoint_url"]
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert not (tmp_path / "var" / "stack.json").exists()
