"""The SAM-transformed template deploys into moto's CloudFormation on the embedded endpoint, and
what it creates carries the template's settings (each expected value is read from the template
with the same parameters, none is written here).

moto creates but does not keep everything: it ignores a function's Architectures and
LoggingConfig, a stream's encryption, a table's point-in-time recovery, a bucket's public access
block and lifecycle, and cannot create alarms, bucket policies, the HTTP API or a function's
asynchronous invocation settings. Those settings are checked on the transformed template
(tests/unit/test_deploy_template.py), not here.
"""

from __future__ import annotations

import ast
import json
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from salesstream.deploy.imports import closure
from salesstream.deploy.package import Package, copy_modules, handler_module
from salesstream.deploy.permissions import Granted, expected_grants
from salesstream.deploy.sam import transform
from salesstream.deploy.template import Template

# what moto's CloudFormation cannot create (it warns and skips them)
NOT_IN_MOTO = {
    "AWS::CloudWatch::Alarm",
    "AWS::S3::BucketPolicy",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::Lambda::EventInvokeConfig",
}
FUNCTIONS = ("AggregatorFunction", "ArchiverFunction", "SnapshotFunction", "ApiFunction")


@dataclass
class Stack:
    name: str
    template: Template  # the SAM template with the stack's parameters, as the local tooling reads it
    transformed: dict[str, Any]
    physical: dict[str, str]  # logical id -> physical id
    outputs: dict[str, str]


