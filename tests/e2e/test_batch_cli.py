"""The batch layer through the CLI: `salesstream up` runs the aggregator and the archiver on the
stream, `produce` sends a fleet's events, then `salesstream snapshot` and `salesstream reconcile`
find the layers in agreement, print it and exit 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]
STAGE = "e2ebatch"
COMMON = ("--stage", STAGE, "--shards", "2", "--window-seconds", "1")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "POWERTOOLS_LOG_LEVEL": "WARNING"}


def salesstream(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "salesstream", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def wait_until_idle(home: Path, records: int, timeout: float = 90) -> None:
    """Until both mappings have read everything and every window is closed (the stats file)."""
    stats = home / "var" / "runtime-stats.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if not stats.exists():
            continue
        current = json.loads(stats.read_text())
        read = {shard["mapping"]: 0 for shard in current["shards"]}
        for shard in current["shards"]:
            read[shard["mapping"]] += shard["records_read"]
        if current["idle"] and len(read) == 2 and min(read.values()) >= records:
            return
    raise AssertionError(f"the consumers did not settle in {timeout} s: {stats.read_text()}")


def test_snapshot_and_reconcile_through_the_cli(tmp_path: Path) -> None:
    up = subprocess.Popen(
        [sys.executable, "-m", "salesstream", "up", *COMMON],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert up.stdout is not None
        summary = json.loads(up.stdout.readline())
        assert summary["consumers"] == ["AggregatorFunction.Orders", "ArchiverFunction.Orders"]
        produced = salesstream(
            "produce", "--count", "400", "--seed", "3", "--no-aggregate", *COMMON, cwd=tmp_path
        )
        assert produced.returncode == 0, produced.stderr
        wait_until_idle(tmp_path, 400)
        time.sleep(2.5)  # the snapshot's horizon stops 2 s short of now (clock slack)

        snapshot = salesstream("snapshot", "--json", *COMMON, cwd=tmp_path)
        assert snapshot.returncode == 0, snapshot.stderr
        document = json.loads(snapshot.stdout)
        assert document["finished"] is True
        assert document["snapshot"]["counts"]["events"] == 400
        assert document["reconciliation"]["summary"]["status"] == "clean"

        printed = salesstream("reconcile", *COMMON, cwd=tmp_path)
        assert printed.returncode == 0, printed.stderr
        assert "clean" in printed.stdout
        assert "0 unexplained" in printed.stdout
    finally:
        up.terminate()
        up.wait(timeout=30)
