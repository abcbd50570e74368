"""Creates the template's streams, tables, buckets and queues on an emulator endpoint.

Idempotent: a resource that already exists is left as it is, so `salesstream up` can be run
against a LocalStack that is already provisioned. Real AWS is provisioned by `sam deploy`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from salesstream.deploy.template import TableSpec, Template
    from salesstream.emulator.targets import Endpoint


class ProvisioningError(RuntimeError):
    """A resource could not be created or did not become ready."""


@dataclass(frozen=True)
class Provisioned:
    endpoint_url: str | None
    region: str
    streams: dict[str, str]  # logical id -> name
    tables: dict[str, str]
    buckets: dict[str, str]
    queues: dict[str, str]  # logical id -> queue URL

    def summary(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "stream": next(iter(self.streams.values()), None),
            "streams": self.streams,
            "tables": self.tables,
            "buckets": self.buckets,
            "queues": self.queues,
        }


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _wait(what: str, ready: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise ProvisioningError(f"{what} was not ready after {timeout:.0f} s")
        time.sleep(0.1)


def ensure_table(dynamodb: Any, table: TableSpec) -> None:
    """Create one table of the template unless it exists, and wait until it is active."""
    request: dict[str, Any] = {
        "TableName": table.name,
        "KeySchema": table.key_schema,
        "AttributeDefinitions": table.attribute_definitions,
        "BillingMode": "PAY_PER_REQUEST",
    }
    if table.global_secondary_indexes:
        request["GlobalSecondaryIndexes"] = table.global_secondary_indexes
    if table.stream_view_type:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream_view_type}
    try:
        dynamodb.create_table(**request)
    except ClientError as error:
        if _error_code(error) != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(
        TableName=table.name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300}
    )
    if table.ttl_attribute:
        dynamodb.update_time_to_live(
            TableName=table.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )


def provision(template: Template, endpoint: Endpoint) -> Provisioned:
    kinesis = endpoint.client("kinesis")
    dynamodb = endpoint.client("dynamodb")
    s3 = endpoint.client("s3")
    sqs = endpoint.client("sqs")

    streams = {}
    for stream in template.streams():
        try:
            kinesis.create_stream(
                StreamName=stream.name,
                ShardCount=stream.shard_count,
                StreamModeDetails={"StreamMode": "PROVISIONED"},
            )
        except ClientError as error:
            if _error_code(error) != "ResourceInUseException":
                raise
        _wait(
            f"stream {stream.name}",
            lambda name=stream.name: (
                kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
                == "ACTIVE"
            ),
        )
        if stream.retention_hours != 24:
            kinesis.increase_stream_retention_period(
                StreamName=stream.name, RetentionPeriodHours=stream.retention_hours
            )
        streams[stream.logical_id] = stream.name

    tables = {}
    for table in template.tables():
        ensure_table(dynamodb, table)
        tables[table.logical_id] = table.name

    buckets = {}
    for bucket in template.buckets():
        try:
            if endpoint.region == "us-east-1":
                s3.create_bucket(Bucket=bucket.name)
            else:
                s3.create_bucket(
                    Bucket=bucket.name, CreateBucketConfiguration={"LocationConstraint": endpoint.region}
                )
        except ClientError as error:
            if _error_code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        buckets[bucket.logical_id] = bucket.name

    queues = {}
    for queue in template.queues():
        queues[queue.logical_id] = sqs.create_queue(QueueName=queue.name)["QueueUrl"]

    return Provisioned(endpoint.url, endpoint.region, streams, tables, buckets, queues)