@pytest.fixture(scope="module")
def stack(endpoint: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stage = "cfn" + uuid.uuid4().hex[:8]
    parameters = {
        "Stage": stage,
        "ShardCount": 3,
        "RetentionHours": 48,
        "WindowSeconds": 20,
        "BatchSize": 250,
        "LogRetentionDays": 14,
    }
    template = Template.load(parameters=parameters, region=endpoint.region, account_id=endpoint.account_id())
    # moto stores the code and never runs it: the handlers' own modules are enough here
    code_dir = tmp_path_factory.mktemp("code")
    copy_modules(closure([handler_module(template, function) for function in FUNCTIONS]), code_dir)
    archive = Package(code_dir, "", [], "none").zip(tmp_path_factory.mktemp("zip") / "function.zip")
    s3, cloudformation = endpoint.client("s3"), endpoint.client("cloudformation")
    bucket = f"{stage}-packages"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="function.zip", Body=archive.read_bytes())

    transformed = transform(
        None, parameters, region=endpoint.region, code={"Bucket": bucket, "Key": "function.zip"}
    )
    name = f"{stage}-salesstream"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tried to parse")
        cloudformation.create_stack(
            StackName=name,
            TemplateBody=json.dumps(transformed),
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM"],
        )
        (described,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
        summaries = cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    try:
        yield Stack(
            name,
            template,
            transformed,
            {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries if s["LogicalResourceId"]},
            {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
        )
    finally:
        cloudformation.delete_stack(StackName=name)
        s3.delete_object(Bucket=bucket, Key="function.zip")
        s3.delete_bucket(Bucket=bucket)


def test_every_resource_moto_can_create_is_created(stack: Stack) -> None:
    wanted = {
        lid: resource["Type"]
        for lid, resource in stack.transformed["Resources"].items()
        if "Condition" not in resource or stack.template.condition(resource["Condition"])
    }
    assert "RuntimeCheckpointsTable" not in wanted  # only for the local runtime (Target=local)
    missing = {lid: t for lid, t in wanted.items() if lid not in stack.physical}
    assert set(missing.values()) <= NOT_IN_MOTO, missing
    assert set(stack.physical) <= set(wanted)


def test_the_stream_and_tables_carry_the_template_settings(stack: Stack, endpoint: Any) -> None:
    (spec,) = stack.template.streams()
    summary = endpoint.client("kinesis").describe_stream_summary(StreamName=spec.name)
    summary = summary["StreamDescriptionSummary"]
    assert (
        (summary["OpenShardCount"], summary["RetentionPeriodHours"])
        == (3, 48)
        == (
            spec.shard_count,
            spec.retention_hours,
        )
    )
    assert stack.outputs["StreamArn"] == summary["StreamARN"] == stack.template.arn("OrdersStream")
    dynamodb = endpoint.client("dynamodb")
    for table in stack.template.tables():
        if table.logical_id == "RuntimeCheckpointsTable":
            continue
        described = dynamodb.describe_table(TableName=table.name)["Table"]
        assert described["KeySchema"] == table.key_schema
        assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert stack.physical["AggregatesTable"] == stack.outputs["AggregatesTableName"]


def test_the_bucket_queue_key_and_log_group(stack: Stack, endpoint: Any) -> None:
    (bucket,) = stack.template.buckets()
    encryption = endpoint.client("s3").get_bucket_encryption(Bucket=bucket.name)
    (rule,) = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    sqs = endpoint.client("sqs")
    (queue,) = stack.template.queues()
    attributes = sqs.get_queue_attributes(
        QueueUrl=sqs.get_queue_url(QueueName=queue.name)["QueueUrl"], AttributeNames=["All"]
    )
    properties = stack.template.properties(queue.logical_id)
    assert attributes["Attributes"]["MessageRetentionPeriod"] == str(properties["MessageRetentionPeriod"])
    key = endpoint.client("kms").get_key_rotation_status(KeyId=stack.physical["OrdersKey"])
    assert key["KeyRotationEnabled"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_has_its_log_group(stack: Stack, endpoint: Any, function: str) -> None:
    name = stack.template.properties(function)["LoggingConfig"]["LogGroup"]
    (group,) = endpoint.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert (group["logGroupName"], group["retentionInDays"]) == (
        f"/aws/lambda/{stack.name}-{function_suffix(function)}",
        14,
    )


def function_suffix(function: str) -> str:
    return function.removesuffix("Function").lower()


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_carries_the_template_settings_on_its_own_role(
    stack: Stack, endpoint: Any, function: str
) -> None:
    spec = stack.template.function(function)
    configuration = endpoint.client("lambda").get_function(FunctionName=spec.name)["Configuration"]
    assert (configuration["Handler"], configuration["Runtime"]) == (spec.handler, "python3.11")
    assert (configuration["Timeout"], configuration["MemorySize"]) == (spec.timeout_seconds, spec.memory_mb)
    # moto keeps a Number parameter's type in a variable; AWS makes every value a string
    assert {k: str(v) for k, v in configuration["Environment"]["Variables"].items()} == spec.environment
    role = function.removesuffix("Function") + "Role"
    assert stack.transformed["Resources"][function]["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}
    assert configuration["Role"].endswith(f":role/{stack.physical[role]}")


@pytest.mark.parametrize("function", ["AggregatorFunction", "ArchiverFunction"])
def test_the_event_source_mappings_carry_the_template_settings(
    stack: Stack, endpoint: Any, function: str
) -> None:
    spec = stack.template.function(function)
    lambda_ = endpoint.client("lambda")
    (event,) = spec.kinesis_events
    (mapping,) = lambda_.list_event_source_mappings(FunctionName=spec.name)["EventSourceMappings"]
    assert mapping["EventSourceArn"] == stack.template.arn(event.stream_logical_id)
    assert mapping["DestinationConfig"] == {
        "OnFailure": {"Destination": stack.template.arn(str(event.on_failure_queue_logical_id))}
    }
    assert {
        "StartingPosition": mapping["StartingPosition"],
        "BatchSize": mapping["BatchSize"],
        "MaximumBatchingWindowInSeconds": mapping["MaximumBatchingWindowInSeconds"],
        "TumblingWindowInSeconds": mapping.get("TumblingWindowInSeconds", 0),  # absent: no window
        "ParallelizationFactor": mapping["ParallelizationFactor"],
        "BisectBatchOnFunctionError": mapping["BisectBatchOnFunctionError"],
        "MaximumRetryAttempts": mapping["MaximumRetryAttempts"],
        "MaximumRecordAgeInSeconds": mapping["MaximumRecordAgeInSeconds"],
        "ReportBatchItemFailures": mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"],
    } == {
        "StartingPosition": event.starting_position,
        "BatchSize": event.batch_size,
        "MaximumBatchingWindowInSeconds": event.maximum_batching_window_seconds,
        "TumblingWindowInSeconds": event.tumbling_window_seconds,
        "ParallelizationFactor": event.parallelization_factor,
        "BisectBatchOnFunctionError": event.bisect_batch_on_function_error,
        "MaximumRetryAttempts": event.maximum_retry_attempts,
        "MaximumRecordAgeInSeconds": event.maximum_record_age_seconds,
        "ReportBatchItemFailures": event.report_batch_item_failures,
    }
    assert event.batch_size == 250  # the parameter reached it
    windowed = function == "AggregatorFunction"
    assert event.tumbling_window_seconds == (20 if windowed else 0)


def test_the_snapshot_runs_on_the_template_schedule(stack: Stack, endpoint: Any) -> None:
    (schedule,) = stack.template.function("SnapshotFunction").schedule_events
    (rule,) = [lid for lid, r in stack.transformed["Resources"].items() if r["Type"] == "AWS::Events::Rule"]
    events = endpoint.client("events")
    described = events.describe_rule(Name=stack.physical[rule])
    assert described["ScheduleExpression"] == schedule.expression == "rate(5 minutes)"
    (target,) = events.list_targets_by_rule(Rule=described["Name"])["Targets"]
    assert target["Arn"].endswith(f":function:{stack.template.function('SnapshotFunction').name}")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_created_role_grants_exactly_what_its_code_needs(
    stack: Stack, endpoint: Any, function: str
) -> None:
    iam = endpoint.client("iam")
    role = stack.physical[function.removesuffix("Function") + "Role"]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    deployed = Granted()
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):  # moto keeps a CloudFormation policy as a Python repr
            document = ast.literal_eval(urllib.parse.unquote(document))
        deployed.add(name, document["Statement"])
    # the key's id is AWS's to choose (moto's DescribeKey fails on a key made by CloudFormation)
    key = stack.template.arn("OrdersKey").replace(":key/OrdersKey", f":key/{stack.physical['OrdersKey']}")
    physical = {stack.template.arn("OrdersKey"): key}
    expected = {
        g._replace(resource=physical.get(g.resource, g.resource))
        for g in expected_grants(stack.template, function)
    }
    assert deployed.problems == []
    assert deployed.grants == expected


def test_the_producer_policy_is_an_output(stack: Stack, endpoint: Any) -> None:
    arn = stack.outputs["ProducerPolicyArn"]
    policy = endpoint.client("iam").get_policy(PolicyArn=arn)["Policy"]
    assert arn == stack.physical["ProducerPolicy"] == policy["Arn"]
