"""The load generator: the POS fleet and its producer, in a process of its own.

On AWS the producers run on the tills and the consumers in Lambda; here they would share one
interpreter lock. So the fleet, the `Producer` and the corrupted events put past it run in a
child process (spawned: nothing of the parent's threads comes along) that reports each slot it
sent (first event number, count, when) and, at the end, the producer's result and what its own
request meter counted (the PutRecords per shard and second).

    with GeneratorProcess(config, endpoint, stream, spool) as generator:   # ready to send
        outcome = generator.run(on_slot)    # the schedule, sent; on_slot(first, count, at, acked)
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from load_tests.faults.security import LogCapture
from load_tests.meters import RequestCounts, RequestMeter
from producer.producer import Producer
from producer.result import ProducerResult
from producer.sender import PRODUCER_CLIENT_CONFIG
from producer.simulator import Fleet
from producer.spool import SpoolEntry
from salesstream.emulator.targets import Endpoint, Target

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from types import TracebackType

    from load_tests.config import LoadTestConfig

_RAW_BATCH: Final = 500  # PutRecords entries per call for the corrupted events
_RAW_ATTEMPTS: Final = 5
_START_TIMEOUT: Final = 60.0


class GeneratorError(RuntimeError):
    """The load generator process failed; the message carries its traceback."""


@dataclass
class GeneratorOutcome:
    result: ProducerResult
    raw_acknowledged: int  # corrupted events the stream acknowledged
    bad: set[int]  # numbers of the corrupted events
    not_acknowledged: set[int]  # numbers that never reached the stream (spooled, refused raw puts)
    counts: RequestCounts  # the generator's own AWS requests (its PutRecords per shard and second)
    send_seconds: float
    behind_seconds: float  # how late the last slot went out against the schedule
    cpu_seconds: float  # of the generator process
    event_bytes: int = field(default=0, kw_only=True)  # the events' own bytes, before aggregation
    # what the child wrote to stdout/stderr or logged (warnings and up): the fault run scans it
    # for card numbers like every other log of the run
    output: str = field(default="", kw_only=True)


@dataclass
class _Sender:
    """What runs in the child: the schedule into the producer."""

    config: LoadTestConfig
    endpoint: Endpoint
    stream: str
    spool: Path
    fleet: Fleet = field(init=False)
    producer: Producer = field(init=False)
    raw_acknowledged: int = 0
    bad: set[int] = field(default_factory=set)
    not_acknowledged: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.fleet = Fleet(self.config.fleet_config())

    def send(self, conn: Connection, meter: RequestMeter) -> GeneratorOutcome:
        profile = self.config.profile()
        slots = list(profile.slots(self.fleet.stores))
        bad_every = round(1 / self.config.bad_share) if self.config.bad_share else 0
        producer = self.producer = self._make_producer()
        raw_kinesis = self._raw_client()
        producer.open()
        conn.send(("ready",))
        conn.recv()  # go
        meter.reset()
        pending_raw: list[tuple[int, bytes]] = []
        event_bytes = 0
        start = time.monotonic()
        last_raw_flush = start
        with producer:
            for slot in slots:
                wait = start + slot.start - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if slot.activity is not None:
                    self.fleet.set_activity(slot.activity)
                if slot.count == 0:
                    continue
                first = self.fleet.events_made + 1
                events = self.fleet.events(slot.count)
                sent_at = time.time()
                event_bytes += sum(map(len, events))
                events = self._set_aside_bad(first, events, bad_every, pending_raw)
                producer.submit_many(events)
                if pending_raw and (len(pending_raw) >= _RAW_BATCH or time.monotonic() - last_raw_flush >= 1):
                    self._put_raw(raw_kinesis, pending_raw)
                    pending_raw, last_raw_flush = [], time.monotonic()
                conn.send(("slot", first, slot.count, sent_at, producer.result.sent + self.raw_acknowledged))
            self._put_raw(raw_kinesis, pending_raw)
        elapsed = time.monotonic() - start
        self._note_spooled(producer.result)
        return GeneratorOutcome(
            result=producer.result,
            raw_acknowledged=self.raw_acknowledged,
            bad=self.bad,
            not_acknowledged=self.not_acknowledged,
            counts=meter.snapshot(),
            send_seconds=elapsed,
            behind_seconds=max(0.0, elapsed - profile.duration),
            cpu_seconds=time.process_time(),
            event_bytes=event_bytes,
        )

    def _make_producer(self) -> Producer:
        return Producer(self._producer_client(), self.stream, self.spool)

    def _producer_client(self) -> Any:
        return self.endpoint.client("kinesis", PRODUCER_CLIENT_CONFIG)

    def _raw_client(self) -> Any:
        """What the corrupted events are put with, past the producer."""
        return self.endpoint.client("kinesis")

    def _set_aside_bad(
        self, first: int, events: list[bytes], every: int, pending: list[tuple[int, bytes]]
    ) -> list[bytes]:
        """Every `every`-th event gets a wrong total and goes past the producer, straight into the
        stream, as from a buggy till (the consumers must quarantine it); the rest go through it."""
        if not every:
            return events
        good = []
        for number, raw in enumerate(events, start=first):
            if number % every:
                good.append(raw)
            else:
                self.bad.add(number)
                pending.append((number, corrupted(raw)))
        return good

    def _put_raw(self, kinesis: Any, pending: list[tuple[int, bytes]]) -> None:
        for start in range(0, len(pending), _RAW_BATCH):
            batch = pending[start : start + _RAW_BATCH]
            for attempt in range(_RAW_ATTEMPTS):
                if attempt:
                    time.sleep(0.2 * attempt)
                answer = kinesis.put_records(
                    StreamName=self.stream,
                    Records=[{"Data": raw, "PartitionKey": self._partition_key(n, raw)} for n, raw in batch],
                )
                failed = []
                for entry, result in zip(batch, answer["Records"], strict=True):
                    if result.get("ErrorCode"):
                        failed.append(entry)
                    else:
                        self._stored_raw(entry[0], result["ShardId"], result["SequenceNumber"])
                self.raw_acknowledged += len(batch) - len(failed)
                batch = failed
                if not batch:
                    break
            self.not_acknowledged.update(number for number, _ in batch)

    def _partition_key(self, number: int, raw: bytes) -> str:
        return _store_of(raw)

    def _stored_raw(self, number: int, shard_id: str, sequence_number: str) -> None:
        """Where an event put past the producer landed (the fault run matches its quarantine)."""

    def _note_spooled(self, result: ProducerResult) -> None:
        """Events the producer could not send are in its spool: they never reached the stream."""
        if not result.spooled or not self.spool.exists():
            return
        for line in self.spool.read_text().splitlines():
            try:
                number = self.fleet.event_number(SpoolEntry.model_validate_json(line).event_id)
            except ValueError:
                continue  # a torn line: the producer reports it as unreadable
            if number is not None:
                self.not_acknowledged.add(number)


def corrupted(raw: bytes) -> bytes:
    """The same event with a total one unit off its lines: refused as `total_mismatch`."""
    head, marker, tail = raw.rpartition(b'"total_minor":')
    return head + marker + str(int(tail.rstrip(b"}")) + 1).encode() + b"}"


def _store_of(raw: bytes) -> str:
    return str(json.loads(raw)["store_id"])


SenderFactory = Callable[["LoadTestConfig", Endpoint, str, Path], _Sender]


def _child(
    conn: Connection,
    config: LoadTestConfig,
    where: tuple[str, str | None, str],
    stream: str,
    spool: str,
    sender: SenderFactory,
) -> None:
    try:
        target, url, region = where
        endpoint = Endpoint(Target(target), url, region).activate()
        meter = RequestMeter()
        with LogCapture(logging.getLogger()) as output, meter.installed():
            outcome = sender(config, endpoint, stream, Path(spool)).send(conn, meter)
        outcome.output = output.text()
        conn.send(("done", outcome))
    except BaseException:  # noqa: BLE001 - whatever happened goes to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class GeneratorProcess:
    def __init__(
        self,
        config: LoadTestConfig,
        endpoint: Endpoint,
        stream: str,
        spool: Path,
        sender: SenderFactory = _Sender,  # picklable: the child process builds it
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_child,
            args=(
                child_conn,
                config,
                (endpoint.target.value, endpoint.url, endpoint.region),
                stream,
                str(spool),
                sender,
            ),
            name="loadtest-generator",
            daemon=True,
        )
        self._child_conn = child_conn

    def __enter__(self) -> GeneratorProcess:
        self._process.start()
        self._child_conn.close()
        self._expect("ready", _START_TIMEOUT)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)

    def run(self, on_slot: Callable[[int, int, float, int], None]) -> GeneratorOutcome:
        """Start sending; call `on_slot(first, count, sent_at, acknowledged so far)` per slot."""
        self._conn.send(("go",))
        while True:
            message = self._receive(None)
            if message[0] == "slot":
                _, first, count, sent_at, acknowledged = message
                on_slot(first, count, sent_at, acknowledged)
            elif message[0] == "done":
                outcome: GeneratorOutcome = message[1]
                return outcome

    def _expect(self, kind: str, timeout: float) -> None:
        message = self._receive(timeout)
        if message[0] != kind:
            raise GeneratorError(f"the load generator said {message[0]!r}, expected {kind!r}")

    def _receive(self, timeout: float | None) -> tuple[Any, ...]:
        if timeout is not None and not self._conn.poll(timeout):
            raise GeneratorError(f"the load generator did not answer within {timeout:.0f} s")
        try:
            message: tuple[Any, ...] = self._conn.recv()
        except EOFError:
            raise GeneratorError(f"the load generator died (exit code {self._process.exitcode})") from None
        if message[0] == "error":
            raise GeneratorError(f"the load generator failed:\n{message[1]}")
        return message
