"""Capped exponential backoff with full jitter, for the writes the consumers retry themselves
(on top of botocore's own few retries): DynamoDB transactions and batch writes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

# Whole-call errors that say "later", not "never" (codes are botocore's typed error codes).
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "SlowDown",
    }
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_transient(error: Exception) -> bool:
    """A connection problem or a throttling/5xx answer: worth another try."""
    if isinstance(error, ClientError):
        return error_code(error) in RETRYABLE_CODES
    return isinstance(error, BotoCoreError)


@dataclass
class Backoff:
    """attempt 0, 1, 2, ... -> sleep min(cap, base * 2**attempt) * random(0, 1]."""

    attempts: int = 8
    base_seconds: float = 0.05
    cap_seconds: float = 2.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def pause(self, attempt: int) -> None:
        ceiling = min(self.cap_seconds, self.base_seconds * 2**attempt)
        self.sleep(ceiling * (1 - random.random()))  # noqa: S311 - jitter, not security
