"""The DynamoDB Streams side of the runtime's contract tests: a stack with the orders table on
and only its stream mapping, items put through the real API, and a reference handler that parses
every event with the DynamoDB models (the twin of tests.runtime_support.WindowSum)."""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from salesstream.core.lambda_events import DynamodbEventRecord, DynamodbTimeWindowEvent
from salesstream.deploy.template import Template, load_template_document
from tests.runtime_support import BATCH_FUNCTIONS, Env

TABLE_MAPPING = "AggregatorFunction.AggregatorOrdersTableMapping"


def amount_of(record: DynamodbEventRecord) -> int:
    image = record.dynamodb.NewImage or record.dynamodb.OldImage or {}
    return int(image["amount"]["N"])


@dataclass
class TableWindowSum:
    """Windowed reference handler on a table's stream: sums the images' `amount`; `fail` as in
    WindowSum ("raise", "no-state", or sequence numbers to report as batchItemFailures)."""

    fail: Callable[[DynamodbTimeWindowEvent], Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    segments: dict[tuple[str, str, str], tuple[int, list[str], bool]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.events.append(copy.deepcopy(event))
        parsed = DynamodbTimeWindowEvent.model_validate(event)
        verdict = self.fail(parsed) if self.fail else None
        if verdict == "raise":
            raise RuntimeError("reference handler told to fail")
        state = dict(parsed.state) or {"total": 0, "sequences": []}
        failed = set(verdict) if isinstance(verdict, list) else set()
        failures = []
        for record in parsed.Records:
            if record.dynamodb.SequenceNumber in failed:
                failures = [{"itemIdentifier": s} for s in sorted(failed, key=int)]
                break
            state["total"] += amount_of(record)
            state["sequences"] = [*state["sequences"], record.dynamodb.SequenceNumber]
        if verdict == "no-state":
            return {"batchItemFailures": []}
        closing = parsed.isFinalInvokeForWindow or parsed.isWindowTerminatedEarly
        if closing and state["sequences"] and not failures:
            key = (parsed.shardId, parsed.window.start, state["sequences"][0])
            with self.lock:
                self.segments[key] = (
                    state["total"],
                    list(state["sequences"]),
                    parsed.isWindowTerminatedEarly,
                )
        return {"state": state, "batchItemFailures": failures}

    def totals_by_window(self) -> dict[tuple[str, str], int]:
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for (shard, start, _), (total, _, _) in self.segments.items():
            totals[(shard, start)] += total
        return dict(totals)

    def sequences(self) -> list[str]:
        return sorted((s for _, sequences, _ in self.segments.values() for s in sequences), key=int)

    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["isFinalInvokeForWindow"]]


def table_template(
    endpoint: Any,
    stage: str,
    *,
    parameters: dict[str, Any] | None = None,
    mapping: dict[str, Any] | None = None,
) -> Template:
    """The project template with the orders table on and the aggregator on its stream only."""
    document = load_template_document()
    for batch_function in BATCH_FUNCTIONS:
        document["Resources"].pop(batch_function)
    document["Resources"]["AggregatorFunction"]["Properties"]["Events"].pop("Orders")
    document["Resources"]["AggregatorOrdersTableMapping"]["Properties"].update(mapping or {})
    return Template(
        document,
        {"Stage": stage, "Target": "local", "OrdersTableSource": "on", **(parameters or {})},
        region=endpoint.region,
        account_id=endpoint.account_id(),
        endpoint_url=endpoint.url,
    )


def item(amount: int, index: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": {"S": f"e-{index:05d}"}, "amount": {"N": str(amount)}, **extra}


@dataclass
class TableEnv(Env):
    """Env on the orders table: `put` writes items, positions are read back from the stream."""

    @property
    def table(self) -> str:
        return self.template.physical_name("OrdersTable")

    @property
    def stream_arn(self) -> str:
        dynamodb = self.endpoint.client("dynamodb")
        return str(dynamodb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"])

    def put(self, amounts: list[int], *, key: str = "e", start: int | None = None) -> list[tuple[str, str]]:
        """put_item per amount (event ids e-00000, ...); returns the (shard, sequence) of each."""
        dynamodb = self.endpoint.client("dynamodb")
        before = len(self.stream_records())
        first = before if start is None else start
        for offset, amount in enumerate(amounts):
            dynamodb.put_item(TableName=self.table, Item=item(amount, first + offset))
        return [
            (shard, record["dynamodb"]["SequenceNumber"]) for shard, record in self.stream_records()[before:]
        ]

    def stream_records(self) -> list[tuple[str, dict[str, Any]]]:
        """Every record of every shard of the table's stream, read directly."""
        streams = self.endpoint.client("dynamodbstreams")
        arn = self.stream_arn
        records = []
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            records += [(shard["ShardId"], r) for r in streams.get_records(ShardIterator=iterator)["Records"]]
        return records


CHILD_SHARD = "shardId-00000001764720000000-child001"


class RollingStreams:
    """The real DynamoDB Streams client of the emulator, with a shard roll it never makes:
    once `roll()` is called, the table's one shard is listed closed (EndingSequenceNumber), is
    read to its end, and a child shard (ParentShardId: it) appears, whose records are those of
    a second table's stream. Every other call goes to the emulator as it is."""

    def __init__(self, real: Any, parent_arn: str, child_arn: str) -> None:
        self._real, self._parent_arn, self._child_arn = real, parent_arn, child_arn
        self.exceptions = real.exceptions
        self.rolled = False
        self._children: set[str] = set()  # iterators that read the child shard
        (parent,) = real.describe_stream(StreamArn=parent_arn)["StreamDescription"]["Shards"]
        self.parent_id: str = parent["ShardId"]

    def roll(self) -> None:
        self.rolled = True

    def describe_stream(self, **request: Any) -> dict[str, Any]:
        description = self._real.describe_stream(**request)["StreamDescription"]
        if not self.rolled:
            return {"StreamDescription": description}
        (parent,) = description["Shards"]
        parent_range = parent["SequenceNumberRange"]
        parent = {**parent, "SequenceNumberRange": {**parent_range, "EndingSequenceNumber": "9" * 30}}
        (child,) = self._real.describe_stream(StreamArn=self._child_arn)["StreamDescription"]["Shards"]
        child = {**child, "ShardId": CHILD_SHARD, "ParentShardId": parent["ShardId"]}
        return {"StreamDescription": {**description, "Shards": [parent, child]}}

    def get_shard_iterator(self, **request: Any) -> dict[str, Any]:
        if request["ShardId"] != CHILD_SHARD:
            return dict(self._real.get_shard_iterator(**request))
        (real_child,) = self._real.describe_stream(StreamArn=self._child_arn)["StreamDescription"]["Shards"]
        answer = self._real.get_shard_iterator(
            **{**request, "StreamArn": self._child_arn, "ShardId": real_child["ShardId"]}
        )
        self._children.add(answer["ShardIterator"])
        return dict(answer)

    def get_records(self, **request: Any) -> dict[str, Any]:
        answer = dict(self._real.get_records(**request))
        if request["ShardIterator"] in self._children:
            self._children.add(answer["NextShardIterator"])
        elif self.rolled and not answer["Records"]:
            answer.pop("NextShardIterator")  # a closed shard read to its end
        return answer
