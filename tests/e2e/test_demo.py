"""`make demo`'s command, through the CLI: the whole pipeline on the embedded emulator, the speed
layer checked against the producer's own tally to the cent, then the batch snapshot reconciled
with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_demo_counts_every_event_exactly_once(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "salesstream", "demo", "--stores", "15", "--rate", "1500", "--duration", "4"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "OK: the speed layer equals the producer's tally to the cent for 15 stores" in completed.stdout
    assert "6,000 events" in completed.stdout
    assert "running totals per shard" in completed.stdout
    assert "6,000 events recomputed from the archive" in completed.stdout
    assert ": clean - " in completed.stdout
    assert "0 unexplained" in completed.stdout
