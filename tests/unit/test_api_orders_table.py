"""The API with the orders table as a second source (OrdersTableSource=on): the template gives
it the table's name and exactly the grants to list the table stream's shards; off, neither."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.serving.settings import ApiSettings
from salesstream.deploy import permissions
from salesstream.deploy.permissions import policy_problems
from salesstream.deploy.sam import transform
from salesstream.deploy.template import Template, load_template_document

DOCUMENT = load_template_document()
OFF = {"Stage": "ci"}
ON = {**OFF, "OrdersTableSource": "on"}


def api_settings(parameters: dict[str, Any]) -> ApiSettings:
    environment = Template(DOCUMENT, parameters).function("ApiFunction").environment
    return ApiSettings.model_validate({name.lower(): value for name, value in environment.items()})


def table_grants(parameters: dict[str, Any]) -> set[tuple[str, str]]:
    template = Template(DOCUMENT, parameters)
    return {
        (g.action, g.resource)
        for g in permissions.expected_grants(template, "ApiFunction")
        if "OrdersTable" in g.resource or g.resource.endswith("order-items") or "/stream/" in g.resource
    }


def test_with_the_orders_table_the_api_is_given_its_name_and_may_list_its_streams_shards() -> None:
    template = Template(DOCUMENT, ON)
    assert api_settings(ON).orders_table == template.physical_name("OrdersTable")
    table = template.arn("OrdersTable")
    assert table_grants(ON) == {
        ("dynamodb:DescribeTable", table),
        ("dynamodb:DescribeStream", table + "/stream/*"),
    }


@pytest.mark.parametrize("parameters", [ON, OFF], ids=["on", "off"])
def test_the_api_role_grants_exactly_what_its_code_needs_with_and_without_the_table(
    parameters: dict[str, Any],
) -> None:
    problems = policy_problems(
        Template(DOCUMENT, parameters), Template(transform(DOCUMENT, parameters), parameters)
    )
    assert problems == []


def test_without_the_orders_table_the_api_has_no_table_and_no_grant_on_one() -> None:
    assert api_settings(OFF).orders_table is None
    assert table_grants(OFF) == set()
