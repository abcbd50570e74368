"""The Lambda package: `sam build` (aws-sam-cli from PyPI, no container) builds it, it holds
only what the handler needs with arm64 wheels, and the same package built with this machine's
wheels runs the handler in a clean interpreter against the embedded emulator, where every AWS
call it makes is one its role allows.

A package with aarch64 wheels cannot be imported on this x86_64 machine (pydantic-core's
compiled part), so the import runs on a build with the host's wheels: the same modules, the same
pinned versions, another wheel platform.
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from salesstream.deploy.package import Package, build
from salesstream.deploy.permissions import Grant, expected_grants
from salesstream.template import load_template_document
from tests.window_events import Shard, kpl, order

ROOT = Path(__file__).parents[2]
SAM = ROOT / ".venv-sam" / "bin" / "sam"
# What the python3.11 runtime brings (/var/runtime): the SDK. Linked from this environment.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
ZIP_LIMIT = 10 * 2**20  # far below Lambda's 50 MB; the figure itself is in the README


@pytest.fixture(scope="module")
def sam() -> Path:
    if not SAM.exists():
        install = subprocess.run(
            ["make", "sam"], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
        )
        if install.returncode != 0:
            pytest.skip(f"aws-sam-cli could not be installed from PyPI (make sam): {install.stderr[-400:]}")
    return SAM


def test_sam_build_packs_the_handler_and_arm64_wheels_only(sam: Path, tmp_path: Path) -> None:
    built = tmp_path / "build"
    run = subprocess.run(
        [str(sam), "build", "--template", "deploy/template.yaml", "--build-dir", str(built)],
        cwd=ROOT,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    package = built / "AggregatorFunction"
    assert (package / "consumers" / "aggregator" / "handler.py").is_file()
    assert (package / "salesstream" / "core" / "aggregation.py").is_file()
    top = {path.name for path in package.iterdir()}
    assert not top & {
        "tests",
        "moto",
        "boto3",
        "botocore",
        "load_tests",
        "producer",
        "yaml",
        "rich",
        "deploy",
    }
    assert not (package / "salesstream" / "runtime").exists()
    assert not (package / "salesstream" / "commands").exists()
    (compiled,) = (package / "pydantic_core").glob("_pydantic_core.*.so")
    assert "aarch64" in compiled.name
    (wheel,) = package.glob("pydantic_core-*.dist-info/WHEEL")
    assert "manylinux_2_17_aarch64" in wheel.read_text()
    manifest = load_template_document(built / "template.yaml")
    assert manifest["Resources"]["AggregatorFunction"]["Properties"]["CodeUri"] == "AggregatorFunction"

    archive = Package(package, "", [], "").zip(tmp_path / "aggregator.zip")
    print(f"\nAggregatorFunction package: {archive.stat().st_size:,} bytes zipped")
    assert archive.stat().st_size < ZIP_LIMIT
    with zipfile.ZipFile(archive) as opened:
        assert "consumers/aggregator/handler.py" in opened.namelist()


# --- the package runs in a clean interpreter -----------------------------------------------------

PROBE = """
import json, sys
sys.path[:0] = sys.argv[1:]
import botocore.session

calls = []
def record(model, params, **_):
    calls.append([model.service_model.service_name, model.name, params])
create_client = botocore.session.Session.create_client
def recording_client(self, *args, **kwargs):
    client = create_client(self, *args, **kwargs)
    client.meta.events.register("before-parameter-build", record)
    return client
botocore.session.Session.create_client = recording_client

import consumers.aggregator.handler as handler
responses = []
for step in json.load(sys.stdin):
    if step["cold"]:
        handler.aggregator.cache_clear()  # a new Lambda process
    event = step["event"]
    if step["state_from"] is not None:
        event["state"] = responses[step["state_from"]]["state"]
    responses.append(handler.lambda_handler(event, None))
tooling = [m for m in ("moto", "yaml", "rich", "salesstream.aws", "salesstream.runtime") if m in sys.modules]
print(json.dumps({"responses": responses, "calls": calls, "tooling": tooling}, default=str))
"""


def runtime_sdk(folder: Path) -> Path:
    """A stand-in for Lambda's /var/runtime: the SDK only, linked from this environment."""
    import boto3

    site = Path(boto3.__file__).parents[1]
    folder.mkdir()
    for name in RUNTIME_SDK:
        (folder / name).symlink_to(site / name)
    return folder


def test_a_bare_interpreter_sees_nothing_of_this_environment(tmp_path: Path) -> None:
    bare = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import pydantic"], capture_output=True, text=True, check=False
    )
    assert "No module named 'pydantic'" in bare.stderr


