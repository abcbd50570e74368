"""What a million events cost on AWS, modelled from what a load test measured, at the list
prices in load_tests/prices.yaml (their sources and the date they were checked are in that file).

The pipeline: Kinesis shard-hours (the run's shards for as long as it took to send its events)
and PUT payload units; Lambda requests and arm64 GB-seconds of every consumer; DynamoDB write and
read units of the tables AWS would bill (not the local runtime's checkpoint table: Lambda keeps
its checkpoints itself); S3 and SQS requests.

Lambda duration is modelled, not taken from the run's wall clock (load_tests/prices.yaml,
`lambda_duration`): each invocation bills the CPU its thread used, stretched to the function's
share of a vCPU, plus an in-region round trip per AWS call it made. The in-process wall time,
which also holds the waits for the shared interpreter lock and the emulator, is reported beside
it (`lambda_duration_at_wall_time`) and not added to the total.

The orders table as the source (`source="table"`): the table's write units (one per item of up
to 1 KB, what the integration's batch writes cost) and the stream's reads take the place of the
Kinesis lines. DynamoDB Streams reads by a Lambda trigger are free (DynamoDB pricing, "Change
data capture"); the count of GetRecords is kept to show it. The template still creates the
Kinesis stream, idle on this source; a table-only deployment leaves it out, so its shard-hours
are not in this model.

The naive design, for comparison: one PutRecord per event (a payload unit and a Kinesis record
each, so the shards must carry 1,000 records/s each) and one UpdateItem per event from a function
reading batches of BatchSize records, one update after another.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict

PRICES_FILE: Final = Path(__file__).with_name("prices.yaml")
LAMBDA_DURATION: Final = "Lambda duration (arm64, modelled)"
MILLION: Final = 1_000_000
# GetRecords on a table's stream by a Lambda event source mapping: free (DynamoDB pricing)
STREAM_READS_BY_LAMBDA_PER_MILLION: Final = 0.0


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    confirmed_by: list[str] = []


class KinesisPrices(_Section):
    shard_hour: float
    put_payload_units_per_million: float
    shard_write_bytes_per_second: int
    shard_write_records_per_second: int


class LambdaPrices(_Section):
    requests_per_million: float
    arm64_gb_second: float


class DynamoDBPrices(_Section):
    write_request_units_per_million: float
    read_request_units_per_million: float
    transactional_write_factor: int


class S3Prices(_Section):
    put_copy_post_list_per_thousand: float
    get_select_per_thousand: float


class SqsPrices(_Section):
    standard_requests_per_million: float


class LambdaDurationModel(_Section):
    one_vcpu_memory_mb: int
    call_milliseconds: dict[str, float]  # "service.Operation" -> ms; "default" for the rest

    def call_ms(self, service: str, operation: str) -> float:
        calls = self.call_milliseconds
        return calls.get(f"{service}.{operation}", calls["default"])

    def billed_ms(self, cpu_seconds: float, calls: Iterable[tuple[str, str]], memory_mb: int) -> int:
        """One invocation: its CPU at the function's vCPU share, plus its AWS round trips, rounded
        up to the millisecond as Lambda bills."""
        stretch = max(1.0, self.one_vcpu_memory_mb / memory_mb)
        waits = sum(self.call_ms(service, operation) for service, operation in calls)
        return math.ceil(cpu_seconds * 1000 * stretch + waits)


class Prices(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    region: str
    checked: str
    kinesis: KinesisPrices
    lambda_: LambdaPrices
    dynamodb: DynamoDBPrices
    s3: S3Prices
    sqs: SqsPrices
    lambda_duration: LambdaDurationModel

    @classmethod
    def load(cls, path: Path = PRICES_FILE) -> Prices:
        document = yaml.safe_load(path.read_text())
        document["lambda_"] = document.pop("lambda")
        return cls.model_validate(document)


class Usage(BaseModel):
    """What a run consumed, as AWS would bill it."""

    events: int  # events counted: the denominator
    seconds: float  # how long the shards were needed: the send phase
    shards: int
    kinesis_records: int
    payload_units: int
    event_bytes: float  # average size of one event on the wire (for the naive design)
    invocations: int
    gb_seconds: float  # modelled (LambdaDurationModel)
    wall_gb_seconds: float  # the in-process wall time, for comparison
    memory_mb: int
    batch_size: int  # records per invocation (the naive design reads one event per record)
    dynamodb_write_units: float
    dynamodb_read_units: float
    s3_put_class: int
    s3_get_class: int
    sqs_requests: int
    source: Literal["stream", "table"] = "stream"
    orders_table_write_units: float = 0.0  # of dynamodb_write_units: the table source's writes
    stream_read_requests: int = 0  # GetRecords on the orders table's stream


class CostLine(BaseModel):
    item: str
    quantity_per_million: float  # of the unit, per million events
    unit: str
    usd_per_million: float


class CostModel(BaseModel):
    region: str
    prices_checked: str
    pipeline: list[CostLine]
    # Lambda duration at the in-process wall time instead of the model: not in the total
    lambda_duration_at_wall_time: CostLine
    naive: list[CostLine]

    @property
    def pipeline_total(self) -> float:
        return sum(line.usd_per_million for line in self.pipeline)

    @property
    def lambda_duration(self) -> float:
        """The modelled Lambda duration's share of the pipeline total."""
        return sum(line.usd_per_million for line in self.pipeline if line.item == LAMBDA_DURATION)

    @property
    def naive_total(self) -> float:
        return sum(line.usd_per_million for line in self.naive)


