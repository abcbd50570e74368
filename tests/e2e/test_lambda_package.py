"""The Lambda packages: `sam build` (aws-sam-cli from PyPI, no container) builds one per function,
each holding only what its handler needs with arm64 wheels; and the same packages built with
this machine's wheels run their handlers in a clean interpreter against the embedded emulator,
where every AWS call each makes is one its own role allows.

A package with aarch64 wheels cannot be imported on this x86_64 machine (pydantic-core's
compiled part), so the import runs on a build with the host's wheels: the same modules, the same
pinned versions, another wheel platform.

Marked `package` and left out of `make test`: it downloads aws-sam-cli (~340 MB, `make sam`,
into .venv-sam) and each function's pinned wheels from PyPI. `make test-package` runs it.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import platform
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from load_tests.bench_coldstart import FIRST_EVENTS, function_environment, import_ms
from producer import Producer, producer_client
from producer.simulator import Fleet, FleetConfig
from salesstream.core.lambda_events import (
    KinesisEvent,
    KinesisEventRecord,
    KinesisPayload,
    KinesisTimeWindowEvent,
    WindowBounds,
)
from salesstream.core.windows import Window
from salesstream.deploy.imports import SOURCE_ROOT, closure, source_file
from salesstream.deploy.package import Package, build, handler_module, interpreter_tag, runtime
from salesstream.deploy.permissions import Grant, expected_grants
from salesstream.deploy.template import Template, load_template_document
from salesstream.emulator.local_api import Route, http_api_event
from salesstream.runtime.invoker import FunctionInvoker
from salesstream.runtime.schedules import schedules_of
from tests.api_support import net_by_store
from tests.window_events import Shard, kpl, order

pytestmark = pytest.mark.package

ROOT = Path(__file__).parents[2]
SAM = ROOT / ".venv-sam" / "bin" / "sam"
REPORT = ROOT / "reports" / "lambda_packages.json"
# What the python3.11 runtime brings (/var/runtime): the SDK. Linked from this environment.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
ZIP_LIMIT = 10 * 2**20  # far below Lambda's 50 MB; the figures themselves are in docs/deploy.md
FIRST_PARTY = ("consumers", "producer", "salesstream")
TOOLING = ("moto", "yaml", "rich", "localstack_client", "salesstream.emulator.targets", "salesstream.runtime")


@pytest.fixture(scope="module")
def sam() -> Path:
    if not SAM.exists():
        install = subprocess.run(
            ["make", "sam"], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
        )
        if install.returncode != 0:
            pytest.skip(f"aws-sam-cli could not be installed from PyPI (make sam): {install.stderr[-400:]}")
    return SAM


def first_party_sources(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for top in FIRST_PARTY for p in (folder / top).rglob("*.py")}


def test_sam_build_packs_each_handler_and_arm64_wheels_only(sam: Path, tmp_path: Path) -> None:
    built = tmp_path / "build"
    run = subprocess.run(
        [str(sam), "build", "--template", "deploy/template.yaml", "--build-dir", str(built)],
        cwd=ROOT,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    template = Template.load()
    manifest = load_template_document(built / "template.yaml")
    sizes: dict[str, dict[str, int]] = {}
    for function in template.functions():
        package = built / function.logical_id
        handler = handler_module(template, function.logical_id)
        # exactly the handler's first-party closure: no CLI, runtime, emulator, producer or tests
        modules = closure([handler])
        expected = {source_file(m).relative_to(SOURCE_ROOT) for m in modules}
        assert first_party_sources(package) == expected, function.logical_id
        top = {path.name for path in package.iterdir()}
        assert not top & {"tests", "moto", "boto3", "botocore", "load_tests", "yaml", "rich", "deploy"}
        (compiled,) = (package / "pydantic_core").glob("_pydantic_core.*.so")
        assert "aarch64" in compiled.name
        (wheel,) = package.glob("pydantic_core-*.dist-info/WHEEL")
        assert "manylinux_2_17_aarch64" in wheel.read_text()
        code_uri = manifest["Resources"][function.logical_id]["Properties"]["CodeUri"]
        assert code_uri == function.logical_id

        archive = Package(package, "", [], "").zip(tmp_path / f"{function.logical_id}.zip")
        unpacked = sum(p.stat().st_size for p in package.rglob("*") if p.is_file())
        sizes[function.logical_id] = {
            "modules": len(modules),
            "zip_bytes": archive.stat().st_size,
            "unpacked_bytes": unpacked,
        }
        assert archive.stat().st_size < ZIP_LIMIT, function.logical_id
        with zipfile.ZipFile(archive) as opened:
            assert source_file(handler).relative_to(SOURCE_ROOT).as_posix() in opened.namelist()
    # the page the API serves is package data, packed beside its module
    assert (built / "ApiFunction" / "consumers" / "serving" / "dashboard.html").is_file()
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(sizes, indent=2, sort_keys=True) + "\n")
    print(f"\nLambda packages (sam build, arm64), also in {REPORT.relative_to(ROOT)}:")
    for name, figures in sizes.items():
        print(
            f"  {name}: {figures['modules']} modules, {figures['zip_bytes']:,} bytes zipped, "
            f"{figures['unpacked_bytes']:,} unpacked"
        )


# --- the packages run in a clean interpreter -----------------------------------------------------

PROBE = """
import importlib, json, os, sys, time, uuid
handler_path, *paths = sys.argv[1:]
sys.path[:0] = paths
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

