"""`salesstream demo --source table` through the CLI: the fleet's orders written into the orders
table, the aggregator and the archiver on the table's stream, the speed layer checked against
the table writer's tally to the cent, then the batch snapshot of the archive reconciled with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_demo_from_the_orders_table_counts_every_event_exactly_once(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "salesstream",
            "demo",
            "--source",
            "table",
            "--stores",
            "8",
            "--rate",
            "300",
            "--duration",
            "3",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert (
        "OK: the speed layer equals the producer's tally to the cent for 8 stores (900 events"
        in completed.stdout
    )
    assert "written: 900 items into demo-salesstream-order-items" in completed.stdout
    assert "900 events recomputed from the archive" in completed.stdout
    assert ": clean - " in completed.stdout
    assert "0 unexplained" in completed.stdout