def test_the_package_runs_its_handler_in_a_clean_interpreter_within_its_role(
    make_stack: Any, endpoint: Any, tmp_path: Path
) -> None:
    package = build("AggregatorFunction", tmp_path / "package", platform="host")
    sdk = runtime_sdk(tmp_path / "var-runtime")
    template, _ = make_stack(ShardCount=1)
    function = template.function("AggregatorFunction")

    shard = Shard()
    for number in range(3):
        shard.put(kpl(order(f"store-{number}", 1000 + number), order("store-9", 50, refund=True)))
    shard.put(b"{not json")  # quarantined: a DynamoDB item
    shard.put(b"x" * 300_000)  # quarantined with its raw bytes in S3 (over 256 KiB)
    first, last = shard.records[:2], shard.records[2:]
    window = shard.window_of(first[0])
    final = shard.event(last, window=window, final=True)
    steps = [
        {"event": shard.event(first, window=window), "cold": False, "state_from": None},
        # a new process finishes the window: it catches up with the dedup log (LIST, GET) first
        {"event": final, "cold": True, "state_from": 0},
        # the final invocation again (Lambda never got the answer): every condition fails, nothing changes
        {"event": final, "cold": False, "state_from": 0},
    ]
    environment = {
        "PATH": os.environ["PATH"],
        **endpoint.environment(),
        **function.environment,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
    }
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(package.path), str(sdk)],
        input=json.dumps(steps),
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["tooling"] == []
    responses = result["responses"]
    assert all(r["batchItemFailures"] == [] for r in responses)
    assert responses[1] == responses[2]

    items = endpoint.client("dynamodb").scan(TableName=function.environment["AGGREGATES_TABLE"])["Items"]
    assert len([i for i in items if i["pk"]["S"].startswith("SEGMENT#")]) == 1
    quarantined = endpoint.client("dynamodb").scan(TableName=function.environment["QUARANTINE_TABLE"])
    assert quarantined["Count"] == 2

    allowed = expected_grants(template, "AggregatorFunction")
    made = {(service, operation) for service, operation, _ in result["calls"]}
    # (GetItem is the fallback when a cancellation reason carries no item: moto's always does)
    assert {
        ("dynamodb", "TransactWriteItems"),
        ("dynamodb", "BatchWriteItem"),
        ("kinesis", "ListShards"),
    } <= made
    assert {("s3", "PutObject"), ("s3", "ListObjectsV2"), ("s3", "GetObject")} <= made
    denied = [
        (service, operation, needed)
        for service, operation, params in result["calls"]
        for needed in needs(template, service, operation, params)
        if not any(permits(grant, *needed) for grant in allowed)
    ]
    assert denied == []
    print(f"\n{len(result['calls'])} AWS calls, all within the role; host: {platform.machine()}")


# --- which IAM action on which resource a call needs (for the calls the handler makes) ---------


def needs(template: Any, service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(action, resource ARN, s3:prefix) per authorisation the call needs."""
    region, account = template.region, template.account_id
    if service == "dynamodb":
        table = f"arn:aws:dynamodb:{region}:{account}:table/{{}}"
        if operation == "TransactWriteItems":  # authorised item by item
            kinds = {
                "Put": "PutItem",
                "Update": "UpdateItem",
                "Delete": "DeleteItem",
                "ConditionCheck": "ConditionCheckItem",
            }
            return [
                (f"dynamodb:{kinds[kind]}", table.format(body["TableName"]), "")
                for item in params["TransactItems"]
                for kind, body in item.items()
            ]
        if operation == "BatchWriteItem":
            return [("dynamodb:BatchWriteItem", table.format(name), "") for name in params["RequestItems"]]
        return [(f"dynamodb:{operation}", table.format(params["TableName"]), "")]
    if service == "s3":
        if operation == "ListObjectsV2":
            return [("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", params.get("Prefix", ""))]
        return [(f"s3:{operation}", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}", "")]
    if service == "kinesis":
        if "NextToken" in params:  # a further page: the token names the stream of the first
            return []
        stream = (
            params.get("StreamARN") or f"arn:aws:kinesis:{region}:{account}:stream/{params['StreamName']}"
        )
        return [(f"kinesis:{operation}", stream, "")]
    raise AssertionError(f"no rule for {service}.{operation}: add one")


def permits(grant: Grant, action: str, resource: str, prefix: str) -> bool:
    if grant.action != action or not fnmatch.fnmatchcase(resource, grant.resource):
        return False
    if not grant.condition:
        return True
    (pattern,) = json.loads(grant.condition)["StringLike"].values()  # the only condition used
    return fnmatch.fnmatchcase(prefix, pattern)
