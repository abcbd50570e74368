"""The CloudWatch dashboard in deploy/template.yaml names only metrics that exist: the handlers'
own EMF metrics (read from the code that emits them) in the namespace the functions are given,
and AWS's own Lambda and Kinesis metrics."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Final

from load_tests.config import TARGET_VISIBLE_P95
from salesstream.deploy.template import Template, load_template_document

ROOT = Path(__file__).parents[2]
PARAMETERS = {"Stage": "ci", "AlarmTopicArn": ""}
TEMPLATE = Template(load_template_document(), PARAMETERS)
# AWS's own metrics the dashboard may show (the Lambda and Kinesis user guides' metric tables)
AWS_METRICS: Final = {
    "AWS/Lambda": {"IteratorAge", "Throttles", "Errors", "Invocations", "Duration"},
    "AWS/Kinesis": {"WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded"},
}


def emitted_metrics() -> set[str]:
    """Every metric name the consumers emit: `metrics.add_metric(name=...)` and
    `single_metric(name=...)` calls, found in the source."""
    names = set()
    for source in (ROOT / "consumers").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call):
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called not in ("add_metric", "single_metric"):
                continue
            for keyword in node.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    names.add(str(keyword.value.value))
    return names


def dashboard() -> dict[str, Any]:
    (logical_id,) = [
        lid for lid, r in TEMPLATE.resources.items() if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    properties = TEMPLATE.properties(logical_id)
    assert properties["DashboardName"] == "ci-salesstream"
    body: dict[str, Any] = json.loads(properties["DashboardBody"])
    return body


def metric_lines() -> list[list[Any]]:
    return [line for w in dashboard()["widgets"] for line in w.get("properties", {}).get("metrics", [])]


def named_metrics() -> set[tuple[str, str]]:
    """(namespace, metric) of every plain metric line and every Metrics Insights query."""
    named = set()
    for line in metric_lines():
        if isinstance(line[0], str):
            named.add((line[0], line[1]))
            continue
        query = line[0]["expression"]
        found = re.fullmatch(r'SELECT \w+\((\w+)\) FROM SCHEMA\("([\w/]+)".*', query)
        assert found, query
        named.add((found.group(2), found.group(1)))
    return named


def test_the_code_emits_the_metrics_the_dashboard_reads() -> None:
    assert {"Quarantined", "UnexplainedDifferences", "WindowEndToVisibleMs"} <= emitted_metrics()


def test_every_metric_on_the_dashboard_is_emitted_by_the_code_or_by_aws() -> None:
    (namespace,) = {f.environment["POWERTOOLS_METRICS_NAMESPACE"] for f in TEMPLATE.functions()}
    emitted = emitted_metrics()
    for space, metric in named_metrics():
        if space == namespace:
            assert metric in emitted, f"{metric}: no handler emits it"
        else:
            assert metric in AWS_METRICS.get(space, set()), f"{space} {metric}: not an AWS metric we know"


def test_the_dashboard_shows_the_operators_figures() -> None:
    metrics = {metric for _, metric in named_metrics()}
    for wanted in (
        "IteratorAge",
        "Throttles",
        "WriteProvisionedThroughputExceeded",
        "Quarantined",
        "UnexplainedDifferences",
        "WindowEndToVisibleMs",
        "ApiBackendUnavailable",
    ):
        assert wanted in metrics, wanted


def test_the_handlers_metrics_are_read_for_this_stage_only() -> None:
    for line in metric_lines():
        if isinstance(line[0], dict):  # quarantine by reason: a Metrics Insights query
            assert "WHERE service = 'ci-salesstream' GROUP BY reason" in line[0]["expression"]
        elif line[0] == "salesstream":
            assert line[2:4] == ["service", "ci-salesstream"], line
        else:  # AWS's metrics, per resource of this stack
            assert line[3].startswith("ci-salesstream"), line


def test_the_targets_are_drawn_where_the_alarms_and_the_load_test_put_them() -> None:
    annotations = {
        w["properties"]["title"]: w["properties"].get("annotations", {}).get("horizontal", [])
        for w in dashboard()["widgets"]
        if w["type"] == "metric"
    }
    visible = next(lines for title, lines in annotations.items() if title.startswith("Window end to visible"))
    assert visible == [{"label": "target p95", "value": TARGET_VISIBLE_P95 * 1000}]
    age = next(lines for title, lines in annotations.items() if title.startswith("Iterator age"))
    assert age[0]["value"] == TEMPLATE.properties("AggregatorIteratorAgeAlarm")["Threshold"]