class Context:  # the attributes of Lambda's context object that handlers and powertools read
    def __init__(self):
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = os.environ["PROBE_FUNCTION_ARN"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = "/aws/lambda/" + self.function_name
        self.log_stream_name = "probe"
        self._deadline = time.monotonic() + float(os.environ["PROBE_TIMEOUT_SECONDS"])
    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))

module_name, _, name = handler_path.rpartition(".")
module = importlib.import_module(module_name)
responses = []
for step in json.load(sys.stdin):
    if step.get("cold"):
        getattr(module, step["cold"]).cache_clear()  # a new Lambda process
    event = step["event"]
    if step.get("state_from") is not None:
        event["state"] = responses[step["state_from"]]["state"]
    responses.append(getattr(module, name)(event, Context()))
tooling = [m for m in TOOLING if m in sys.modules]
print(json.dumps({"responses": responses, "calls": calls, "tooling": tooling}, default=str))
""".replace("TOOLING", repr(TOOLING))


def runtime_sdk(folder: Path) -> Path:
    """A stand-in for Lambda's /var/runtime: the SDK only, linked from this environment."""
    import boto3

    site = Path(boto3.__file__).parents[1]
    folder.mkdir()
    for name in RUNTIME_SDK:
        (folder / name).symlink_to(site / name)
    return folder


@dataclass
class Ran:
    responses: list[Any]
    calls: list[tuple[str, str, dict[str, Any]]]
    output: list[str]  # what the function printed: its log lines and EMF metrics

    def made(self) -> set[tuple[str, str]]:
        return {(service, operation) for service, operation, _ in self.calls}


def run_packaged(
    function_id: str, template: Template, endpoint: Any, steps: list[dict[str, Any]], tmp_path: Path
) -> Ran:
    """Build the function's package (host wheels), run its handler on `steps` in `python -I -S`
    with the SDK as Lambda's runtime has it and the function's environment; check that nothing of
    the local tooling was imported and that every AWS call is one the function's role allows."""
    package = build(function_id, tmp_path / function_id, platform="host")
    sdk = tmp_path / "var-runtime"
    if not sdk.exists():
        runtime_sdk(sdk)
    function = template.function(function_id)
    environment = {
        "PATH": os.environ["PATH"],
        **endpoint.environment(),
        **function.environment,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "PROBE_FUNCTION_ARN": template.arn(function_id),
        "PROBE_TIMEOUT_SECONDS": str(function.timeout_seconds),
    }
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, function.handler, str(package.path), str(sdk)],
        input=json.dumps(steps),
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    *output, last = run.stdout.strip().splitlines()
    result = json.loads(last)
    assert result["tooling"] == [], function_id
    allowed = expected_grants(template, function_id)
    denied = [
        (service, operation, needed)
        for service, operation, params in result["calls"]
        for needed in needs(template, function.environment, service, operation, params)
        if not any(permits(grant, *needed) for grant in allowed)
    ]
    assert denied == [], function_id
    return Ran(result["responses"], [tuple(call) for call in result["calls"]], output)


def test_a_bare_interpreter_sees_nothing_of_this_environment(tmp_path: Path) -> None:
    bare = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import pydantic"], capture_output=True, text=True, check=False
    )
    assert "No module named 'pydantic'" in bare.stderr


