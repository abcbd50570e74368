"""Fixtures of the aggregator's handler contract tests: a provisioned stack, the function's
environment from the template, and a cold aggregator process per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class AggregatorStack:
    endpoint: Any
    template: Any
    provisioned: Any
    environment: dict[str, str]

    @property
    def aggregates_table(self) -> str:
        return self.environment["AGGREGATES_TABLE"]

    @property
    def quarantine_table(self) -> str:
        return self.environment["QUARANTINE_TABLE"]

    @property
    def bucket(self) -> str:
        return self.environment["ARCHIVE_BUCKET"]

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        from consumers.aggregator.handler import lambda_handler

        return lambda_handler(event, None)

    def cold_start(self) -> None:
        """A new Lambda process: settings, clients and the in-memory dedup index are gone."""
        from consumers.aggregator.handler import aggregator

        aggregator.cache_clear()

    def items(self, table: str) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserialize = TypeDeserializer().deserialize
        found = []
        for page in self.endpoint.client("dynamodb").get_paginator("scan").paginate(TableName=table):
            found += [{k: deserialize(v) for k, v in item.items()} for item in page["Items"]]
        return sorted(found, key=lambda item: (item["pk"], item["sk"]))


@pytest.fixture
def aggregator_stack(
    make_stack: Callable[..., Any], endpoint: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., AggregatorStack]]:
    """Factory: make_stack(...) plus the AggregatorFunction's environment, set for the handler."""
    from consumers.aggregator.handler import aggregator

    def make(**parameters: Any) -> AggregatorStack:
        template, provisioned = make_stack(**parameters)
        (function,) = [f for f in template.functions() if f.logical_id == "AggregatorFunction"]
        for name, value in function.environment.items():
            monkeypatch.setenv(name, str(value))
        aggregator.cache_clear()
        return AggregatorStack(endpoint, template, provisioned, dict(function.environment))

    yield make
    aggregator.cache_clear()
