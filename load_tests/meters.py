"""What the pipeline did, counted where it happens, for the load test's figures and the cost model.

- `RequestMeter`: every AWS request of every boto3 client created in this process while it is
  installed (the producer's, the runtime's, and the clients the in-process Lambda handlers build
  for themselves), through botocore's event hooks: `before-parameter-build` keeps the request's
  parameters, `after-call` counts the call with its answer. DynamoDB write and read units are
  estimated from the items' sizes (AWS's sizing rules); PutRecords entries are counted per shard
  and per second (the 1 MiB/s and 1,000 records/s limits are per second).
- `InvocationMeter`: wraps a function's handler the way Lambda bills it: invocations and their
  duration, plus when each window's final invocation returned.

Clients of the load test itself (the visibility probe, the end-of-run readers) are excluded, so
their requests never reach the cost model.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from botocore import handlers

from salesstream.core.windows import parse_rfc3339
from salesstream.runtime.invoker import Handler, resolve_handler

PAYLOAD_UNIT_BYTES: Final = 25_000  # as the producer counts it: one unit whichever "KB" AWS means
WRITE_UNIT_BYTES: Final = 1024
READ_UNIT_BYTES: Final = 4096
S3_PUT_CLASS: Final = frozenset(
    {"PutObject", "CopyObject", "PostObject", "ListObjects", "ListObjectsV2", "CreateMultipartUpload"}
)
S3_GET_CLASS: Final = frozenset({"GetObject", "HeadObject", "SelectObjectContent"})
_PARAMS: Final = "salesstream.meter.params"
_STARTED: Final = "salesstream.meter.started"
# The AWS calls of the invocation running on this thread ((service, operation) pairs), when an
# InvocationMeter is timing one: the cost model prices each as an in-region round trip.
_THIS_THREAD = threading.local()
_BEFORE: Final = "before-parameter-build"
_AFTER: Final = "after-call"


# --- DynamoDB item sizes (the rules DynamoDB bills by) -----------------------------------------


def value_size(value: dict[str, Any]) -> int:
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        digits = len(content.lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(text.encode()) for text in content)
    if kind == "NS":
        return sum(value_size({"N": number}) for number in content)
    if kind == "BS":
        return sum(len(blob) for blob in content)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in content)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(element) for name, element in content.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(item: dict[str, dict[str, Any]]) -> int:
    return max(1, math.ceil(item_size(item) / WRITE_UNIT_BYTES))


def _update_units(update: dict[str, Any]) -> int:
    """An update is billed on the item's size after it; without reading the item, the key and the
    values written are what we know. The running-total items are far below 1 KB."""
    return write_units({**update["Key"], **update.get("ExpressionAttributeValues", {})})


# --- the request meter -------------------------------------------------------------------------


@dataclass
class ShardSecond:
    records: int = 0
    bytes: int = 0


@dataclass
class RequestCounts:
    """A snapshot of what the meter counted since it was reset."""

    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (service, operation, resource)
    write_units: Counter[str] = field(default_factory=Counter)  # per table
    read_units: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # per table
    s3_put_class: Counter[str] = field(default_factory=Counter)  # per bucket
    # PUTs per "bucket/first key segment": the archiver's `archive/`, the aggregator's dedup log
    s3_puts_by_prefix: Counter[str] = field(default_factory=Counter)
    s3_get_class: Counter[str] = field(default_factory=Counter)
    sqs_requests: Counter[str] = field(default_factory=Counter)  # per queue URL
    kinesis_records: Counter[str] = field(default_factory=Counter)  # per shard, acknowledged
    kinesis_bytes: Counter[str] = field(default_factory=Counter)  # data + partition key
    kinesis_payload_units: Counter[str] = field(default_factory=Counter)
    # per shard: second of the run -> records and bytes acknowledged in it
    kinesis_seconds: dict[str, dict[int, ShardSecond]] = field(default_factory=dict)
    # per (service, operation): seconds from the call to its parsed answer (the endpoint's latency)
    latencies: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, other: RequestCounts) -> None:
        """Fold in what another process's meter counted (the load generator's)."""
        for name in (
            "calls",
            "write_units",
            "s3_put_class",
            "s3_puts_by_prefix",
            "s3_get_class",
            "sqs_requests",
            "kinesis_records",
            "kinesis_bytes",
            "kinesis_payload_units",
        ):
            getattr(self, name).update(getattr(other, name))
        for table, units in other.read_units.items():
            self.read_units[table] += units
        for operation, latencies in other.latencies.items():
            self.latencies.setdefault(operation, []).extend(latencies)
        for shard, by_second in other.kinesis_seconds.items():
            mine = self.kinesis_seconds.setdefault(shard, {})
            for second, load in by_second.items():
                bucket = mine.setdefault(second, ShardSecond())
                bucket.records += load.records
                bucket.bytes += load.bytes

    def operations(self, service: str, resource: str | None = None) -> Counter[str]:
        return Counter(
            {
                operation: count
                for (svc, operation, res), count in self.calls.items()
                if svc == service and (resource is None or res == resource)
            }
        )


class RequestMeter:
    """Counts AWS requests through botocore's event hooks. `installed()` adds the hooks to every
    botocore session created from then on (boto3 makes one per `boto3.session.Session()`, and
    the handlers build their clients that way), `attach(client)` to a client that already
    exists, `exclude(client)` removes them from one (the load test's own readers)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = RequestCounts()
        self._started = clock()

    @contextmanager
    def installed(self) -> Iterator[RequestMeter]:
        specs = [(_BEFORE, self._before), (_AFTER, self._after)]
        handlers.BUILTIN_HANDLERS.extend(specs)
        try:
            yield self
        finally:
            for spec in specs:
                handlers.BUILTIN_HANDLERS.remove(spec)

    def attach(self, client: Any) -> Any:
        client.meta.events.register(_BEFORE, self._before)
        client.meta.events.register(_AFTER, self._after)
        return client

    def exclude(self, client: Any) -> Any:
        client.meta.events.unregister(_BEFORE, self._before)
        client.meta.events.unregister(_AFTER, self._after)
        return client

    def reset(self) -> None:
        """Forget what was counted (provisioning, warm-up): the run starts now."""
        with self._lock:
            self._counts = RequestCounts()
            self._started = self._clock()

    def snapshot(self) -> RequestCounts:
        with self._lock:
            counts = self._counts
            return RequestCounts(
                calls=Counter(counts.calls),
                write_units=Counter(counts.write_units),
                read_units=defaultdict(float, counts.read_units),
                s3_put_class=Counter(counts.s3_put_class),
                s3_puts_by_prefix=Counter(counts.s3_puts_by_prefix),
                s3_get_class=Counter(counts.s3_get_class),
                sqs_requests=Counter(counts.sqs_requests),
                kinesis_records=Counter(counts.kinesis_records),
                kinesis_bytes=Counter(counts.kinesis_bytes),
                kinesis_payload_units=Counter(counts.kinesis_payload_units),
                kinesis_seconds={
                    shard: {second: ShardSecond(s.records, s.bytes) for second, s in seconds.items()}
                    for shard, seconds in counts.kinesis_seconds.items()
                },
                latencies={operation: list(seconds) for operation, seconds in counts.latencies.items()},
            )

    # --- the hooks ------------------------------------------------------------------------

    def _before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[_PARAMS] = params
        context[_STARTED] = time.perf_counter()

    def _after(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        params = context.get(_PARAMS, {})
        service, operation = model.service_model.service_name, model.name
        ok = getattr(http_response, "status_code", 500) < 300
        elapsed = time.perf_counter() - context.get(_STARTED, time.perf_counter())
        invocation_calls = getattr(_THIS_THREAD, "calls", None)
        if invocation_calls is not None:
            invocation_calls.append((service, operation))
        with self._lock:
            counts = self._counts
            counts.calls[(service, operation, _resource(service, params))] += 1
            counts.latencies.setdefault((service, operation), []).append(elapsed)
            if service == "dynamodb":
                self._dynamodb(counts, operation, params, parsed)
            elif service == "s3":
                bucket = str(params.get("Bucket", ""))
                if operation in S3_PUT_CLASS:
                    counts.s3_put_class[bucket] += 1
                    if operation == "PutObject":
                        counts.s3_puts_by_prefix[
                            f"{bucket}/{str(params.get('Key', '')).split('/', 1)[0]}"
                        ] += 1
                elif operation in S3_GET_CLASS:
                    counts.s3_get_class[bucket] += 1
            elif service == "sqs":
                counts.sqs_requests[str(params.get("QueueUrl", ""))] += 1
            elif service == "kinesis" and operation == "PutRecords" and ok:
                self._put_records(counts, params, parsed)

    def _dynamodb(
        self, counts: RequestCounts, operation: str, params: dict[str, Any], parsed: dict[str, Any]
    ) -> None:
        table = str(params.get("TableName", ""))
        if operation == "PutItem":
            counts.write_units[table] += write_units(params["Item"])
        elif operation == "UpdateItem":
            counts.write_units[table] += _update_units(params)
        elif operation == "DeleteItem":
            counts.write_units[table] += 1
        elif operation == "TransactWriteItems":
            for action in params.get("TransactItems", []):
                ((kind, body),) = action.items()
                units = (
                    write_units(body["Item"])
                    if kind == "Put"
                    else (_update_units(body) if kind == "Update" else 1)
                )
                counts.write_units[body["TableName"]] += 2 * units  # a transaction bills 2 units per KB
        elif operation == "BatchWriteItem":
            for name, requests in params.get("RequestItems", {}).items():
                for request in requests:
                    put = request.get("PutRequest")
                    counts.write_units[name] += write_units(put["Item"]) if put else 1
        elif operation in ("GetItem", "Query", "Scan"):
            items = [parsed["Item"]] if "Item" in parsed else parsed.get("Items", [])
            counts.read_units[table] += _read_units(items, bool(params.get("ConsistentRead")))
        elif operation == "BatchGetItem":
            for name, items in parsed.get("Responses", {}).items():
                for item in items:
                    counts.read_units[name] += _read_units([item], False)

    def _put_records(self, counts: RequestCounts, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        second = int(self._clock() - self._started)
        for entry, answer in zip(params.get("Records", []), parsed.get("Records", []), strict=False):
            shard = answer.get("ShardId")
            if shard is None or answer.get("ErrorCode"):
                continue
            size = len(entry["Data"]) + len(str(entry["PartitionKey"]).encode())
            counts.kinesis_records[shard] += 1
            counts.kinesis_bytes[shard] += size
            counts.kinesis_payload_units[shard] += math.ceil(size / PAYLOAD_UNIT_BYTES)
            bucket = counts.kinesis_seconds.setdefault(shard, {}).setdefault(second, ShardSecond())
            bucket.records += 1
            bucket.bytes += size


def _resource(service: str, params: dict[str, Any]) -> str:
    for name in ("TableName", "Bucket", "StreamName", "QueueUrl", "StreamARN"):
        if name in params:
            return str(params[name])
    return ""


def _read_units(items: list[dict[str, Any]], consistent: bool) -> float:
    """Read request units: 4 KB per unit for a consistent read, half as much for an eventual one."""
    if not items:
        return 0.5 if not consistent else 1.0  # a read that finds nothing is still billed
    units = max(1, math.ceil(sum(item_size(item) for item in items) / READ_UNIT_BYTES))
    return units if consistent else units / 2


# --- the invocation meter ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Invocation:
    seconds: float
    final: bool
    failed: bool
    # CPU of the invoking thread: what the handler itself used, without the waits for the GIL
    # that the other sandboxes of this one process cause (and without its I/O waits)
    cpu_seconds: float = 0.0
    calls: tuple[tuple[str, str], ...] = ()  # (service, operation) of its AWS calls, in order


class InvocationMeter:
    """A function's handler, wrapped: the runtime calls this instead of the template's Handler.
    The handler is imported on the first call, after the runtime has set the function's
    environment (as Lambda imports it in a fresh sandbox)."""

    def __init__(self, handler: str | Handler, memory_mb: int, function: str = "") -> None:
        self.function = function
        self.memory_mb = memory_mb
        self._handler_path = handler if isinstance(handler, str) else None
        self._handler: Handler | None = None if isinstance(handler, str) else handler
        self._lock = threading.Lock()
        self.invocations: list[Invocation] = []
        # (shard, window end ms) -> when the window's final invocation returned (epoch seconds)
        self.windows_closed: dict[tuple[str, int], float] = {}

    def _resolve(self) -> Handler:
        if self._handler is None:
            assert self._handler_path is not None
            self._handler = resolve_handler(self._handler_path, self.function)
        return self._handler

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        handler = self._resolve()
        started, cpu_started = time.perf_counter(), time.thread_time()
        calls: list[tuple[str, str]] = []
        _THIS_THREAD.calls = calls
        failed = True
        try:
            result = handler(event, context)
            failed = not isinstance(result, dict) or ("window" in event and "state" not in result)
            return result
        finally:
            elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
            _THIS_THREAD.calls = None
            final = bool(event.get("isFinalInvokeForWindow"))
            with self._lock:
                self.invocations.append(Invocation(elapsed, final, failed, cpu, tuple(calls)))
                if final and not failed and not event.get("isWindowTerminatedEarly"):
                    key = (str(event.get("shardId")), parse_rfc3339(event["window"]["end"]))
                    self.windows_closed.setdefault(key, time.time())

    def billed_gb_seconds(self) -> float:
        """Lambda bills the duration rounded up to the millisecond, times the memory in GB."""
        with self._lock:
            billed_ms = sum(math.ceil(invocation.seconds * 1000) for invocation in self.invocations)
        return billed_ms / 1000 * self.memory_mb / 1024


def metered_handlers(functions: dict[str, tuple[str, int]]) -> dict[str, InvocationMeter]:
    """{function logical id: (Handler path, MemorySize)} -> a meter per function."""
    return {
        logical_id: InvocationMeter(path, memory_mb, logical_id)
        for logical_id, (path, memory_mb) in functions.items()
    }
