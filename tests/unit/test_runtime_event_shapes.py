"""The runtime builds a Kinesis stream's events as plain dicts on its hot path; these properties
keep them equal to the pydantic models the handlers parse them with (salesstream.core
.lambda_events), field for field and byte for byte, so the two cannot drift."""

from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from salesstream.core.lambda_events import (
    KinesisEvent,
    KinesisEventRecord,
    KinesisPayload,
    KinesisTimeWindowEvent,
    WindowBounds,
)
from salesstream.core.windows import Window
from salesstream.runtime.events import Source, build_event, stream_record
from salesstream.runtime.model import Batch, RawRecord, WireRecord

texts = st.text(min_size=1, max_size=40)  # any code point: quotes, controls, non-ASCII
sources = st.builds(
    Source,
    shard_id=st.from_regex(r"shardId-[0-9]{12}", fullmatch=True),
    stream_arn=texts,
    region=texts,
    identity_arn=texts,
)
raw_records = st.builds(
    RawRecord,
    sequence_number=st.integers(min_value=0, max_value=10**56).map(str),
    arrival_ms=st.integers(min_value=0, max_value=4_102_444_800_000),  # up to 2100
    data=st.binary(max_size=300),
    partition_key=st.text(min_size=1, max_size=256),
)


def as_model(raw: RawRecord, source: Source) -> KinesisEventRecord:
    """The record as the runtime built it with the models before."""
    return KinesisEventRecord(
        kinesis=KinesisPayload(
            partitionKey=raw.partition_key,
            sequenceNumber=raw.sequence_number,
            data=base64.b64encode(raw.data).decode("ascii"),
            approximateArrivalTimestamp=raw.arrival_ms / 1000,
        ),
        eventID=f"{source.shard_id}:{raw.sequence_number}",
        invokeIdentityArn=source.identity_arn,
        awsRegion=source.region,
        eventSourceARN=source.stream_arn,
    )


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@given(raw_records, sources)
def test_a_record_is_the_models_dump_and_its_size_the_models_json(raw: RawRecord, source: Source) -> None:
    model = as_model(raw, source)
    record = stream_record(raw, source, fetched_at_ms=7)
    assert record.event_record == model.model_dump(mode="json")
    assert compact(record.event_record) == model.model_dump_json(exclude_none=True)  # same order
    assert record.size == len(model.model_dump_json(exclude_none=True)) + 1
    assert (record.sequence_number, record.sequence) == (raw.sequence_number, int(raw.sequence_number))
    assert (record.arrival_ms, record.fetched_at_ms) == (raw.arrival_ms, 7)
    assert KinesisEventRecord.model_validate(record.event_record).kinesis.raw_data() == raw.data


@given(raw_records, sources)
def test_a_record_read_in_the_wires_base64_is_the_same_record(raw: RawRecord, source: Source) -> None:
    wire = WireRecord(
        raw.sequence_number, raw.arrival_ms, base64.b64encode(raw.data).decode("ascii"), raw.partition_key
    )
    assert stream_record(wire, source, 0) == stream_record(raw, source, 0)


@given(
    st.lists(raw_records, min_size=0, max_size=5),
    sources,
    st.dictionaries(st.text(max_size=5), st.integers()),
    st.booleans(),
    st.booleans(),
)
def test_an_event_is_the_models_dump(
    raws: list[RawRecord], source: Source, state: dict[str, int], final: bool, terminated_early: bool
) -> None:
    records = tuple(stream_record(raw, source, 0) for raw in raws)
    models = [as_model(raw, source) for raw in raws]
    window = Window(0, 60_000)

    plain = build_event(Batch(records), source, None)
    expected_plain = KinesisEvent(Records=models)
    assert plain == expected_plain.model_dump(mode="json")
    assert compact(plain) == expected_plain.model_dump_json()

    batch = Batch(records, window, final=final, terminated_early=terminated_early)
    windowed = build_event(batch, source, json.dumps(state))
    expected = KinesisTimeWindowEvent(
        Records=models,
        window=WindowBounds(**window.as_event()),
        state=state,
        shardId=source.shard_id,
        eventSourceARN=source.stream_arn,
        isFinalInvokeForWindow=final,
        isWindowTerminatedEarly=terminated_early,
    )
    assert windowed == expected.model_dump(mode="json")
    assert compact(windowed) == expected.model_dump_json()


def test_a_handler_that_changes_its_events_records_does_not_change_a_retry() -> None:
    source = Source("shardId-000000000001", "arn:stream", "eu-west-1", "arn:role")
    batch = Batch((stream_record(RawRecord("5", 1_000, b"{}", "pk"), source, 0),), Window(0, 60_000))
    event = build_event(batch, source, "{}")
    event["Records"][0]["kinesis"]["data"] = "changed"
    event["Records"][0]["eventID"] = "changed"
    again = build_event(batch, source, "{}")
    assert again["Records"][0]["kinesis"]["data"] == base64.b64encode(b"{}").decode()
    assert again["Records"][0]["eventID"] == "shardId-000000000001:5"
