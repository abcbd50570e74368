"""Backoff bounds, PutRecords call limits and how failures are classified (no network)."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from producer.aggregation import Entry
from producer.sender import (
    MAX_BYTES_PER_CALL,
    MAX_ENTRIES_PER_CALL,
    PRODUCER_CLIENT_CONFIG,
    EndpointUnreachable,
    RefusedByService,
    ResponseLost,
    RetriesExhausted,
    RetryPolicy,
    _failure_of,
    calls,
)


def test_full_jitter_stays_within_the_capped_exponential_bound() -> None:
    policy = RetryPolicy(max_attempts=20, base_seconds=0.05, cap_seconds=2.0)
    rng = random.Random(1)
    for failures in range(1, 20):
        bound = min(2.0, 0.05 * 2 ** (failures - 1))
        delays = [policy.delay(failures, rng) for _ in range(300)]
        assert all(0.0 <= delay <= bound for delay in delays)
        # full jitter: spread over the whole interval, not clustered at the bound
        assert min(delays) < bound * 0.1
        assert max(delays) > bound * 0.9
    assert policy.delay(60, rng) <= 2.0  # the cap holds however long it goes on


def entry(size: int) -> Entry:
    return Entry("p", b"x" * (size - 1), None, None, [])


def test_calls_respect_the_entry_count_limit() -> None:
    sizes = [len(call) for call in calls([entry(10) for _ in range(1_201)])]
    assert sizes == [MAX_ENTRIES_PER_CALL, MAX_ENTRIES_PER_CALL, 201]


def test_calls_respect_the_byte_limit_and_keep_order() -> None:
    entries = [entry(1024 * 1024) for _ in range(12)]  # 1 MiB each, partition key included
    batches = list(calls(entries))
    assert [len(batch) for batch in batches] == [5, 5, 2]
    assert all(sum(e.size for e in batch) <= MAX_BYTES_PER_CALL for batch in batches)
    assert [e for batch in batches for e in batch] == entries


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "PutRecords")


@pytest.mark.parametrize(
    ("error", "kind", "throttling"),
    [
        (client_error("ProvisionedThroughputExceededException"), RetriesExhausted, True),
        (client_error("KMSThrottlingException"), RetriesExhausted, True),
        (client_error("InternalFailure"), RetriesExhausted, False),
        (client_error("ResourceNotFoundException"), RefusedByService, False),
        (client_error("AccessDeniedException"), RefusedByService, False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), EndpointUnreachable, False),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), EndpointUnreachable, False),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), ResponseLost, False),
        (NoCredentialsError(), RefusedByService, False),
    ],
)
def test_failures_are_classified_by_type_and_code(error: Exception, kind: type, throttling: bool) -> None:
    failure = _failure_of(error)
    assert type(failure) is kind
    assert failure.throttling is throttling
    assert "\n" not in str(failure)


def test_the_producer_client_never_retries_behind_our_back() -> None:
    assert PRODUCER_CLIENT_CONFIG.retries == {"total_max_attempts": 1, "mode": "standard"}
