"""`--target localstack` end to end, against a stand-in for LocalStack (Docker does not run here).

The stand-in is the embedded emulator in a process of its own, answering as LocalStack's
account 000000000000; the CLI finds it the way it finds LocalStack, through localstack-client
(LOCALSTACK_HOST). What runs is the code a LocalStack user runs: `salesstream up --target
localstack` provisions from the template, runs the template's event source mappings and its
snapshot schedule with the local runtime and serves its API; `produce`, `report` and `snapshot`
go to the same endpoint. Not covered: LocalStack's own Kinesis, DynamoDB, S3 and SQS (see
docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salesstream.emulator.targets import Endpoint, Target
from tests.api_support import get_json

ROOT = Path(__file__).parents[2]
LOCALSTACK_ACCOUNT = "000000000000"
STAGE = "lstest"
WINDOWS = ("--shards", "2", "--window-seconds", "2")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def localstack() -> Iterator[str]:
    """LOCALSTACK_HOST of a stand-in LocalStack: moto as account 000000000000."""
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "salesstream.emulator.moto_fixes", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "MOTO_ACCOUNT_ID": LOCALSTACK_ACCOUNT},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                emulator.kill()
                raise
            time.sleep(0.1)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        emulator.terminate()
        emulator.wait(timeout=15)


def environment(localstack_host: str) -> dict[str, str]:
    # no AWS_ENDPOINT_URL: the endpoint must come from localstack-client, as for a user
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    # the handlers log to stdout at INFO (as on Lambda); `--json` needs stdout for its one object
    return {
        **env,
        "LOCALSTACK_HOST": localstack_host,
        "PYTHONPATH": str(ROOT),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


def salesstream(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "salesstream", *args, "--target", "localstack", "--stage", STAGE],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_target_localstack_provisions_and_runs_the_consumers(localstack: str, tmp_path: Path) -> None:
    env = environment(localstack)
    up = subprocess.Popen(
        [sys.executable, "-m", "salesstream", "up", "--target", "localstack", "--stage", STAGE, *WINDOWS],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert up.stdout is not None
        summary = json.loads(up.stdout.readline())
        assert summary["target"] == "localstack"
        assert summary["endpoint_url"] == f"http://{localstack}"
        assert summary["consumers"] == ["AggregatorFunction.Orders", "ArchiverFunction.Orders"]
        assert summary["schedules"] == ["SnapshotFunction.Snapshot"]
        assert "RuntimeCheckpointsTable" in summary["tables"]  # the local runtime keeps its positions
        assert summary["buckets"]["ArchiveBucket"].endswith(f"-{LOCALSTACK_ACCOUNT}-us-east-1")
        assert LOCALSTACK_ACCOUNT in summary["queues"]["ConsumerFailuresQueue"]

        kinesis = Endpoint(Target.LOCALSTACK, summary["endpoint_url"]).client("kinesis")
        stream = kinesis.describe_stream_summary(StreamName=summary["stream"])["StreamDescriptionSummary"]
        assert stream["StreamARN"].split(":")[4] == LOCALSTACK_ACCOUNT
        assert stream["OpenShardCount"] == 2

        produced = salesstream("produce", "--count", "400", "--seed", "3", "--json", env=env, cwd=tmp_path)
        assert produced.returncode == 0, produced.stderr
        tally = {(r["store_id"], r["currency"]): r["net_minor"] for r in json.loads(produced.stdout)["tally"]}

        deadline = time.monotonic() + 90
        counted: dict[tuple[str, str], Any] = {}
        while counted != tally and time.monotonic() < deadline:
            time.sleep(1)
            report = salesstream("report", "--json", env=env, cwd=tmp_path)
            assert report.returncode == 0, report.stderr
            stores: dict[str, Any] = json.loads(report.stdout)["stores"]
            counted = {
                (store, currency): totals["net_sales_minor"]
                for store, currencies in stores.items()
                for currency, totals in currencies.items()
            }
        assert counted == tally

        # the batch layer on the same path: the archive the archiver wrote, recomputed and
        # reconciled (exit 0: no unexplained difference); the API reads the runtime's lag
        time.sleep(3)  # the archiver's batching window (2 s) and the horizon's grace (2 s)
        snapshot = salesstream("snapshot", "--json", *WINDOWS, env=env, cwd=tmp_path)
        assert snapshot.returncode == 0, snapshot.stdout + snapshot.stderr
        document = json.loads(snapshot.stdout)
        assert document["finished"] is True
        assert document["snapshot"]["counts"]["events"] == 400
        assert document["reconciliation"]["summary"]["unexplained"] == 0
        assert get_json(summary["api_url"] + "/shards")["lag"]["source"] == "runtime"
    finally:
        up.terminate()
        up.wait(timeout=30)


def test_without_localstack_up_says_so_in_one_line(tmp_path: Path) -> None:
    env = environment(f"127.0.0.1:{free_port()}")  # nothing listens there
    run = salesstream("up", "--no-consumers", env=env, cwd=tmp_path)
    assert run.returncode == 2
    address = env["LOCALSTACK_HOST"]
    assert run.stderr.strip() == (
        f"salesstream up: nothing answers at http://{address} (start LocalStack: docker compose up -d)"
    )