def test_the_aggregator_zip_ships_bytecode_that_lambda_imports_without_its_sources(
    tmp_path: Path,
) -> None:
    """Every `.py` in the zip has its unchecked-hash bytecode under `__pycache__` with the
    runtime's tag; unzipped, with every source replaced by one that raises, the handler still
    imports and runs its first invocation under `-B` (nothing written, as on a read-only
    /var/task): nothing of the package was compiled, everything came from the shipped bytecode."""
    function = "AggregatorFunction"
    template = Template.load()
    tag = interpreter_tag(runtime(template, function))
    package = build(function, tmp_path / "built", platform="host")
    task = tmp_path / "var-task"
    with zipfile.ZipFile(package.zip(tmp_path / "aggregator.zip")) as opened:
        names = set(opened.namelist())
        opened.extractall(task)
    sources = sorted(PurePosixPath(name) for name in names if name.endswith(".py"))
    assert len(sources) > 100  # the first-party modules and the wheels'
    missing = [s for s in sources if str(s.parent / "__pycache__" / f"{s.stem}.{tag}.pyc") not in names]
    assert missing == []
    for source in sources:
        pyc = task / source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01, pyc  # hash, unchecked
        (task / source).write_text(f"raise SystemExit('the source of {source} was read')\n")
    before = sorted(task.rglob("*"))
    sdk = runtime_sdk(tmp_path / "var-runtime")
    module = handler_module(template, function)
    probe = import_ms(module, [task, sdk], function_environment(template, function), FIRST_EVENTS[function])
    assert probe.cpu > 0
    assert probe.first_cpu > 0
    assert sorted(task.rglob("*")) == before


def test_the_aggregator_package_runs_its_handler_within_its_role(
    make_stack: Any, endpoint: Any, tmp_path: Path
) -> None:
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
    steps: list[dict[str, Any]] = [
        {"event": shard.event(first, window=window)},
        # a new process finishes the window: it catches up with the dedup log (LIST, GET) first
        {"event": final, "cold": "aggregator", "state_from": 0},
        # the final invocation again (Lambda never got the answer): every condition fails, nothing changes
        {"event": final, "state_from": 0},
    ]
    ran = run_packaged("AggregatorFunction", template, endpoint, steps, tmp_path)
    responses = ran.responses
    assert all(r["batchItemFailures"] == [] for r in responses)
    assert responses[1] == responses[2]

    items = endpoint.client("dynamodb").scan(TableName=function.environment["AGGREGATES_TABLE"])["Items"]
    assert len([i for i in items if i["pk"]["S"].startswith("SEGMENT#")]) == 1
    quarantined = endpoint.client("dynamodb").scan(TableName=function.environment["QUARANTINE_TABLE"])
    assert quarantined["Count"] == 2
    # (GetItem is the fallback when a cancellation reason carries no item: moto's always does)
    assert {
        ("dynamodb", "TransactWriteItems"),
        ("dynamodb", "BatchWriteItem"),
        ("kinesis", "ListShards"),
        ("s3", "PutObject"),
        ("s3", "ListObjectsV2"),
        ("s3", "GetObject"),
    } <= ran.made()
    print(f"\n{len(ran.calls)} AWS calls, all within the role; host: {platform.machine()}")


# --- the batch and serving functions, one after the other on real traffic -------------------------


