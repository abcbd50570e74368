"""The local event-source-mapping runtime: every enabled Kinesis mapping of the template, run
against one endpoint the way AWS Lambda runs it.

Two ways to drive it:
- deterministic, for tests and demos: `step()` does what is due on every shard once;
  `run_until_idle()` steps (polling at once, not waiting for batching windows) until nothing
  moves. With a `VirtualClock`, windows close when the test moves the clock.
- threaded, for the CLI: `start()` runs one worker thread per (mapping, shard) plus a
  coordinator that reads the shard list and starts children once their parents are finished;
  `stop()` lets each worker finish its current invocation and checkpoint, then joins them.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from salesstream.deploy.template import Template
from salesstream.emulator.provision import ensure_table
from salesstream.emulator.targets import Endpoint
from salesstream.runtime.checkpoints import DynamoCheckpointStore
from salesstream.runtime.clock import Clock, WallClock
from salesstream.runtime.consumer import ShardConsumer
from salesstream.runtime.destinations import Destination, NoDestination, SqsDestination
from salesstream.runtime.environment import function_environment_set
from salesstream.runtime.hooks import Hooks
from salesstream.runtime.invoker import FunctionInvoker, Handler, Returned, resolve_handler
from salesstream.runtime.kinesis import KinesisShardApi, ShardInfo, list_shards, reading_client
from salesstream.runtime.log import logger
from salesstream.runtime.mappings import Mapping as EventSourceMapping
from salesstream.runtime.mappings import (
    checkpoint_table,
    function_environment,
    mappings_of,
)
from salesstream.runtime.model import (
    CheckpointConflict,
    RuntimeStuck,
    ShardStats,
    SimulatedCrash,
)
from salesstream.runtime.options import RuntimeOptions
from salesstream.runtime.schedules import schedules_of
from salesstream.runtime.shard_reader import ShardReader
from salesstream.runtime.table_streams import TableShardApi, list_table_shards, table_stream_arn

Key = tuple[str, str]  # (mapping id, shard id)
_ERROR_BACKOFF_SECONDS = (0.5, 1, 2, 5, 10, 30)


@dataclass(frozen=True)
class RuntimeStats:
    """A snapshot: per (mapping, shard) counters and lag, totals, errors, idleness."""

    shards: list[ShardStats]
    errors: list[str]
    idle: bool
    schedules: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        counters = (
            "records_read",
            "records_filtered",
            "records_delivered",
            "records_discarded",
            "invocations",
            "function_errors",
            "windows_closed",
            "segments_terminated_early",
        )
        return {name: sum(getattr(shard, name) for shard in self.shards) for name in counters}

    def as_dict(self) -> dict[str, Any]:
        return {
            "idle": self.idle,
            "totals": self.totals(),
            "shards": [asdict(shard) for shard in self.shards],
            "errors": self.errors,
            "schedules": self.schedules,
        }


class Runtime:
    def __init__(
        self,
        template: Template,
        endpoint: Endpoint,
        *,
        handlers: Mapping[str, Handler] | None = None,
        clock: Clock | None = None,
        options: RuntimeOptions | None = None,
        hooks: Hooks | None = None,
        functions: Iterable[str] | None = None,
    ) -> None:
        """`handlers` replaces the template Handler of the functions it names (by logical id);
        `functions` limits the runtime to those functions' mappings and schedules."""
        self.options = options or RuntimeOptions()
        self.clock = clock or WallClock()
        self.hooks = hooks or Hooks()
        mappings = mappings_of(template, functions)
        self.schedules = schedules_of(template, functions) if self.options.run_schedules else []
        self._template = template
        table = checkpoint_table(template)
        # Handlers read their settings from the environment (when imported, when first invoked):
        # it is set while they are imported and while they run, never left in the process.
        environment = function_environment([*mappings, *self.schedules])
        self._invokers = self._make_invokers(template, dict(handlers or {}), mappings, environment)
        self._kinesis = endpoint.client("kinesis")
        self._kinesis_reads = reading_client(endpoint)  # GetRecords' records as on the wire
        dynamodb = endpoint.client("dynamodb")
        self._table_streams = endpoint.client("dynamodbstreams")
        # a table's stream is named by DynamoDB when it is created: ask for it once
        self.mappings = [
            replace(m, stream_arn=table_stream_arn(dynamodb, m.stream_name)) if m.from_table else m
            for m in mappings
        ]
        ensure_table(dynamodb, table)  # provisioned already on emulators; reading AWS creates it
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store = DynamoCheckpointStore(dynamodb, table.name, owner)
        self._destinations = self._make_destinations(endpoint)
        self._shards: dict[str, list[ShardInfo]] = {}
        self._consumers: dict[Key, ShardConsumer] = {}
        self._finished: set[Key] = set()
        self._blocked: set[Key] = set()
        self._stats: dict[Key, ShardStats] = {}
        self._errors: list[str] = []
        self._failures: dict[Key, int] = {}  # consecutive worker failures, for the backoff
        self._next_refresh = 0
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._threads: dict[Key, threading.Thread] = {}
        self._coordinator: threading.Thread | None = None
        self._scheduler: threading.Thread | None = None

    def _make_invokers(
        self,
        template: Template,
        handlers: dict[str, Handler],
        mappings: list[EventSourceMapping],
        environment: dict[str, str],
    ) -> dict[str, FunctionInvoker]:
        invokers: dict[str, FunctionInvoker] = {}
        for function in [*(m.function for m in mappings), *(s.function for s in self.schedules)]:
            if function.logical_id in invokers:
                continue
            handler = handlers.get(function.logical_id)
            if handler is None:
                with function_environment_set(environment):
                    handler = resolve_handler(function.handler, function.logical_id)
            invokers[function.logical_id] = FunctionInvoker(
                handler,
                function_name=function.name,
                function_arn=template.arn(function.logical_id),
                memory_mb=function.memory_mb,
                timeout_seconds=self.options.timeout_seconds or function.timeout_seconds,
                sandboxes=self.options.concurrent_invocations,
                environment=environment,
            )
        return invokers

    def _make_destinations(self, endpoint: Endpoint) -> dict[str, Destination]:
        sqs = endpoint.client("sqs")
        destinations: dict[str, Destination] = {}
        for mapping in self.mappings:
            queue = mapping.on_failure_queue
            destinations[mapping.id] = (
                SqsDestination(sqs, sqs.get_queue_url(QueueName=queue)["QueueUrl"])
                if queue
                else NoDestination()
            )
        return destinations

    # --- shards and their workers ----------------------------------------------------------

    def _refresh_shards(self, now: int, *, force: bool) -> None:
        if not force and now < self._next_refresh:
            return
        for stream in {mapping.stream_name for mapping in self.mappings}:
            self._shards[stream] = sorted(self._list_shards(stream), key=lambda s: s.shard_id)
        self._next_refresh = now + round(self.options.shard_refresh_seconds * 1000)
        closed = {(stream, s.shard_id) for stream, shards in self._shards.items() for s in shards if s.closed}
        for (_, shard_id), consumer in self._consumers.items():
            if (consumer.mapping.stream_name, shard_id) in closed:
                consumer.mark_closed()

    def _list_shards(self, stream: str) -> list[ShardInfo]:
        table_streams = {m.stream_name: m.stream_arn for m in self.mappings if m.from_table}
        if stream in table_streams:
            return list_table_shards(self._table_streams, table_streams[stream])
        return list_shards(self._kinesis, stream)

    def _reader(self, mapping: EventSourceMapping, shard_id: str, starting: str) -> Any:
        if mapping.from_table:
            return ShardReader(TableShardApi(self._table_streams, mapping.stream_arn), shard_id, starting)
        return ShardReader(KinesisShardApi(self._kinesis_reads, mapping.stream_name), shard_id, starting)

    def _parents_finished(self, mapping: EventSourceMapping, shard: ShardInfo) -> bool:
        listed = {s.shard_id for s in self._shards.get(mapping.stream_name, [])}
        return all((mapping.id, parent) in self._finished for parent in shard.parents if parent in listed)

    def _ensure_consumers(self) -> None:
        """Start a worker for every shard whose parents are finished (children start fresh)."""
        for mapping in self.mappings:
            for shard in self._shards.get(mapping.stream_name, []):  # parents sort before children
                key = (mapping.id, shard.shard_id)
                if key in self._consumers or key in self._finished or key in self._blocked:
                    continue
                if not self._parents_finished(mapping, shard):
                    continue
                self._start_consumer(mapping, shard)

    def _start_consumer(self, mapping: EventSourceMapping, shard: ShardInfo) -> None:
        key = (mapping.id, shard.shard_id)
        stats = self._stats.setdefault(key, ShardStats(mapping.id, shard.shard_id))
        checkpoint = self.store.load(mapping.id, shard.shard_id)
        if checkpoint.finished:
            self._finished.add(key)
            stats.finished = True
            return
        starting = mapping.event.starting_position
        if checkpoint.position is None and any(
            self.store.load(mapping.id, parent).position is not None for parent in shard.parents
        ):
            starting = "TRIM_HORIZON"  # a child of a shard we consumed is read from its start
        if checkpoint.position is None and starting == "LATEST" and shard.closed:
            self.store.save(mapping.id, shard.shard_id, replace(checkpoint, finished=True))
            self._finished.add(key)
            stats.finished = True
            return
        consumer = ShardConsumer(
            mapping,
            shard.shard_id,
            reader=self._reader(mapping, shard.shard_id, starting),
            store=self.store,
            destination=self._destinations[mapping.id],
            invoker=self._invokers[mapping.function.logical_id],
            clock=self.clock,
            options=self.options,
            hooks=self.hooks,
            stats=stats,
            checkpoint=checkpoint,
        )
        if shard.closed:
            consumer.mark_closed()
        self._consumers[key] = consumer
        logger.info(
            "shard started",
            extra={"mapping": mapping.id, "shard_id": shard.shard_id, "position": checkpoint.position},
        )

    def _retire(self, key: Key) -> None:
        with self._lock:
            self._consumers.pop(key, None)
            self._finished.add(key)

    def _drop(self, key: Key, reason: str) -> None:
        """Forget the worker's memory; the next one starts from the persisted checkpoint."""
        with self._lock:
            self._consumers.pop(key, None)
        logger.warning(
            "shard worker restarts from its checkpoint", extra={"key": list(key), "reason": reason}
        )

    # --- deterministic driving -------------------------------------------------------------

    def step(self, *, flush: bool = False) -> bool:
        """One pass over every shard; whether anything moved."""
        with self._lock:
            self._refresh_shards(self.clock.now_ms(), force=flush)
            self._ensure_consumers()
            consumers = list(self._consumers.items())
        progress = self.run_schedules()
        for key, consumer in consumers:
            try:
                progress = consumer.step(flush=flush) or progress
            except SimulatedCrash as crash:
                self._stats[key].crashes += 1
                self._drop(key, str(crash))
                progress = True
                continue
            if consumer.finished:
                self._retire(key)
                progress = True
        return progress

    def run_until_idle(self, max_steps: int = 100_000) -> int:
        """Step until a pass moves nothing; returns the number of passes that moved."""
        for passes in range(max_steps):
            if not self.step(flush=True):
                return passes
        raise RuntimeStuck(f"still moving after {max_steps} passes")

    def is_idle(self) -> bool:
        """Every shard read up to now, nothing waiting, no window open, no child waiting, and
        the shard list current."""
        with self._lock:
            if not self._everything_listed_is_read():
                return False
            listed = {
                stream: {(s.shard_id, s.closed) for s in shards} for stream, shards in self._shards.items()
            }
        # a split or merge since the last refresh leaves children, holding records, that nobody
        # reads yet: compare with the stream's list now, and refresh on the next pass if it moved
        for stream, shards in listed.items():
            if {(s.shard_id, s.closed) for s in self._list_shards(stream)} != shards:
                with self._lock:
                    self._next_refresh = 0
                return False
        return True

    def _everything_listed_is_read(self) -> bool:
        if not self._shards:
            return False
        for mapping in self.mappings:
            for shard in self._shards.get(mapping.stream_name, []):
                key = (mapping.id, shard.shard_id)
                if key in self._finished or key in self._blocked:
                    continue
                consumer = self._consumers.get(key)
                if consumer is None:
                    if self._parents_finished(mapping, shard):
                        return False
                elif not consumer.is_idle():
                    return False
        return True

    # --- schedules -------------------------------------------------------------------------

    def run_schedules(self) -> bool:
        """Invoke every function whose Schedule event is due by the clock; whether any was."""
        fired = False
        for run in self.schedules:
            now = self.clock.now_ms()
            if not run.due(now):
                continue
            event = run.event(now, self._template.account_id, self._template.region)
            result = self._invokers[run.function.logical_id].invoke(event)
            error = None if isinstance(result, Returned) else repr(result)
            run.ran(now, error=error)
            if error is None:
                logger.info(
                    "schedule ran", extra={"function": run.function.logical_id, "event": run.event_name}
                )
            else:
                logger.error("scheduled invocation failed", extra={**run.as_dict(), "error": error})
                self._errors.append(f"{run.function.logical_id}.{run.event_name}: {error}")
            fired = True
        return fired

    def _schedule_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_schedules()
            except Exception as error:  # noqa: BLE001 - logged and counted; the next tick retries
                logger.exception("running the schedules failed; retrying")
                self._errors.append(f"schedules: {error!r}")
            self._stopping.wait(self.options.idle_tick_seconds * 5)

    # --- threads ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._coordinator = threading.Thread(target=self._coordinate, name="esm-coordinator", daemon=True)
        self._coordinator.start()
        if self.schedules:
            self._scheduler = threading.Thread(target=self._schedule_loop, name="esm-schedules", daemon=True)
            self._scheduler.start()

    def request_stop(self) -> None:
        """Ask run() to stop (from a signal handler); stop() does the waiting."""
        self._stopping.set()

    def stop(self, timeout: float = 60.0) -> None:
        """Each worker finishes its current step (invocation and checkpoint) and exits."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        if self._coordinator is not None:
            self._coordinator.join(max(0.0, deadline - time.monotonic()))  # it starts no worker after this
        if self._scheduler is not None:
            self._scheduler.join(max(0.0, deadline - time.monotonic()))
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def run(
        self,
        *,
        seconds: float | None = None,
        until_idle: bool = False,
        on_tick: Callable[[Runtime], None] | None = None,
    ) -> None:
        """start(), then wait for `seconds`, for idleness, or for Ctrl-C; then stop()."""
        self.start()
        started = time.monotonic()
        try:
            while not self._stopping.wait(0.2):
                if on_tick is not None:
                    on_tick(self)
                if seconds is not None and time.monotonic() - started >= seconds:
                    break
                if until_idle and self.is_idle():
                    break
        finally:
            self.stop()

    def _coordinate(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._lock:
                    self._refresh_shards(self.clock.now_ms(), force=False)
                    self._ensure_consumers()
                    for key in self._consumers:
                        thread = self._threads.get(key)
                        if thread is None or not thread.is_alive():
                            self._threads[key] = threading.Thread(
                                target=self._work, args=(key,), name=f"esm-{key[0]}-{key[1]}", daemon=True
                            )
                            self._threads[key].start()
            except Exception as error:  # noqa: BLE001 - logged and counted; the next tick retries
                logger.exception("reading the shard list failed; retrying")
                self._errors.append(f"shard list: {error!r}")
            self._stopping.wait(min(self.options.shard_refresh_seconds, 0.25))

    def _work(self, key: Key) -> None:
        while not self._stopping.is_set():
            consumer = self._consumers.get(key)
            if consumer is None:
                return
            try:
                progress = consumer.step()
                self._failures.pop(key, None)
            except SimulatedCrash as crash:
                self._stats[key].crashes += 1
                self._drop(key, str(crash))
                return
            except CheckpointConflict as conflict:
                logger.error("another runtime consumes this shard; this one stops", extra={"key": list(key)})
                self._record_error(key, conflict)
                with self._lock:
                    self._consumers.pop(key, None)
                    self._blocked.add(key)
                return
            except Exception as error:  # noqa: BLE001 - logged, counted, retried from the checkpoint
                logger.exception("shard worker failed", extra={"key": list(key)})
                self._record_error(key, error)
                failures = self._failures.get(key, 0)
                self._failures[key] = failures + 1
                self._stopping.wait(_ERROR_BACKOFF_SECONDS[min(failures, len(_ERROR_BACKOFF_SECONDS) - 1)])
                self._drop(key, repr(error))
                return
            if consumer.finished:
                self._retire(key)
                return
            if not progress:
                pause = (
                    self.options.poll_interval_seconds
                    if consumer.last_failed
                    else self.options.idle_tick_seconds
                )
                self._stopping.wait(pause)

    def _record_error(self, key: Key, error: BaseException) -> None:
        stats = self._stats[key]
        stats.errors += 1
        stats.last_error = repr(error)
        self._errors.append(f"{key[0]} {key[1]}: {error!r}")

    # --- observing -------------------------------------------------------------------------

    def stats(self) -> RuntimeStats:
        with self._lock:
            shards = [ShardStats(**asdict(s)) for _, s in sorted(self._stats.items())]
        schedules = [run.as_dict() for run in self.schedules]
        return RuntimeStats(shards, list(self._errors), self.is_idle(), schedules)

    def write_stats(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.stats().as_dict(), indent=2))
        temporary.replace(path)  # readers never see half a file
