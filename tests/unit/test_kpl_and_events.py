"""Strict KPL de-aggregation and the typed Lambda event models."""

from __future__ import annotations

import hashlib

import pytest
from aws_kinesis_agg import MAGIC
from aws_kinesis_agg.deaggregator import deaggregate_records
from hypothesis import given
from hypothesis import strategies as st

from salesstream.core.kpl import BrokenAggregate, aggregate, deaggregate, is_aggregated
from salesstream.core.lambda_events import KinesisTimeWindowEvent, TimeWindowEventResponse
from salesstream.core.reasons import Reason
from salesstream.core.windows import parse_rfc3339
from tests.conftest import load_event

user_records = st.lists(
    st.tuples(st.from_regex(r"store-[0-9]{1,4}", fullmatch=True), st.binary(min_size=1, max_size=300)),
    min_size=1,
    max_size=50,
)


@given(user_records)
def test_aggregate_then_deaggregate_returns_the_records_in_order(records: list[tuple[str, bytes]]) -> None:
    data = aggregate(records, explicit_hash_key="12345")
    assert is_aggregated(data)
    decoded = deaggregate(data, partition_key=records[0][0])
    assert [(r.partition_key, r.data) for r in decoded] == records
    assert [r.subsequence for r in decoded] == list(range(len(records)))
    assert {r.explicit_hash_key for r in decoded} == {"12345"}


def test_the_reference_library_reads_our_aggregates() -> None:
    import base64

    records = [("store-1", b'{"a":1}'), ("store-2", b'{"b":2}')]
    event_record = {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "store-1",
            "sequenceNumber": "1",
            "approximateArrivalTimestamp": 1.0,
            "data": base64.b64encode(aggregate(records)).decode(),
        }
    }
    decoded = deaggregate_records([event_record])
    assert [base64.b64decode(r["kinesis"]["data"]) for r in decoded] == [b'{"a":1}', b'{"b":2}']


def test_a_plain_record_is_one_user_record() -> None:
    (record,) = deaggregate(b'{"x": 1}', partition_key="store-9")
    assert (record.data, record.partition_key, record.subsequence, record.aggregated) == (
        b'{"x": 1}',
        "store-9",
        0,
        False,
    )


def test_a_bad_checksum_is_refused_not_passed_through() -> None:
    data = bytearray(aggregate([("s", b"payload")]))
    data[-1] ^= 0xFF
    with pytest.raises(BrokenAggregate) as caught:
        deaggregate(bytes(data), "s")
    assert caught.value.reason is Reason.BAD_AGGREGATE_CHECKSUM


def test_broken_protobuf_with_a_valid_checksum_is_refused() -> None:
    body = b"\x1a\xff\xff\xff\x0f"  # a length-delimited field that claims 4 GB
    with pytest.raises(BrokenAggregate) as caught:
        deaggregate(MAGIC + body + hashlib.md5(body).digest(), "s")  # noqa: S324
    assert caught.value.reason is Reason.BROKEN_AGGREGATE


@pytest.mark.parametrize("data", [MAGIC, MAGIC + b"\x00" * 10])
def test_truncated_aggregates_are_refused(data: bytes) -> None:
    with pytest.raises(BrokenAggregate):
        deaggregate(data, "s")


def test_a_partition_key_index_out_of_range_is_refused() -> None:
    from aws_kinesis_agg import messages_pb2

    message = messages_pb2.AggregatedRecord()
    message.partition_key_table.append("s")
    message.records.add(partition_key_index=3, data=b"x")
    body = message.SerializeToString()
    with pytest.raises(BrokenAggregate, match="partition key index"):
        deaggregate(MAGIC + body + hashlib.md5(body).digest(), "s")  # noqa: S324


def test_the_aws_documentation_sample_parses() -> None:
    event = KinesisTimeWindowEvent.model_validate(load_event("kinesis_tumbling_window.json"))
    assert event.shardId == "shardId-000000000006"
    assert event.window.window().start_ms == parse_rfc3339("2020-12-09T07:04:00Z")
    assert event.Records[0].kinesis.raw_data() == b"Hello, this is a test."
    assert event.state == {"1": 282, "2": 715}
    assert not event.isFinalInvokeForWindow


def test_a_response_without_state_is_not_a_window_response() -> None:
    with pytest.raises(ValueError, match="state"):
        TimeWindowEventResponse.model_validate({"batchItemFailures": []})
