"""The runtime's vocabulary: records read from a shard, batches, checkpoints, outcomes, errors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from salesstream.core.lambda_events import DynamodbEventRecord
from salesstream.core.windows import Window


class RuntimeConfigError(ValueError):
    """The template asks for something the local runtime cannot run faithfully."""


class HandlerImportError(RuntimeConfigError):
    """A function's Handler path cannot be imported."""


class CheckpointConflict(RuntimeError):
    """Another runtime wrote this shard's checkpoint: two consumers must never share a shard."""


class CheckpointCorrupt(RuntimeError):
    """A checkpoint's state chunks do not match its head item."""


class SimulatedCrash(RuntimeError):
    """Raised by a fault-injection hook: the shard's worker dies and restarts from its checkpoint."""


class RuntimeStuck(RuntimeError):
    """run_until_idle() kept making progress for longer than allowed."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as GetRecords returns it."""

    sequence_number: str
    arrival_ms: int
    data: bytes
    partition_key: str


@dataclass(frozen=True, slots=True)
class WireRecord:
    """A Kinesis record as GetRecords carries it on the wire: its data still in base64, the form
    the event passes on (only a FilterCriteria pattern that names `data` needs the bytes)."""

    sequence_number: str
    arrival_ms: int
    data_base64: str
    partition_key: str


@dataclass(frozen=True, slots=True)
class TableChange:
    """A DynamoDB Streams record as GetRecords returns it (boto3's shape: a datetime for
    ApproximateCreationDateTime, typed attribute values)."""

    sequence_number: str
    arrival_ms: int  # ApproximateCreationDateTime: whole seconds on AWS
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Fetch:
    """One GetRecords call. `caught_up`: nothing more was in the shard when it was read."""

    records: list[RawRecord] | list[WireRecord] | list[TableChange]
    millis_behind: int | None
    caught_up: bool
    end_of_shard: bool = False  # NextShardIterator was null: a closed shard read to its end
    throttled: bool = False


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """A record of the shard that passed the mapping's filters, in its event form (built once):
    a Kinesis record as the JSON the event carries (events.kinesis_event_record, kept equal to
    the KinesisEventRecord model by a test), a table's record as its model."""

    sequence_number: str
    sequence: int
    arrival_ms: int
    fetched_at_ms: int
    event_record: dict[str, Any] | DynamodbEventRecord
    size: int  # bytes of its JSON in an event


@dataclass(frozen=True, slots=True)
class Batch:
    """What one invocation carries. A batch never spans two windows or two shards; a final
    invocation (`final`) carries no records unless the runtime is told to deliver them in it."""

    records: tuple[StreamRecord, ...]
    window: Window | None = None
    final: bool = False
    terminated_early: bool = False
    attempts: int = 0  # failed invocations so far: what MaximumRetryAttempts counts

    @property
    def first_sequence(self) -> str | None:
        return self.records[0].sequence_number if self.records else None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What survives a restart, written atomically per (mapping, shard): AWS keeps a window's
    state with the checkpoint, so resuming mid-window never loses or double counts it."""

    position: str | None = None  # last sequence number fully handled; reading resumes after it
    window: Window | None = None  # the open window of the shard, if any
    state: str | None = None  # the open window segment's state, as JSON ("{}" when fresh)
    segment: int = 0  # segments of the open window started so far (an early end starts one)
    closed_through_ms: int = 0  # end of the latest window closed on this shard
    finished: bool = False  # a closed shard read and invoked to its end: children may start
    version: int = 0  # optimistic concurrency: each save expects the version it loaded


class FailureKind(StrEnum):
    UNHANDLED = "Unhandled"  # the handler raised
    TIMEOUT = "Timeout"  # ran past the function's Timeout
    MISSING_STATE = "MissingState"  # a windowed function returned no `state` object
    BAD_RESPONSE = "BadResponse"  # not JSON, or batchItemFailures malformed / naming no record
    STATE_TOO_LARGE = "StateTooLarge"  # a fresh segment's first batch alone exceeds the limit


@dataclass(frozen=True, slots=True)
class Succeeded:
    state: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class PartlyFailed:
    state: dict[str, Any] | None
    failed_at: int  # index in the batch of the record with the lowest failed sequence number


@dataclass(frozen=True, slots=True)
class Failed:
    kind: FailureKind
    message: str


Outcome = Succeeded | PartlyFailed | Failed


@dataclass
class ShardStats:
    """Counters and lag of one (mapping, shard); read by the CLI, load tests and tests."""

    mapping: str
    shard_id: str
    records_read: int = 0
    records_filtered: int = 0
    records_delivered: int = 0  # in invocations that succeeded (a replay counts again)
    records_discarded: int = 0  # sent to the on-failure destination
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    bisections: int = 0
    final_invocation_failures: int = 0
    windows_closed: int = 0
    segments_terminated_early: int = 0
    late_segments: int = 0
    throttled_reads: int = 0
    crashes: int = 0
    errors: int = 0
    millis_behind_latest: int | None = None
    pending_records: int = 0  # read but not yet checkpointed
    iterator_age_ms: int = 0  # now minus the arrival of the oldest pending record
    position: str | None = None
    open_window: str | None = None
    finished: bool = False
    last_error: str | None = None
