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
        from consumers.speed.handler import lambda_handler

        return lambda_handler(event, None)

    def cold_start(self) -> None:
        """A new Lambda process: settings, clients and the in-memory dedup index are gone."""
        from consumers.speed.handler import aggregator

        aggregator.cache_clear()

    @property
    def app(self) -> Any:
        """This process's aggregator (built from the environment on first use)."""
        from consumers.speed.handler import aggregator

        return aggregator()

    def store_totals(self) -> dict[tuple[str, str], Any]:
        """(store, currency) -> Totals, summed over business days, read back from the table."""
        from salesstream.core.aggregation import Totals
        from tests.speed_items import store_day_amounts

        totals: dict[tuple[str, str], Any] = {}
        for item in self.items(self.aggregates_table):
            for store, currency, _, amounts in store_day_amounts(item):
                totals[(store, currency)] = totals.get((store, currency), Totals()) + Totals(*amounts)
        return totals

    def segments(self) -> list[dict[str, Any]]:
        return [item for item in self.items(self.aggregates_table) if item["pk"].startswith("SEGMENT#")]

    def shard_item(self, shard: str, sort_key: str) -> dict[str, Any]:
        (item,) = [
            i
            for i in self.items(self.aggregates_table)
            if i["pk"] == f"SHARD#{shard}" and i["sk"] == sort_key
        ]
        return item

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
    from consumers.speed.handler import aggregator

    def make(**parameters: Any) -> AggregatorStack:
        template, provisioned = make_stack(**parameters)
        (function,) = [f for f in template.functions() if f.logical_id == "AggregatorFunction"]
        for name, value in function.environment.items():
            monkeypatch.setenv(name, str(value))
        aggregator.cache_clear()
        return AggregatorStack(endpoint, template, provisioned, dict(function.environment))

    yield make
    aggregator.cache_clear()


# --- faults injected with botocore event hooks on the handler's real clients ----------------------


class Crash(RuntimeError):
    """The process died here (after the call reached the service)."""


@dataclass
class _ErrorStatus:
    status_code: int = 400
    headers: dict[str, str] | None = None


@dataclass
class Fault:
    client: Any
    event_name: str
    handler: Callable[..., Any]
    calls: int = 0

    def remove(self) -> None:
        self.client.meta.events.unregister(self.event_name, self.handler)


def answer_with_error(client: Any, operation: str, parsed: dict[str, Any], times: int) -> Fault:
    """The first `times` calls of `operation` get `parsed` as an error answer (botocore's own
    retries never see it: the hook answers before the request is sent)."""
    fault = Fault(
        client,
        f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}",
        lambda **_: None,
    )

    def handler(**_: Any) -> tuple[_ErrorStatus, dict[str, Any]] | None:
        fault.calls += 1
        return (_ErrorStatus(), parsed) if fault.calls <= times else None

    fault.handler = handler
    client.meta.events.register(fault.event_name, handler)
    return fault


def crash_after(client: Any, operation: str, on_call: int = 1) -> Fault:
    """The `on_call`-th call of `operation` goes through, then the process 'crashes'."""
    fault = Fault(
        client, f"after-call.{client.meta.service_model.service_id.hyphenize()}.{operation}", lambda **_: None
    )

    def handler(**_: Any) -> None:
        fault.calls += 1
        if fault.calls == on_call:
            raise Crash(f"crashed after {operation} call {on_call}")

    fault.handler = handler
    client.meta.events.register(fault.event_name, handler)
    return fault


def error(code: str, message: str = "injected", **extra: Any) -> dict[str, Any]:
    return {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}, **extra}
