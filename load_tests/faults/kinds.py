"""The names of the faults a run injects (counted per name in its summary)."""

from __future__ import annotations

from enum import StrEnum


class Injected(StrEnum):
    # on the producer's Kinesis client
    PUT_ENTRY_FAILED = "put_entry_failed"
    PUT_RESPONSE_LOST = "put_response_lost"
    # on the consumers' DynamoDB clients
    DYNAMODB_THROTTLED = "dynamodb_throttled"
    TRANSACTION_CANCELLED = "transaction_cancelled"
    DYNAMODB_RESPONSE_LOST = "dynamodb_response_lost"
    # in the event-source-mapping runtime
    BATCH_REPLAYED = "batch_replayed"
    CRASHED_AFTER_WRITE = "crashed_after_write"
    FINAL_DELAYED = "final_delayed"
    SHARD_SPLIT = "shard_split"
    SHARD_ROLLED = "shard_rolled"  # a table stream's shard closed, a child opened (DynamoDB Streams)
    # into the stream, past the producer
    MALFORMED = "malformed"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    # good events written past the producer by a foreign one (load_tests/faults/foreign.py)
    FOREIGN_MIXED_KEY = "foreign_mixed_key"