def stream_records(kinesis: Any, stream: str) -> tuple[str, list[dict[str, Any]]]:
    (shard,) = kinesis.list_shards(StreamName=stream)["Shards"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    while True:
        page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        records += page["Records"]
        if not page["Records"]:
            return shard["ShardId"], records
        iterator = page["NextShardIterator"]


def lambda_records(
    template: Template, function_id: str, shard_id: str, records: list[dict[str, Any]]
) -> list[KinesisEventRecord]:
    """The records as Lambda's event source mapping hands them to the function."""
    return [
        KinesisEventRecord(
            kinesis=KinesisPayload(
                partitionKey=record["PartitionKey"],
                sequenceNumber=record["SequenceNumber"],
                data=base64.b64encode(record["Data"]).decode(),
                approximateArrivalTimestamp=round(record["ApproximateArrivalTimestamp"].timestamp(), 3),
            ),
            eventID=f"{shard_id}:{record['SequenceNumber']}",
            invokeIdentityArn=template.arn(function_id.removesuffix("Function") + "Role"),
            awsRegion=template.region,
            eventSourceARN=template.arn("OrdersStream"),
        )
        for record in records
    ]


def final_invocations(
    template: Template, shard_id: str, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per tumbling window, the final invocation carrying its records (no earlier one)."""
    seconds = int(template.parameters["WindowSeconds"])
    windows: dict[Window, list[KinesisEventRecord]] = {}
    for record in lambda_records(template, "AggregatorFunction", shard_id, records):
        arrival_ms = round(record.kinesis.approximateArrivalTimestamp * 1000)
        windows.setdefault(Window.containing(arrival_ms, seconds), []).append(record)
    return [
        KinesisTimeWindowEvent(
            Records=window_records,
            window=WindowBounds(**window.as_event()),
            shardId=shard_id,
            eventSourceARN=template.arn("OrdersStream"),
            isFinalInvokeForWindow=True,
            isWindowTerminatedEarly=False,
        ).model_dump()
        for window, window_records in sorted(windows.items(), key=lambda item: item[0].start_ms)
    ]


def emf_metrics(output: list[str]) -> dict[str, dict[str, Any]]:
    """metric name -> the EMF document that carried it (namespace, dimensions, value)."""
    found = {}
    for line in output:
        document = json.loads(line) if line.startswith("{") else {}
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                found[metric["Name"]] = {
                    "namespace": directive["Namespace"],
                    "dimensions": {
                        name: document[name] for names in directive["Dimensions"] for name in names
                    },
                    "value": document[metric["Name"]],
                }
    return found


def test_the_batch_and_serving_packages_run_their_handlers_within_their_roles(
    make_stack: Any, endpoint: Any, tmp_path: Path
) -> None:
    """Real traffic (the producer) into the stream; the packaged archiver and aggregator get it as
    Lambda would hand it over; the packaged snapshot recomputes and reconciles; the packaged API
    answers from both layers. Each in a clean interpreter of its own, within its own role."""
    template, _ = make_stack(ShardCount=1, WindowSeconds=1)
    stream = template.physical_name("OrdersStream")
    client = producer_client(endpoint_url=endpoint.url, region_name=endpoint.region)
    with Producer(client, stream, tmp_path / "spool.jsonl") as producer:
        for event in Fleet(FleetConfig(stores=4, seed=3, refund_share=0.1)).events(150):
            assert producer.submit(event) is None
    tally: dict[tuple[str, str], int] = {(r.store_id, r.currency): r.net_minor for r in producer.result.tally}
    shard_id, records = stream_records(endpoint.client("kinesis"), stream)
    # a batch the archiver's mapping once gave up on (metadata only, as Lambda sends it): the
    # snapshot moves it from the queue into the bucket and lists it in the reconciliation's notes
    notice = {
        "requestContext": {
            "functionArn": template.arn("ArchiverFunction"),
            "condition": "RetryAttemptsExhausted",
        },
        "KinesisBatchInfo": {"shardId": shard_id, "startSequenceNumber": "1", "endSequenceNumber": "2"},
    }
    endpoint.client("sqs").send_message(
        QueueUrl=template.function("SnapshotFunction").environment["FAILURES_QUEUE"],
        MessageBody=json.dumps(notice),
    )
    time.sleep(3.5)  # past the snapshot's 2-second grace and into a later 1-second window

    archiver = run_packaged(
        "ArchiverFunction",
        template,
        endpoint,
        [
            {
                "event": KinesisEvent(
                    Records=lambda_records(template, "ArchiverFunction", shard_id, records)
                ).model_dump()
            }
        ],
        tmp_path,
    )
    assert archiver.responses == [{"batchItemFailures": []}]
    assert archiver.made() == {("kinesis", "ListShards"), ("s3", "PutObject")}

    aggregator = run_packaged(
        "AggregatorFunction",
        template,
        endpoint,
        [{"event": e} for e in final_invocations(template, shard_id, records)],
        tmp_path,
    )
    assert all(r["batchItemFailures"] == [] for r in aggregator.responses)

    (schedule,) = schedules_of(template, ["SnapshotFunction"])
    scheduled = schedule.event(time.time_ns() // 1_000_000, template.account_id, template.region)
    snapshot = run_packaged("SnapshotFunction", template, endpoint, [{"event": scheduled}], tmp_path)
    (outcome,) = snapshot.responses
    assert (outcome["finished"], outcome["reconciliation"], outcome["unexplained"]) == (True, "clean", 0)
    assert {("sqs", "ReceiveMessage"), ("sqs", "DeleteMessage"), ("s3", "DeleteObjects")} <= snapshot.made()
    # what ReconciliationDriftAlarm reads: namespace salesstream, service = the stage's
    drift = emf_metrics(snapshot.output)["UnexplainedDifferences"]
    assert drift == {
        "namespace": "salesstream",
        "dimensions": {"service": f"{template.parameters['Stage']}-salesstream"},
        "value": [0.0],  # powertools writes each metric's values as a list
    }

    routes = ["/sales", "/shards", "/reconciliation", "/", "/summary"]
    no_op = FunctionInvoker(
        lambda event, context: None, function_name="-", function_arn="-", memory_mb=1, timeout_seconds=1
    )
    events = [
        http_api_event("GET", path, [], b"", Route("GET", path, no_op), {}, "api.local") for path in routes
    ]
    api = run_packaged("ApiFunction", template, endpoint, [{"event": e} for e in events], tmp_path)
    sales, shards, reconciliation, page, summary = api.responses
    assert [r["statusCode"] for r in api.responses] == [200, 200, 200, 200, 200]
    answer = json.loads(sales["body"])
    assert answer["sources"]["batch"]["snapshot"] == outcome["snapshot_id"]
    assert net_by_store(answer["rows"]) == tally  # every event, from the batch view, to the cent
    assert {row["source"] for row in answer["rows"]} == {"batch"}
    assert json.loads(shards["body"])["lag"]["source"] == "cloudwatch"  # on AWS: IteratorAge
    assert json.loads(reconciliation["body"])["status"] == "clean"
    assert page["headers"]["Content-Type"].startswith("text/html")
    assert "uPlot (v1.6.32)" in page["body"]  # the vendored chart library travels in the package
    headline = json.loads(summary["body"])  # the dashboard's figures, from the same reads
    assert headline["newest_window_end"] is not None
    assert {store["store_id"] for store in headline["stores"]} <= {store for store, _ in tally}
    assert ("cloudwatch", "GetMetricData") in api.made()
    print(f"\narchiver, aggregator, snapshot and API packages: {len(records)} records, calls within roles")


# --- which IAM action on which resource a call needs (for the calls the handlers make) --------


def needs(
    template: Any, environment: dict[str, str], service: str, operation: str, params: dict[str, Any]
) -> list[tuple[str, str, str]]:
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
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        if operation == "ListObjectsV2":
            return [("s3:ListBucket", bucket, params.get("Prefix", ""))]
        if operation == "DeleteObjects":  # authorised key by key
            return [("s3:DeleteObject", f"{bucket}/{o['Key']}", "") for o in params["Delete"]["Objects"]]
        return [(f"s3:{operation}", f"{bucket}/{params['Key']}", "")]
    if service == "kinesis":
        if "NextToken" in params:  # a further page: the token names the stream of the first
            return []
        if operation == "GetRecords":  # the iterator names no stream: the function's own
            return [("kinesis:GetRecords", template.arn("OrdersStream"), "")]
        assert params.get("StreamName", environment["STREAM_NAME"]) == environment["STREAM_NAME"]
        stream = (
            params.get("StreamARN") or f"arn:aws:kinesis:{region}:{account}:stream/{params['StreamName']}"
        )
        return [(f"kinesis:{operation}", stream, "")]
    if service == "sqs":  # a queue URL ends with the account and the queue's name
        name = params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        return [(f"sqs:{operation}", f"arn:aws:sqs:{region}:{account}:{name}", "")]
    if service == "cloudwatch":  # CloudWatch's metric reads support no resource-level permission
        return [(f"cloudwatch:{operation}", "*", "")]
    raise AssertionError(f"no rule for {service}.{operation}: add one")


def permits(grant: Grant, action: str, resource: str, prefix: str) -> bool:
    if grant.action != action or not fnmatch.fnmatchcase(resource, grant.resource):
        return False
    if not grant.condition:
        return True
    (patterns,) = json.loads(grant.condition)["StringLike"].values()  # the only condition used
    return any(
        fnmatch.fnmatchcase(prefix, p) for p in (patterns if isinstance(patterns, list) else [patterns])
    )
