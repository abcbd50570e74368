"""The cost model and its single price file (load_tests/cost.py, load_tests/prices.yaml)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from load_tests.cost import Prices, Usage, model_cost

PRICES = Prices.load()


def usage(**changes: Any) -> Usage:
    base = {
        "events": 1_000_000,
        "seconds": 50.0,  # 20,000 events/s
        "shards": 12,
        "kinesis_records": 17_000,
        "payload_units": 17_000,
        "event_bytes": 430.0,
        "invocations": 400,
        "gb_seconds": 100.0,
        "wall_gb_seconds": 1_000.0,
        "memory_mb": 1024,
        "batch_size": 100,
        "dynamodb_write_units": 4_000,
        "dynamodb_read_units": 0,
        "s3_put_class": 420,
        "s3_get_class": 0,
        "sqs_requests": 0,
    }
    return Usage(**{**base, **changes})


def test_every_price_names_its_source_and_the_day_it_was_checked() -> None:
    assert PRICES.region == "us-east-1"
    assert PRICES.checked.count("-") == 2
    for section in (PRICES.kinesis, PRICES.lambda_, PRICES.dynamodb, PRICES.s3, PRICES.sqs):
        assert section.source.startswith("https://aws.amazon.com/")
    assert PRICES.dynamodb.write_request_units_per_million == 0.625  # after the Nov 2024 cut
    assert PRICES.dynamodb.read_request_units_per_million == 0.125


def test_each_line_is_quantity_times_unit_price_per_million_events() -> None:
    lines = {line.item: line for line in model_cost(usage(), PRICES).pipeline}
    shard_hours = 12 * 50 / 3600
    assert lines["Kinesis shard-hours"].quantity_per_million == pytest.approx(shard_hours)
    assert lines["Kinesis shard-hours"].usd_per_million == pytest.approx(shard_hours * 0.015)
    assert lines["Kinesis PUT payload units"].usd_per_million == pytest.approx(17_000 * 0.014 / 1e6)
    assert lines["Lambda requests"].usd_per_million == pytest.approx(400 * 0.2 / 1e6)
    assert lines["Lambda duration (arm64, modelled)"].usd_per_million == pytest.approx(100 * 0.0000133334)
    assert lines["DynamoDB writes"].usd_per_million == pytest.approx(4_000 * 0.625 / 1e6)
    assert lines["S3 PUT/LIST"].usd_per_million == pytest.approx(420 * 0.005 / 1000)


def test_figures_scale_to_a_million_events() -> None:
    half = model_cost(usage(events=500_000), PRICES)
    full = model_cost(usage(), PRICES)
    assert half.pipeline_total == pytest.approx(2 * full.pipeline_total)


def test_the_naive_design_costs_about_65_cents_per_million_and_this_one_a_cent_or_less() -> None:
    cost = model_cost(usage(), PRICES)
    naive = {line.item.split(" (")[0]: line.usd_per_million for line in cost.naive}
    assert naive["DynamoDB writes"] == pytest.approx(0.625)
    assert naive["Kinesis PUT payload units"] == pytest.approx(0.014)
    assert 0.64 < cost.naive_total < 0.75
    assert cost.pipeline_total < 0.01


def test_no_counted_events_is_an_error_not_a_division_by_zero() -> None:
    with pytest.raises(ValueError, match="no events"):
        model_cost(usage(events=0), PRICES)


def test_the_wall_time_duration_is_shown_beside_the_total_and_not_in_it() -> None:
    cost = model_cost(usage(), PRICES)
    assert cost.lambda_duration_at_wall_time.usd_per_million == pytest.approx(1_000 * 0.0000133334)
    assert cost.pipeline_total < cost.lambda_duration_at_wall_time.usd_per_million


def test_an_invocation_bills_its_cpu_at_the_functions_vcpu_share_plus_its_round_trips() -> None:
    model = PRICES.lambda_duration
    calls = [("s3", "PutObject"), ("dynamodb", "TransactWriteItems"), ("kinesis", "ListShards")]
    waits = 50 + 25 + 20  # the documented assumptions; ListShards takes the default
    assert [model.call_ms(*call) for call in calls] == [50, 25, 20]
    # 1,024 MB is 1024/1769 of a vCPU: 10 ms of CPU takes 17.3 ms, rounded up with the waits
    assert model.billed_ms(0.010, calls, 1024) == math.ceil(10 * 1769 / 1024 + waits)
    # from 1,769 MB up a function has a whole vCPU: CPU time is not shortened below itself
    assert model.billed_ms(0.010, calls, 3538) == 10 + waits
    assert model.billed_ms(0.0, [], 1024) == 0


def test_the_naive_design_waits_for_the_same_update_time_the_model_uses() -> None:
    naive = {line.item: line for line in model_cost(usage(), PRICES).naive}
    update_ms = PRICES.lambda_duration.call_ms("dynamodb", "UpdateItem")
    line = naive[f"Lambda duration (one {update_ms:g} ms UpdateItem per event)"]
    assert line.quantity_per_million == pytest.approx(1_000_000 * update_ms / 1000 * 1024 / 1024)
