"""consumers.common.telemetry.log_metrics: metrics switched off stay off in a long-lived process."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from consumers.common.telemetry import log_metrics


def handler_adding_one_value(metrics: Metrics) -> Any:
    @log_metrics(metrics)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        metrics.add_metric(name="EventsCounted", unit=MetricUnit.Count, value=event["n"])
        return {"n": event["n"]}

    return handler


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_disabled_metrics_are_never_printed_nor_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    metrics = Metrics(namespace="salesstream", service="telemetry-test")
    handler = handler_adding_one_value(metrics)
    # powertools alone prints the set when one metric reaches 100 values (the 100th invocation)
    assert [handler({"n": n}, None)["n"] for n in range(250)] == list(range(250))
    assert capsys.readouterr().out == ""
    assert metrics.metric_set == {}


def test_enabled_metrics_are_printed_once_per_invocation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics = Metrics(namespace="salesstream", service="telemetry-test")
    handler = handler_adding_one_value(metrics)
    for n in range(3):
        handler({"n": n}, None)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all('"EventsCounted":' in line for line in lines)


def test_a_failed_invocation_counts_itself_and_still_raises(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics = Metrics(namespace="salesstream", service="telemetry-test")

    @log_metrics(metrics)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise TimeoutError("the table did not answer")

    with pytest.raises(TimeoutError, match="did not answer"):
        handler({}, None)
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["InvocationsFailed"] == [1.0]
