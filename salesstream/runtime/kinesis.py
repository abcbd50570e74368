"""The Kinesis side: the shard list with its lineage, and reading one shard with GetRecords.

Shard end is judged from the shard list (a closed shard has an EndingSequenceNumber) and not
only from a null NextShardIterator: moto keeps handing out iterators for a closed shard.

GetRecords' records are taken from the response's JSON as they are (`reading_client`): botocore
would decode each record's base64 data (which the event carries in base64 again) and turn its
arrival time into a datetime with the local time zone, which cost more per record than all the
rest of the runtime's work on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from botocore.config import Config

from salesstream.runtime.model import RuntimeConfigError, WireRecord
from salesstream.runtime.shard_reader import Page, iterator_request

# A client's identity for Endpoint.client's cache: the reading client is the runtime's own, so
# no other code sees GetRecords' changed answer.
_READING: Final = Config()
# Where the hook puts GetRecords' records, as the wire has them (botocore's "Records" is left out)
WIRE_RECORDS: Final = "WireRecords"


def records_as_on_the_wire(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """botocore's before-parse hook: a successful GetRecords' records skip botocore's parser
    (what is left of the body, the iterator and the lag, is parsed as usual; errors are
    untouched, so ExpiredIteratorException and throttling are raised as before)."""
    if response_dict["status_code"] >= 300:
        return
    body = json.loads(response_dict["body"])
    customized_response_dict[WIRE_RECORDS] = body.pop("Records")
    response_dict["body"] = json.dumps(body).encode()


def reading_client(endpoint: Any) -> Any:
    """The runtime's Kinesis client for GetRecords, whose answers carry `WireRecords`."""
    client = endpoint.client("kinesis", config=_READING)
    client.meta.events.register(
        "before-parse.kinesis.GetRecords", records_as_on_the_wire, unique_id="salesstream-wire-records"
    )
    return client


@dataclass(frozen=True, slots=True)
class ShardInfo:
    shard_id: str
    parents: tuple[str, ...]  # ParentShardId and AdjacentParentShardId, when present
    closed: bool


def list_shards(kinesis: Any, stream_name: str) -> list[ShardInfo]:
    shards: list[ShardInfo] = []
    request: dict[str, Any] = {"StreamName": stream_name}
    while True:
        page = kinesis.list_shards(**request)
        for shard in page["Shards"]:
            parents = tuple(
                parent
                for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
                if parent
            )
            closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
            shards.append(ShardInfo(shard["ShardId"], parents, closed))
        token = page.get("NextToken")
        if not token:
            return shards
        request = {"NextToken": token}  # the API refuses StreamName together with NextToken


@dataclass(frozen=True, slots=True)
class KinesisShardApi:
    """The Kinesis side of the shared shard reader (shard_reader.py)."""

    client: Any
    stream_name: str
    max_limit: int | None = None  # BatchSize never asks for more than Kinesis's 10,000
    throttled_error: ClassVar[str] = "ProvisionedThroughputExceededException"

    def new_iterator(self, shard_id: str, starting_position: str, after: str | None) -> str:
        stream = {"StreamName": self.stream_name}
        request = iterator_request(stream, shard_id, starting_position, after, "StartingSequenceNumber")
        return str(self.client.get_shard_iterator(**request)["ShardIterator"])

    def get_records(self, iterator: str, limit: int) -> Page:
        """On the reading client: the wire's JSON, arrival in epoch seconds, data in base64."""
        response = self.client.get_records(ShardIterator=iterator, Limit=limit)
        if WIRE_RECORDS not in response:
            raise RuntimeConfigError("KinesisShardApi reads with kinesis.reading_client(endpoint)")
        records = [
            WireRecord(
                sequence_number=record["SequenceNumber"],
                arrival_ms=round(record["ApproximateArrivalTimestamp"] * 1000),
                data_base64=record["Data"],
                partition_key=record["PartitionKey"],
            )
            for record in response[WIRE_RECORDS]
        ]
        return Page(records, response.get("NextShardIterator"), response.get("MillisBehindLatest"))
