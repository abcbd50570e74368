"""`salesstream up` as the CLI tests start it: in a folder of its own, ready once it prints its
summary line, stopped when the test is done."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def stack_up(*args: str, cwd: Path, env: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """Run `salesstream up ARGS` in `cwd` (where later commands find it); yield its summary."""
    process = subprocess.Popen(
        [sys.executable, "-m", "salesstream", "up", *args],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=15)
