"""The optional orders table (OrdersTableSource=on): its table, its stream mapping with the
Kinesis mapping's failure policy, and least privilege for reading its stream; off by default."""

from __future__ import annotations

import copy
import json
from typing import Any

from salesstream.deploy import permissions
from salesstream.deploy.permissions import policy_problems
from salesstream.deploy.sam import transform
from salesstream.deploy.template import Template, load_template_document
from salesstream.runtime.mappings import mappings_of

ON = {"Stage": "ci", "WindowSeconds": 30, "BatchSize": 50, "OrdersTableSource": "on"}
DOCUMENT = load_template_document()


def test_the_orders_table_is_off_by_default() -> None:
    template = Template(DOCUMENT, {"Stage": "ci"})
    assert "OrdersTable" not in {table.logical_id for table in template.tables()}
    assert template.function("AggregatorFunction").table_events == []
    assert [m.id for m in mappings_of(template, ["AggregatorFunction"])] == ["AggregatorFunction.Orders"]


def test_the_orders_table_streams_new_and_old_images_with_ttl_and_recovery() -> None:
    (table,) = [t for t in Template(DOCUMENT, ON).tables() if t.logical_id == "OrdersTable"]
    assert table.key_schema == [{"AttributeName": "event_id", "KeyType": "HASH"}]
    assert (table.stream_view_type, table.ttl_attribute, table.point_in_time_recovery) == (
        "NEW_AND_OLD_IMAGES",
        "expires_at",
        True,
    )


def test_the_table_mapping_has_the_kinesis_mappings_failure_policy_and_a_filter() -> None:
    function = Template(DOCUMENT, ON).function("AggregatorFunction")
    (kinesis,) = function.kinesis_events
    (table,) = function.table_events
    assert (table.source, table.stream_logical_id, table.starting_position) == (
        "dynamodb",
        "OrdersTable",
        "TRIM_HORIZON",
    )
    assert table.batch_size == 1000  # one order per record: not the Kinesis mapping's BatchSize
    policy = (
        "maximum_batching_window_seconds",
        "tumbling_window_seconds",
        "bisect_batch_on_function_error",
        "maximum_retry_attempts",
        "maximum_record_age_seconds",
        "report_batch_item_failures",
        "on_failure_queue_logical_id",
    )
    assert {name: getattr(table, name) for name in policy} == {
        name: getattr(kinesis, name) for name in policy
    }
    assert table.report_batch_item_failures
    assert table.bisect_batch_on_function_error
    assert table.filter_patterns == [
        {"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"event_id": {"S": [{"exists": True}]}}}}
    ]


def test_the_runtime_takes_the_table_mapping_with_the_stream_of_the_table() -> None:
    template = Template(DOCUMENT, ON)
    mappings = {m.id: m for m in mappings_of(template, ["AggregatorFunction"])}
    table = mappings["AggregatorFunction.AggregatorOrdersTableMapping"]
    assert table.from_table
    assert table.windowed
    assert table.stream_name == "ci-salesstream-order-items"
    assert table.stream_arn == template.arn("OrdersTable") + "/stream/*"  # resolved at runtime start


def test_the_transformed_template_carries_the_table_mapping_as_written() -> None:
    cfn = Template(transform(DOCUMENT, ON), ON)
    mapping = cfn.properties("AggregatorOrdersTableMapping")
    assert mapping["EventSourceArn"] == cfn.arn("OrdersTable") + "/stream/*"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert json.loads(mapping["FilterCriteria"]["Filters"][0]["Pattern"])["eventName"] == ["INSERT", "MODIFY"]
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == cfn.arn("ConsumerFailuresQueue")


def test_roles_grant_exactly_what_is_needed_with_the_table_on_and_off() -> None:
    for parameters in (ON, {"Stage": "ci"}):
        document = copy.deepcopy(DOCUMENT)
        assert (
            policy_problems(
                Template(document, parameters), Template(transform(document, parameters), parameters)
            )
            == []
        )


def test_reading_the_table_stream_is_granted_on_that_stream_only() -> None:
    template = Template(DOCUMENT, ON)
    grants = {(g.action, g.resource) for g in permissions.expected_grants(template, "AggregatorFunction")}
    stream = template.arn("OrdersTable") + "/stream/*"
    assert {
        ("dynamodb:DescribeStream", stream),
        ("dynamodb:GetRecords", stream),
        ("dynamodb:GetShardIterator", stream),
        ("dynamodb:ListStreams", "*"),
    } <= grants


def test_a_missing_table_grant_is_reported() -> None:
    document: dict[str, Any] = copy.deepcopy(DOCUMENT)
    statements = document["Resources"]["AggregatorOrdersTablePolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    statements[0]["Action"] = ["dynamodb:DescribeStream", "dynamodb:GetRecords"]
    problems = policy_problems(Template(document, ON), Template(transform(document, ON), ON))
    assert any("lacks" in p and "dynamodb:GetShardIterator" in p for p in problems)


def test_the_archiver_reads_the_table_stream_too_windowed_to_learn_its_shard_and_new_items_only() -> None:
    off = Template(DOCUMENT, {"Stage": "ci"}).function("ArchiverFunction")
    assert off.table_events == []
    function = Template(DOCUMENT, ON).function("ArchiverFunction")
    (kinesis,) = function.kinesis_events
    (table,) = function.table_events
    assert (table.stream_logical_id, table.batch_size) == ("OrdersTable", 1000)
    # only a windowed DynamoDB Streams event names its shard (`shardId`): the archive is per shard
    assert table.tumbling_window_seconds == 30
    assert kinesis.tumbling_window_seconds == 0
    policy = ("bisect_batch_on_function_error", "maximum_retry_attempts", "report_batch_item_failures")
    assert {name: getattr(table, name) for name in policy} == {
        name: getattr(kinesis, name) for name in policy
    }
    assert table.on_failure_queue_logical_id == "ConsumerFailuresQueue"
    assert table.filter_patterns == [
        {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"event_id": {"S": [{"exists": True}]}}}}
    ]
    grants = {
        (g.action, g.resource)
        for g in permissions.expected_grants(Template(DOCUMENT, ON), "ArchiverFunction")
    }
    assert ("dynamodb:GetRecords", Template(DOCUMENT, ON).arn("OrdersTable") + "/stream/*") in grants
