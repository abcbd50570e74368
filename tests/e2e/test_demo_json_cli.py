"""`salesstream demo --json`: the verdict as the only thing on stdout, the tables on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_demo_json_holds_stdout_alone(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "salesstream",
            "demo",
            "--stores",
            "5",
            "--rate",
            "500",
            "--duration",
            "2",
            "--json",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    verdict = json.loads(completed.stdout)  # the whole of stdout is one object
    assert verdict["passed"] is True
    assert verdict["speed_layer_equals_tally"] is True
    assert verdict["reconciled"] is True
    assert verdict["events_sent"] == 1000
    assert verdict["stores"] == 5
    assert verdict["consumer_errors"] == []
    assert "running totals per shard" in completed.stderr
