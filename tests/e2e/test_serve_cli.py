"""`salesstream serve` through the CLI: the API for the stack a running `salesstream up` recorded,
on a port of its own; and a clear refusal when there is no stack to serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.api_support import call, get_json

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "POWERTOOLS_LOG_LEVEL": "WARNING"}


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "salesstream", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=30)


def test_serve_answers_for_the_running_stack(tmp_path: Path) -> None:
    up = start("up", "--shards", "2", "--stage", "servecli", "--no-consumers", "--no-serve", cwd=tmp_path)
    try:
        assert up.stdout is not None
        summary = json.loads(up.stdout.readline())
        assert summary["api_url"] is None
        serve = start("serve", "--stage", "servecli", cwd=tmp_path)
        try:
            assert serve.stdout is not None
            served = json.loads(serve.stdout.readline())
            base = served["api_url"]
            assert base.startswith("http://127.0.0.1:")
            shards = get_json(f"{base}/shards")
            assert [shard["shard_id"] for shard in shards["shards"]] == [
                "shardId-000000000000",
                "shardId-000000000001",
            ]
            assert shards["lag"]["source"] == "runtime"
            assert "are the consumers running" in shards["lag"]["note"]  # --no-consumers: no stats
            assert get_json(f"{base}/sales")["rows"] == []
            assert call(f"{base}/").status == 200
        finally:
            stop(serve)
    finally:
        stop(up)


def test_serve_without_a_stack_says_what_to_do(tmp_path: Path) -> None:
    serve = subprocess.run(
        [sys.executable, "-m", "salesstream", "serve"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert serve.returncode == 2
    assert "no embedded stack is running: start `salesstream up` first" in serve.stderr
