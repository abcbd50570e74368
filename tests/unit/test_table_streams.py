"""The DynamoDB Streams reader's own logic, where the emulator cannot show it: DescribeStream
pages (moto returns one shard), a parent shard, whole-second creation times, the 1,000-record
limit, the end of a closed shard, throttling and expired iterators. The client here answers in
the shapes of the DynamoDB Streams API reference; reading through the real API is covered by the
runtime's contract tests (tests/integration/test_runtime_contract.py, `table_`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from salesstream.runtime.kinesis import ShardInfo
from salesstream.runtime.shard_reader import ShardReader
from salesstream.runtime.table_streams import TableShardApi, creation_ms, list_table_shards


class ExpiredIteratorException(Exception):
    pass


class LimitExceededException(Exception):
    pass


class Exceptions:
    ExpiredIteratorException = ExpiredIteratorException
    LimitExceededException = LimitExceededException


def change(sequence: int, seconds: float = 1_764_720_000.25) -> dict[str, Any]:
    return {
        "eventID": f"id-{sequence}",
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime.fromtimestamp(seconds, UTC),
            "Keys": {"event_id": {"S": f"e-{sequence}"}},
            "SequenceNumber": str(sequence),
            "SizeBytes": 10,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


@dataclass
class Streams:
    """Answers GetRecords from a script of responses (or exceptions), recording the requests."""

    answers: list[Any] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    exceptions: type = Exceptions

    def describe_stream(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if "ExclusiveStartShardId" not in request:
            shards = [
                {
                    "ShardId": "s-1",
                    "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
                }
            ]
            return {"StreamDescription": {"Shards": shards, "LastEvaluatedShardId": "s-1"}}
        shards = [
            {
                "ShardId": "s-2",
                "ParentShardId": "s-1",
                "SequenceNumberRange": {"StartingSequenceNumber": "10"},
            }
        ]
        return {"StreamDescription": {"Shards": shards}}

    def get_shard_iterator(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"ShardIterator": f"it-{len(self.requests)}"}

    def get_records(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_shard_list_follows_the_pages_and_names_each_parent() -> None:
    streams = Streams()
    assert list_table_shards(streams, "arn:stream") == [
        ShardInfo("s-1", (), closed=True),
        ShardInfo("s-2", ("s-1",), closed=False),
    ]
    assert streams.requests[1] == {"StreamArn": "arn:stream", "ExclusiveStartShardId": "s-1"}


def test_creation_times_are_whole_seconds() -> None:
    assert creation_ms(change(1, 1_764_720_000.999)) == 1_764_720_000_000
    assert creation_ms({"dynamodb": {"ApproximateCreationDateTime": 1_764_720_001}}) == 1_764_720_001_000


def test_a_read_asks_for_at_most_1000_records_and_resumes_after_the_last() -> None:
    streams = Streams(answers=[{"Records": [change(5), change(6)], "NextShardIterator": "next"}])
    reader = ShardReader(TableShardApi(streams, "arn:stream"), "s-2", "TRIM_HORIZON")
    reader.reset("4")
    fetch = reader.read(10_000)
    assert streams.requests[0]["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    assert streams.requests[0]["SequenceNumber"] == "4"
    assert streams.requests[1] == {"ShardIterator": "it-1", "Limit": 1000}
    assert [r.sequence_number for r in fetch.records] == ["5", "6"]
    assert (fetch.caught_up, fetch.end_of_shard, fetch.millis_behind) == (True, False, None)


def test_a_full_read_is_not_caught_up_and_a_missing_next_iterator_ends_the_shard() -> None:
    streams = Streams(
        answers=[
            {"Records": [change(1), change(2)], "NextShardIterator": "next"},
            {"Records": []},  # a closed shard read to its end
        ]
    )
    reader = ShardReader(TableShardApi(streams, "arn:stream"), "s-1", "TRIM_HORIZON")
    assert not reader.read(2).caught_up
    end = reader.read(2)
    assert (end.caught_up, end.end_of_shard) == (True, True)
    assert streams.requests[-1]["ShardIterator"] == "next"


def test_throttling_and_an_expired_iterator_read_nothing_and_say_why() -> None:
    streams = Streams(
        answers=[
            LimitExceededException(),
            ExpiredIteratorException(),
            {"Records": [], "NextShardIterator": "n"},
        ]
    )
    reader = ShardReader(TableShardApi(streams, "arn:stream"), "s-1", "LATEST")
    throttled = reader.read(100)
    assert (throttled.throttled, throttled.records) == (True, [])
    expired = reader.read(100)
    assert (expired.throttled, expired.caught_up) == (False, False)
    reader.read(100)
    iterators = [r for r in streams.requests if "ShardIteratorType" in r]
    assert len(iterators) == 2  # a new iterator after the expired one
    assert iterators[0]["ShardIteratorType"] == "LATEST"