def _line(item: str, per_million: float, unit: str, unit_price: float) -> CostLine:
    return CostLine(
        item=item, quantity_per_million=per_million, unit=unit, usd_per_million=per_million * unit_price
    )


def model_cost(usage: Usage, prices: Prices) -> CostModel:
    if usage.events <= 0:
        raise ValueError("no events counted: nothing to divide the cost by")
    scale = MILLION / usage.events
    lambda_, dynamodb = prices.lambda_, prices.dynamodb
    pipeline = [
        *_source_lines(usage, prices, scale),
        _line(
            "Lambda requests", usage.invocations * scale, "request", lambda_.requests_per_million / MILLION
        ),
        _line(
            LAMBDA_DURATION,
            usage.gb_seconds * scale,
            "GB-second",
            lambda_.arm64_gb_second,
        ),
        _line(
            "DynamoDB writes" if usage.source == "stream" else "DynamoDB writes (the pipeline's tables)",
            (usage.dynamodb_write_units - usage.orders_table_write_units) * scale,
            "write unit",
            dynamodb.write_request_units_per_million / MILLION,
        ),
        _line(
            "DynamoDB reads",
            usage.dynamodb_read_units * scale,
            "read unit",
            dynamodb.read_request_units_per_million / MILLION,
        ),
        _line(
            "S3 PUT/LIST",
            usage.s3_put_class * scale,
            "request",
            prices.s3.put_copy_post_list_per_thousand / 1000,
        ),
        _line("S3 GET", usage.s3_get_class * scale, "request", prices.s3.get_select_per_thousand / 1000),
        _line(
            "SQS", usage.sqs_requests * scale, "request", prices.sqs.standard_requests_per_million / MILLION
        ),
    ]
    return CostModel(
        region=prices.region,
        prices_checked=prices.checked,
        pipeline=pipeline,
        lambda_duration_at_wall_time=_line(
            "Lambda duration (arm64, in-process wall time)",
            usage.wall_gb_seconds * scale,
            "GB-second",
            lambda_.arm64_gb_second,
        ),
        naive=naive_cost(usage, prices),
    )


def _source_lines(usage: Usage, prices: Prices, scale: float) -> list[CostLine]:
    """What bringing the events in costs: the Kinesis stream, or the orders table and its stream."""
    if usage.source == "table":
        return [
            _line(
                "DynamoDB orders-table writes",
                usage.orders_table_write_units * scale,
                "write unit",
                prices.dynamodb.write_request_units_per_million / MILLION,
            ),
            _line(
                "DynamoDB Streams reads (GetRecords by Lambda: free)",
                usage.stream_read_requests * scale,
                "request",
                STREAM_READS_BY_LAMBDA_PER_MILLION / MILLION,
            ),
        ]
    kinesis = prices.kinesis
    return [
        _line(
            "Kinesis shard-hours",
            usage.shards * usage.seconds / 3600 * scale,
            "shard-hour",
            kinesis.shard_hour,
        ),
        _line(
            "Kinesis PUT payload units",
            usage.payload_units * scale,
            "payload unit",
            kinesis.put_payload_units_per_million / MILLION,
        ),
    ]


def naive_cost(usage: Usage, prices: Prices) -> list[CostLine]:
    """One PutRecord and one UpdateItem per event, at the same event rate as the run."""
    kinesis, lambda_ = prices.kinesis, prices.lambda_
    rate = usage.events / usage.seconds if usage.seconds > 0 else 0.0
    shards = max(
        1,
        math.ceil(rate / kinesis.shard_write_records_per_second),
        math.ceil(rate * usage.event_bytes / kinesis.shard_write_bytes_per_second),
    )
    invocations = MILLION / usage.batch_size
    update_ms = prices.lambda_duration.call_ms("dynamodb", "UpdateItem")
    seconds_each = usage.batch_size * update_ms / 1000
    return [
        _line(
            "Kinesis shard-hours (1,000 records/s each)",
            shards * (MILLION / rate if rate else 0) / 3600,
            "shard-hour",
            kinesis.shard_hour,
        ),
        _line(
            "Kinesis PUT payload units",
            MILLION,
            "payload unit",
            kinesis.put_payload_units_per_million / MILLION,
        ),
        _line("Lambda requests", invocations, "request", lambda_.requests_per_million / MILLION),
        _line(
            f"Lambda duration (one {update_ms:g} ms UpdateItem per event)",
            invocations * seconds_each * usage.memory_mb / 1024,
            "GB-second",
            lambda_.arm64_gb_second,
        ),
        _line(
            "DynamoDB writes (one UpdateItem per event)",
            MILLION,
            "write unit",
            prices.dynamodb.write_request_units_per_million / MILLION,
        ),
    ]
