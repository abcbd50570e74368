"""Reading one shard with GetRecords, resuming after a sequence number: one reader for both
sources. What differs between Kinesis and DynamoDB Streams (how an iterator is asked for, the
records' shape, the read limit, which error means throttled) is a small adapter, a `ShardApi`:
`KinesisShardApi` (kinesis.py) and `TableShardApi` (table_streams.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from salesstream.runtime.model import Fetch, RawRecord, TableChange, WireRecord


@dataclass(frozen=True, slots=True)
class Page:
    """One GetRecords answer in the runtime's terms."""

    records: list[RawRecord] | list[WireRecord] | list[TableChange]
    next_iterator: str | None  # None: a closed shard read to its end
    millis_behind: int | None  # Kinesis's lag; DynamoDB Streams reports none


def iterator_request(
    stream: dict[str, str], shard_id: str, starting_position: str, after: str | None, after_key: str
) -> dict[str, str]:
    """GetShardIterator's request: from the starting position, or after a sequence number (named
    `after_key` by the API: Kinesis's StartingSequenceNumber, DynamoDB Streams' SequenceNumber)."""
    if after is None:
        return {**stream, "ShardId": shard_id, "ShardIteratorType": starting_position}
    return {**stream, "ShardId": shard_id, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", after_key: after}


class ShardApi(Protocol):
    """One stream's GetShardIterator and GetRecords on its boto3 client (`client`), whose
    exceptions say "try again": ExpiredIteratorException, and the API's own throttling error."""

    @property
    def client(self) -> Any: ...

    @property
    def throttled_error(self) -> str: ...  # Kinesis: ProvisionedThroughputExceededException

    @property
    def max_limit(self) -> int | None: ...  # the largest GetRecords Limit (None: any BatchSize)

    def new_iterator(self, shard_id: str, starting_position: str, after: str | None) -> str: ...

    def get_records(self, iterator: str, limit: int) -> Page: ...


class ShardReader:
    """Sequential GetRecords on one shard, resuming after a sequence number."""

    def __init__(self, api: ShardApi, shard_id: str, starting_position: str) -> None:
        self._api = api
        self.shard_id = shard_id
        self._starting_position = starting_position
        self._after: str | None = None
        self._iterator: str | None = None

    def reset(self, after: str | None) -> None:
        """Read next after this sequence number (None: from the starting position)."""
        self._after, self._iterator = after, None

    def read(self, limit: int) -> Fetch:
        api = self._api
        errors = api.client.exceptions
        if api.max_limit is not None:
            limit = min(limit, api.max_limit)
        try:
            # kept across a throttled read: a retry needs no new iterator
            self._iterator = self._iterator or api.new_iterator(
                self.shard_id, self._starting_position, self._after
            )
            page = api.get_records(self._iterator, limit)
        except errors.ExpiredIteratorException:
            self._iterator = None  # the next read asks for a new one
            return Fetch([], None, caught_up=False)
        except getattr(errors, api.throttled_error):
            return Fetch([], None, caught_up=False, throttled=True)
        if page.records:
            self._after = page.records[-1].sequence_number
        self._iterator = page.next_iterator
        end_of_shard = page.next_iterator is None
        return Fetch(
            page.records,
            page.millis_behind,
            # without a lag figure (DynamoDB Streams), a short read is caught up
            caught_up=end_of_shard or (len(page.records) < limit and not page.millis_behind),
            end_of_shard=end_of_shard,
        )
