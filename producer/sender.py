"""PutRecords within the API limits, resending only what failed.

- A call carries at most 500 entries and 5 MiB (data + partition keys).
- PutRecords answers 200 with a per-entry ErrorCode on partial failure: only those entries go
  again, after a capped exponential backoff with full jitter.
- Throttling (per entry or for the whole call) is expected: counted, retried, never an error.
- A call whose response was lost (read timeout, connection dropped) may have been stored: it is
  sent again whole. The stream then holds duplicates with the same event_id, which the consumers
  count once (docs/reliability.md P2).
- botocore must not retry behind our back (it would hide throttling and double the backoff):
  the client comes from `producer_client()`, whose config allows exactly one attempt.
- What cannot be sent after the retries is handed back with the reason, for the spool.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

if TYPE_CHECKING:
    from producer.aggregation import Entry

T = TypeVar("T")

MAX_ENTRIES_PER_CALL: Final = 500
MAX_BYTES_PER_CALL: Final = 5 * 1024 * 1024
THROTTLING_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "LimitExceededException",
        "KMSThrottlingException",
    }
)
RETRYABLE_CODES: Final = THROTTLING_CODES | {
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
}
# One attempt per call: the retries are ours, so they can be counted and resend only failed entries.
PRODUCER_CLIENT_CONFIG: Final = Config(
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=3,
    read_timeout=15,
)


def producer_client(**client_kwargs: Any) -> Any:
    """A Kinesis client for the producer (boto3's usual credential chain and region; pass
    endpoint_url etc. as for `boto3.client`)."""
    return boto3.session.Session().client("kinesis", config=PRODUCER_CLIENT_CONFIG, **client_kwargs)


class FailureKind(StrEnum):
    ENDPOINT_UNREACHABLE = "endpoint_unreachable"
    RETRIES_EXHAUSTED = "retries_exhausted"
    REFUSED_BY_SERVICE = "refused_by_service"


class SendFailure(Exception):
    """Why entries could not be sent; `str()` is one line for the user."""

    kind: FailureKind = FailureKind.RETRIES_EXHAUSTED

    def __init__(self, message: str, *, throttling: bool = False) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever botocore's message holds
        self.throttling = throttling


class EndpointUnreachable(SendFailure):
    kind = FailureKind.ENDPOINT_UNREACHABLE


class RetriesExhausted(SendFailure):
    kind = FailureKind.RETRIES_EXHAUSTED


class ResponseLost(RetriesExhausted):
    """The call may or may not have been stored."""


class RefusedByService(SendFailure):
    """A non-retryable answer (stream missing, access denied, no credentials): stop trying."""

    kind = FailureKind.REFUSED_BY_SERVICE


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 0.05
    cap_seconds: float = 2.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(failures-1))]."""
        return rng.uniform(0.0, min(self.cap_seconds, self.base_seconds * 2 ** (failures - 1)))


@dataclass
class SendReport:
    acked: list[tuple[Entry, str]] = field(default_factory=list)  # entry, shard it landed on
    unsent: list[Entry] = field(default_factory=list)
    failure: SendFailure | None = None
    throttled: int = 0  # entries refused for throttling (a throttled call counts all its entries)
    resent_events: int = 0  # user events sent again after a failure or a lost response
    lost_responses: int = 0
    backoff_seconds: float = 0.0


def calls(entries: list[Entry]) -> Iterator[list[Entry]]:
    """Entries cut into PutRecords calls within the count and size limits, in order."""
    call: list[Entry] = []
    size = 0
    for entry in entries:
        if call and (len(call) == MAX_ENTRIES_PER_CALL or size + entry.size > MAX_BYTES_PER_CALL):
            yield call
            call, size = [], 0
        call.append(entry)
        size += entry.size
    if call:
        yield call


def _failure_of(error: ClientError | BotoCoreError) -> SendFailure:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        if code in RETRYABLE_CODES:
            return RetriesExhausted(f"kept failing ({code})", throttling=code in THROTTLING_CODES)
        return RefusedByService(f"{code}: {details.get('Message', '')}")
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        return EndpointUnreachable(f"cannot reach the endpoint: {error}")
    if isinstance(error, ReadTimeoutError | ConnectionClosedError):
        # The request may have been stored: it is sent again whole; event_ids dedup downstream.
        return ResponseLost(f"response lost: {error}")
    return RefusedByService(f"{type(error).__name__}: {error}")  # no credentials, bad parameters, ...


class Sender:
    """Not thread-safe (it keeps the endpoint's state): one per Producer."""

    def __init__(
        self,
        client: Any,
        stream_name: str,
        retry: RetryPolicy,
        *,
        sleep: Callable[[float], None],
        rng: random.Random,
    ) -> None:
        self.client = client
        self.stream_name = stream_name
        self.retry = retry
        self._sleep = sleep
        self._rng = rng
        # After the endpoint failed us, each later call gets one attempt (a probe) until one succeeds;
        # after a non-retryable refusal nothing more is tried.
        self._unreachable = False
        self._refused: RefusedByService | None = None

    def put(self, entries: list[Entry]) -> SendReport:
        report = SendReport()
        for call in calls(entries):
            if self._refused is not None:
                report.unsent.extend(call)
                report.failure = self._refused
            else:
                self._put_call(call, report)
        return report

    def _put_call(self, pending: list[Entry], report: SendReport) -> None:
        failures = 0
        while pending:
            if failures:
                report.resent_events += sum(len(entry.events) for entry in pending)
            try:
                response = self.client.put_records(
                    StreamName=self.stream_name, Records=[entry.request() for entry in pending]
                )
            except (ClientError, BotoCoreError) as error:
                problem = _failure_of(error)
                report.throttled += len(pending) if problem.throttling else 0
                report.lost_responses += isinstance(problem, ResponseLost)
            else:
                self._unreachable = False
                failed, codes = [], []
                for entry, result in zip(pending, response["Records"], strict=True):
                    if "ErrorCode" in result:
                        failed.append(entry)
                        codes.append(result["ErrorCode"])
                    else:
                        report.acked.append((entry, result["ShardId"]))
                report.throttled += sum(code in THROTTLING_CODES for code in codes)
                pending = failed
                if not pending:
                    return
                problem = RetriesExhausted(
                    f"{len(pending)} entries kept failing ({', '.join(sorted(set(codes)))})"
                )
            failures += 1
            if self._gives_up(problem, failures):
                report.unsent.extend(pending)
                report.failure = problem
                return
            report.backoff_seconds += self._backoff(failures)

    def _gives_up(self, problem: SendFailure, failures: int) -> bool:
        if isinstance(problem, RefusedByService):
            self._refused = problem
            return True
        unreachable = isinstance(problem, EndpointUnreachable)
        # a probe: once the endpoint failed us, a later call gets one attempt until one succeeds
        if (unreachable and self._unreachable) or failures >= self.retry.max_attempts:
            self._unreachable = unreachable
            return True
        return False

    def _backoff(self, failures: int) -> float:
        delay = self.retry.delay(failures, self._rng)
        self._sleep(delay)
        return delay

    def call(self, operation: Callable[[], T]) -> T:
        """Any other Kinesis call (ListShards) with the same retry policy; raises `SendFailure`."""
        failures = 0
        while True:
            if self._refused is not None:
                raise self._refused
            try:
                result = operation()
            except (ClientError, BotoCoreError) as error:
                problem = _failure_of(error)
            else:
                self._unreachable = False
                return result
            failures += 1
            if self._gives_up(problem, failures):
                raise problem
            self._backoff(failures)
