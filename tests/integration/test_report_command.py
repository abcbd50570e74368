"""`salesstream report` reads what the aggregator persisted, through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from salesstream.cli.main import main
from tests.integration.conftest import AggregatorStack
from tests.window_events import Shard, kpl, order


def test_report_json_after_a_window(
    aggregator_stack: Callable[..., AggregatorStack], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    shard.put(
        kpl(order("store-1", 1000), order("store-2", 250, currency="JPY"), order("store-1", 300, refund=True))
    )
    state = stack.invoke(shard.event(shard.records))["state"]
    stack.invoke(shard.event([], state, window=shard.window_of(shard.records[0]), final=True))
    capsys.readouterr()

    where = ["--endpoint", stack.endpoint.url, "--stage", stack.template.parameters["Stage"]]
    assert main(["report", "--json", *where]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stores"] == {
        "store-1": {
            "EUR": {
                "orders": 1,
                "refunds": 1,
                "gross_minor": 1000,
                "refunds_minor": 300,
                "net_sales_minor": 700,
            }
        },
        "store-2": {
            "JPY": {"orders": 1, "refunds": 0, "gross_minor": 250, "refunds_minor": 0, "net_sales_minor": 250}
        },
    }
    assert report["shards"][shard.shard_id]["events"] == 3
    assert report["shards"][shard.shard_id]["currencies"]["EUR"]["net_sales_minor"] == 700

    assert main(["report", *where]) == 0
    assert "7.00 EUR" in capsys.readouterr().out


def test_report_names_a_missing_table(endpoint: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--endpoint", endpoint.url, "--stage", "nosuchstage"]) == 2  # type: ignore[attr-defined]
    assert "no table nosuchstage-salesstream-aggregates" in capsys.readouterr().err
