"""The batch layer's clients and settings, built once: from the function's environment on
Lambda, or from the template for the CLI and `make demo` (`BatchResources.from_template`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import boto3

from consumers.batch.settings import BatchSettings
from consumers.batch.views import BatchViews
from consumers.common.clients import CLIENT_CONFIG


# What the local tooling hands over (salesstream's Endpoint and Template fit these shapes): the
# layer names only what it uses, so it never imports the tooling that runs it.
class Endpoint(Protocol):
    def client(self, service: str) -> Any: ...


class _Function(Protocol):
    @property
    def environment(self) -> Mapping[str, str]: ...


class Template(Protocol):
    def function(self, logical_id: str) -> _Function: ...


_FUNCTION = "SnapshotFunction"
_SERVICES = ("dynamodb", "s3", "kinesis", "sqs", "dynamodbstreams")


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class BatchResources:
    settings: BatchSettings
    dynamodb: Any
    s3: Any
    kinesis: Any
    sqs: Any
    dynamodbstreams: Any  # the orders table's stream, probed for the horizon when that source is on

    @classmethod
    def from_environment(cls) -> BatchResources:
        session = boto3.session.Session()
        dynamodb, s3, kinesis, sqs, streams = (
            session.client(name, config=CLIENT_CONFIG) for name in _SERVICES
        )
        return cls(BatchSettings(), dynamodb, s3, kinesis, sqs, streams)  # every setting from the environment

    @classmethod
    def from_template(cls, endpoint: Endpoint, template: Template, **overrides: Any) -> BatchResources:
        """The snapshot function's environment, read from the template (no name written twice);
        `overrides` replace settings (tests: smaller chunks and partitions)."""
        environment = {
            name.lower(): value for name, value in template.function(_FUNCTION).environment.items()
        }
        dynamodb, s3, kinesis, sqs, streams = (endpoint.client(name) for name in _SERVICES)
        settings = BatchSettings.model_validate({**environment, **overrides})
        return cls(settings, dynamodb, s3, kinesis, sqs, streams)

    @cached_property
    def views(self) -> BatchViews:
        return BatchViews(
            self.dynamodb,
            self.s3,
            batch_table=self.settings.batch_table,
            aggregates_table=self.settings.aggregates_table,
            bucket=self.settings.archive_bucket,
        )
