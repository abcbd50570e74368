"""deploy/template.yaml, checked offline the way AWS would take it: cfn-lint, the SAM transform,
and the settings every part must carry (encryption, failure policy, alarms). The rules are
written for every function and stream consumer, so a function added later is held to them."""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.api import lint_file

from salesstream.deploy.sam import transform
from salesstream.deploy.template import DEFAULT_TEMPLATE, Template, load_template_document

PARAMETERS = {"Stage": "ci", "WindowSeconds": 30, "BatchSize": 50, "AlarmTopicArn": ""}
SAM = Template(load_template_document(), PARAMETERS)
CFN = Template(transform(SAM.document, PARAMETERS), PARAMETERS)


def of_type(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    """The resources CloudFormation creates with these parameters (their Conditions hold)."""
    return {
        lid: template.properties(lid)
        for lid, r in template.resources.items()
        if r["Type"] == resource_type and template.included(lid)
    }


def test_cfn_lint_is_clean() -> None:
    assert [str(match) for match in lint_file(DEFAULT_TEMPLATE)] == []


def test_every_function_runs_python_311_on_arm64_with_its_own_role() -> None:
    functions = of_type(CFN, "AWS::Lambda::Function")
    roles = {CFN.arn(lid) for lid in of_type(CFN, "AWS::IAM::Role")}
    assert functions
    for function in functions.values():
        assert (function["Runtime"], function["Architectures"]) == ("python3.11", ["arm64"])
        assert function["Role"] in roles
    assert len({function["Role"] for function in functions.values()}) == len(functions)


def mapping_of(function: str) -> dict[str, Any]:
    (mapping,) = [
        m for m in of_type(CFN, "AWS::Lambda::EventSourceMapping").values() if m["FunctionName"] == function
    ]
    return mapping


def test_the_stream_consumers_are_the_aggregator_and_the_archiver() -> None:
    names = sorted(m["FunctionName"] for m in of_type(CFN, "AWS::Lambda::EventSourceMapping").values())
    assert names == ["ci-salesstream-aggregator", "ci-salesstream-archiver"]


def test_the_aggregator_mapping_carries_the_template_settings() -> None:
    assert mapping_of("ci-salesstream-aggregator") == {
        "EventSourceArn": SAM.arn("OrdersStream"),
        "FunctionName": "ci-salesstream-aggregator",
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 50,
        "MaximumBatchingWindowInSeconds": 1,
        "TumblingWindowInSeconds": 30,
        "ParallelizationFactor": 1,
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 10,
        "MaximumRecordAgeInSeconds": 3600,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": SAM.arn("ConsumerFailuresQueue")}},
    }


def test_the_archiver_mapping_has_no_window_and_the_same_failure_policy() -> None:
    assert mapping_of("ci-salesstream-archiver") == {
        "EventSourceArn": SAM.arn("OrdersStream"),
        "FunctionName": "ci-salesstream-archiver",
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 50,
        "MaximumBatchingWindowInSeconds": 2,
        "ParallelizationFactor": 1,
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 10,
        "MaximumRecordAgeInSeconds": 3600,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": SAM.arn("ConsumerFailuresQueue")}},
    }


def test_every_function_is_built_by_the_makefile_into_its_own_log_group() -> None:
    """`sam build` packs each function with deploy/Makefile (only what its handler imports);
    each writes to a log group of the template's, with its retention."""
    for function in SAM.functions():
        resource = SAM.resources[function.logical_id]
        assert resource.get("Metadata") == {"BuildMethod": "makefile", "ContextPath": "."}, (
            function.logical_id
        )
        group = SAM.properties(function.logical_id)["LoggingConfig"]["LogGroup"]
        assert group == f"/aws/lambda/{function.name}"
        (log_group,) = [p for p in of_type(SAM, "AWS::Logs::LogGroup").values() if p["LogGroupName"] == group]
        assert log_group["RetentionInDays"] == SAM.parameters["LogRetentionDays"]


def test_every_stream_consumer_has_a_bounded_failure_policy() -> None:
    """AWS retries a failing batch until the record expires (a week) by default: one bad record
    would hold its shard. Every mapping must bound both and keep what it gives up."""
    for function in SAM.functions():
        for mapping in function.kinesis_events:
            where = f"{function.logical_id}.{mapping.name}"
            assert 0 <= mapping.maximum_retry_attempts <= 100, where
            assert 60 <= mapping.maximum_record_age_seconds <= 86_400, where
            assert mapping.bisect_batch_on_function_error, where
            assert mapping.report_batch_item_failures, where
            assert mapping.on_failure_queue_logical_id, where
            assert mapping.parallelization_factor == 1, where


def test_data_at_rest_is_encrypted_and_recoverable() -> None:
    (stream,) = of_type(CFN, "AWS::Kinesis::Stream").values()
    assert stream["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": SAM.arn("OrdersKey")}
    assert CFN.properties("OrdersKey")["EnableKeyRotation"] is True
    for lid, table in of_type(CFN, "AWS::DynamoDB::Table").items():
        assert table["BillingMode"] == "PAY_PER_REQUEST", lid
        assert table["SSESpecification"] == {"SSEEnabled": True}, lid
        if CFN.resources[lid].get("Condition") != "IsLocalRuntime":  # the local runtime's own table
            assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, lid
    for queue in of_type(CFN, "AWS::SQS::Queue").values():
        assert queue["SqsManagedSseEnabled"] is True


def test_the_bucket_is_encrypted_private_and_tls_only() -> None:
    bucket = CFN.properties("ArchiveBucket")
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    (policy,) = of_type(CFN, "AWS::S3::BucketPolicy").values()
    (deny,) = policy["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(deny["Resource"]) == {SAM.arn("ArchiveBucket"), SAM.arn("ArchiveBucket") + "/*"}


def alarms() -> list[dict[str, Any]]:
    return list(of_type(SAM, "AWS::CloudWatch::Alarm").values())


def alarm_on(metric: str, function: str | None = None) -> dict[str, Any]:
    (found,) = [
        a
        for a in alarms()
        if a.get("MetricName") == metric
        and (function is None or a["Dimensions"] == [{"Name": "FunctionName", "Value": function}])
    ]
    return found


def test_every_function_alarms_on_errors_and_every_stream_consumer_on_iterator_age() -> None:
    for function in SAM.functions():
        assert alarm_on("Errors", function.name)["Namespace"] == "AWS/Lambda"
        if function.kinesis_events:
            iterator_age = alarm_on("IteratorAge", function.name)
            assert iterator_age["Statistic"] == "Maximum"
            # it fires well before records reach MaximumRecordAgeInSeconds and are given up
            oldest = min(m.maximum_record_age_seconds for m in function.kinesis_events)
            assert iterator_age["Threshold"] * iterator_age["EvaluationPeriods"] < oldest * 1000 * 5


def test_every_failure_queue_alarms_when_a_batch_is_given_up() -> None:
    queues = {m.on_failure_queue_logical_id for f in SAM.functions() for m in f.kinesis_events}
    for queue in queues:
        alarm = alarm_on("ApproximateNumberOfMessagesVisible")
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": SAM.physical_name(str(queue))}]


@pytest.mark.parametrize(("metric", "statistic"), [("Quarantined", "SUM"), ("UnexplainedDifferences", "MAX")])
def test_the_pipeline_metrics_are_alarmed_per_stage(metric: str, statistic: str) -> None:
    """The handlers' EMF metrics: namespace `salesstream`, dimension `service` = the stage's name
    (POWERTOOLS_SERVICE_NAME), any further dimension (Quarantined has `reason`) summed over."""
    for function in SAM.functions():
        environment = function.environment
        assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "salesstream", function.logical_id
        assert environment["POWERTOOLS_SERVICE_NAME"] == "ci-salesstream", function.logical_id
    (query,) = [q for a in alarms() for q in a.get("Metrics", []) if f"({metric})" in q["Expression"]]
    assert query["Expression"] == (
        f"SELECT {statistic}({metric}) FROM \"salesstream\" WHERE service = 'ci-salesstream'"  # noqa: S608
    )


def test_alarms_notify_the_topic_only_when_one_is_given() -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:oncall"
    with_topic = Template(SAM.document, {**PARAMETERS, "AlarmTopicArn": topic})
    for lid, resource in SAM.resources.items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            assert SAM.properties(lid).get("AlarmActions") is None  # Ref AWS::NoValue: no property
            assert with_topic.properties(lid)["AlarmActions"] == [topic]


def test_pos_systems_get_a_producer_policy_as_an_output() -> None:
    outputs = SAM.document["Outputs"]
    assert outputs["ProducerPolicyArn"]["Value"] == {"Ref": "ProducerPolicy"}
    assert CFN.resources["ProducerPolicy"]["Type"] == "AWS::IAM::ManagedPolicy"


def test_the_local_resolver_reads_what_only_aws_creates() -> None:
    """The emulator targets never create the key, the roles or the log groups, but the function
    properties that name them must still resolve (the runtime reads every function)."""
    local = Template.load(parameters={"Stage": "ci", "Target": "local"}, account_id="000000000000")
    assert local.arn("OrdersKey") == "arn:aws:kms:us-east-1:000000000000:key/OrdersKey"
    assert local.arn("AggregatorRole") == "arn:aws:iam::000000000000:role/AggregatorRole"
    assert local.arn("AggregatorLogGroup").endswith(":log-group:/aws/lambda/ci-salesstream-aggregator:*")
    properties = local.properties("AggregatorFunction")
    assert properties["LoggingConfig"] == {"LogGroup": "/aws/lambda/ci-salesstream-aggregator"}
    assert local.function("AggregatorFunction").environment["POWERTOOLS_SERVICE_NAME"] == "ci-salesstream"


def test_the_http_api_sends_every_route_to_the_api_function_as_payload_2() -> None:
    """What moto's CloudFormation cannot create (the HTTP API), checked as SAM makes it."""
    (api_id,) = of_type(CFN, "AWS::ApiGatewayV2::Api")
    paths = CFN.properties(api_id)["Body"]["paths"]
    routes = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert routes == {(e.method, e.path) for e in SAM.function("ApiFunction").http_events}
    target = SAM.arn("ApiFunction")
    for methods in paths.values():
        for operation in methods.values():
            integration = operation["x-amazon-apigateway-integration"]
            assert (integration["type"], integration["payloadFormatVersion"]) == ("aws_proxy", "2.0")
            assert integration["uri"].endswith(f"/functions/{target}/invocations")


def test_the_snapshot_runs_on_its_schedule_and_is_never_retried_asynchronously() -> None:
    """A failed run is not retried by Lambda: the next scheduled run continues from the cursor."""
    (rule,) = of_type(CFN, "AWS::Events::Rule").values()
    assert rule["ScheduleExpression"] == SAM.parameters["SnapshotRate"]
    assert rule["Targets"][0]["Arn"] == SAM.arn("SnapshotFunction")
    (config,) = of_type(CFN, "AWS::Lambda::EventInvokeConfig").values()
    assert (config["FunctionName"], config["MaximumRetryAttempts"]) == ("ci-salesstream-snapshot", 0)
