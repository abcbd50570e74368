"""The template reader resolves parameters and intrinsics the way CloudFormation would."""

from __future__ import annotations

import pytest

from salesstream.deploy.template import Template, TemplateError


def test_defaults_and_overrides() -> None:
    template = Template.load(parameters={"ShardCount": 2, "Stage": "qa"})
    (stream,) = template.streams()
    assert stream.name == "qa-salesstream-orders"
    assert stream.shard_count == 2
    assert stream.encrypted


def test_unknown_parameter_is_refused() -> None:
    with pytest.raises(TemplateError, match="unknown template parameter"):
        Template.load(parameters={"Shards": 2})


def test_parameter_bounds_are_enforced() -> None:
    with pytest.raises(TemplateError, match="WindowSeconds"):
        Template.load(parameters={"WindowSeconds": 901})


def test_aggregator_event_source_mapping_comes_from_the_template() -> None:
    template = Template.load(parameters={"WindowSeconds": 30, "BatchSize": 50})
    aggregator = template.function("AggregatorFunction")
    (mapping,) = aggregator.kinesis_events
    assert mapping.stream_logical_id == "OrdersStream"
    assert mapping.tumbling_window_seconds == 30
    assert mapping.batch_size == 50
    assert mapping.parallelization_factor == 1
    assert mapping.report_batch_item_failures
    assert mapping.on_failure_queue_logical_id == "ConsumerFailuresQueue"
    assert mapping.maximum_retry_attempts > 0
    assert aggregator.environment["AGGREGATES_TABLE"] == "dev-salesstream-aggregates"
    assert aggregator.environment["WINDOW_SECONDS"] == "30"


def test_arns_and_queue_urls_are_built_for_the_local_account() -> None:
    template = Template.load(account_id="000000000000", region="eu-west-1", endpoint_url="http://x:1")
    assert (
        template.arn("OrdersStream") == "arn:aws:kinesis:eu-west-1:000000000000:stream/dev-salesstream-orders"
    )
    assert template.resolve({"Ref": "ConsumerFailuresQueue"}) == (
        "http://x:1/000000000000/dev-salesstream-consumer-failures"
    )


def test_window_requires_parallelization_factor_one() -> None:
    template = Template.load()
    document = template.document
    events = document["Resources"]["AggregatorFunction"]["Properties"]["Events"]
    events["Orders"]["Properties"]["ParallelizationFactor"] = 2
    with pytest.raises(TemplateError, match="ParallelizationFactor 1"):
        Template(document).functions()
