"""The runtime's events, what a response means, the on-failure record, and its refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from salesstream.core.lambda_events import KinesisEvent, KinesisTimeWindowEvent
from salesstream.core.windows import Window
from salesstream.deploy.template import Template, load_template_document
from salesstream.emulator.targets import Endpoint, Target
from salesstream.runtime import HandlerImportError, Runtime, RuntimeConfigError, VirtualClock
from salesstream.runtime.destinations import FailureCondition, failure_record
from salesstream.runtime.events import Source, build_event, interpret, stream_record
from salesstream.runtime.invoker import FunctionInvoker, Raised, Returned, TimedOut, resolve_handler
from salesstream.runtime.mappings import function_environment, mappings_of
from salesstream.runtime.model import Batch, Failed, FailureKind, PartlyFailed, RawRecord, Succeeded
from tests.conftest import load_event

SOURCE = Source(
    "shardId-000000000006",
    "arn:aws:kinesis:us-east-1:123456789012:stream/lambda-stream",
    "us-east-1",
    "arn:aws:iam::123456789012:role/lambda-kinesis-role",
)


def records(*sequences: str) -> tuple[Any, ...]:
    return tuple(
        stream_record(RawRecord(s, 1_607_497_475_000 + i, b"Hello, this is a test.", "1"), SOURCE, 0)
        for i, s in enumerate(sequences)
    )


def test_a_built_event_is_the_aws_documentation_sample() -> None:
    sample = load_event("kinesis_tumbling_window.json")
    (record,) = records("49590338271490256608559692538361571095921575989136588898")
    window = Window.containing(1_607_497_475_000, 120)
    event = build_event(Batch((record,), window), SOURCE, json.dumps(sample["state"]))
    assert event == sample
    assert KinesisTimeWindowEvent.model_validate(event).window.window() == window


def test_an_event_without_a_window_is_the_plain_kinesis_event() -> None:
    event = build_event(Batch(records("1", "2")), SOURCE, None)
    assert set(event) == {"Records"}
    assert [r.kinesis.sequenceNumber for r in KinesisEvent.model_validate(event).Records] == ["1", "2"]


def test_the_state_in_an_event_is_a_copy_the_handler_may_change() -> None:
    batch = Batch(records("1"), Window(0, 60_000))
    state = '{"a": [1]}'
    build_event(batch, SOURCE, state)["state"]["a"].append(2)
    assert build_event(batch, SOURCE, state)["state"] == {"a": [1]}


BATCH = Batch(records("10", "11", "12"), Window(0, 60_000))


@pytest.mark.parametrize(
    ("response", "windowed", "report", "outcome"),
    [
        ({"state": {"n": 1}}, True, True, Succeeded({"n": 1})),
        ({"state": {}, "batchItemFailures": None}, True, True, Succeeded({})),
        ({"batchItemFailures": []}, True, True, Failed),  # no state
        ({"state": None}, True, True, Failed),
        (None, True, False, Failed),
        (None, False, True, Succeeded(None)),  # a null response
        ({}, False, True, Succeeded(None)),  # an empty response
        ("ok", False, False, Succeeded(None)),  # without ReportBatchItemFailures it is ignored
        ({"batchItemFailures": [{"itemIdentifier": "99"}]}, False, False, Succeeded(None)),
        (
            {"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "11"}]},
            False,
            True,
            PartlyFailed(None, 1),
        ),
        (
            {"state": {"n": 1}, "batchItemFailures": [{"itemIdentifier": "10"}]},
            True,
            True,
            PartlyFailed({"n": 1}, 0),
        ),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, False, True, Failed),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, False, True, Failed),
        ({"batchItemFailures": [{"sequenceNumber": "10"}]}, False, True, Failed),
        ({"batchItemFailures": [{"itemIdentifier": "13"}]}, False, True, Failed),
        ({"batchItemFailures": "10"}, False, True, Failed),
        ("ok", False, True, Failed),
        ({"state": {"x": float("nan")}}, True, True, Failed),  # not JSON
        ({"state": {"x": {1, 2}}}, True, True, Failed),
    ],
)
def test_what_a_response_means(response: Any, windowed: bool, report: bool, outcome: Any) -> None:
    result = interpret(response, BATCH, windowed=windowed, report_batch_item_failures=report)
    if outcome is Failed:
        assert isinstance(result, Failed)
        assert result.kind in (FailureKind.MISSING_STATE, FailureKind.BAD_RESPONSE)
    else:
        assert result == outcome


def test_the_on_failure_record_is_metadata_only() -> None:
    batch = records("10", "11")
    notice = failure_record(
        batch,
        condition=FailureCondition.RETRY_ATTEMPTS_EXHAUSTED,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        shard_id=SOURCE.shard_id,
        stream_arn=SOURCE.stream_arn,
        invoke_count=3,
        function_error="Unhandled",
        now_ms=1_607_497_480_250,
    )
    assert notice["timestamp"] == "2020-12-09T07:04:40.250Z"
    assert notice["KinesisBatchInfo"] == {
        "shardId": SOURCE.shard_id,
        "startSequenceNumber": "10",
        "endSequenceNumber": "11",
        "approximateArrivalOfFirstRecord": "2020-12-09T07:04:35.000Z",
        "approximateArrivalOfLastRecord": "2020-12-09T07:04:35.001Z",
        "batchSize": 2,
        "streamArn": SOURCE.stream_arn,
    }
    assert notice["requestContext"]["approximateInvokeCount"] == 3
    assert "SGVsbG8" not in json.dumps(notice)  # never the data


def test_an_invoker_reports_errors_and_timeouts_as_function_errors() -> None:
    def handler(event: dict[str, Any], context: Any) -> Any:
        if event.get("boom"):
            raise ValueError("bad record")
        if event.get("slow"):
            import time

            time.sleep(0.3)
        return {"remaining": context.get_remaining_time_in_millis(), "id": context.aws_request_id}

    invoker = FunctionInvoker(
        handler, function_name="f", function_arn="arn", memory_mb=128, timeout_seconds=0.1
    )
    returned = invoker.invoke({})
    assert isinstance(returned, Returned)
    assert 0 < returned.value["remaining"] <= 100
    assert invoker.invoke({"boom": True}) == Raised("ValueError", "bad record")
    assert invoker.invoke({"slow": True}) == TimedOut(0.1)


def test_an_unimportable_handler_is_named() -> None:
    with pytest.raises(HandlerImportError, match=r"F: cannot import its handler consumers\.nowhere\.handler"):
        resolve_handler("consumers.nowhere.handler", "F")
    with pytest.raises(HandlerImportError, match="no callable 'nothing'"):
        resolve_handler("json.nothing", "F")


def _template(**aggregator: Any) -> Template:
    document = load_template_document()
    events = document["Resources"]["AggregatorFunction"]["Properties"]["Events"]
    events["Orders"]["Properties"].update(aggregator)
    return Template(document, {"Target": "local"})


def test_the_runtime_names_the_handler_it_cannot_import() -> None:
    template = _template()
    document = template.document
    document["Resources"]["AggregatorFunction"]["Properties"]["Handler"] = "consumers.missing.lambda_handler"
    endpoint = Endpoint(Target.CUSTOM, "http://127.0.0.1:9")  # never reached
    with pytest.raises(HandlerImportError, match=r"AggregatorFunction.*consumers\.missing\.lambda_handler"):
        Runtime(Template(document, {"Target": "local"}), endpoint, clock=VirtualClock())


def test_the_runtime_needs_its_checkpoint_table_from_the_template() -> None:
    endpoint = Endpoint(Target.CUSTOM, "http://127.0.0.1:9")
    with pytest.raises(RuntimeConfigError, match="Target=local"):
        Runtime(Template.load(), endpoint, handlers={"AggregatorFunction": lambda e, c: None})


def test_parallelization_above_one_and_at_timestamp_are_refused() -> None:
    with pytest.raises(RuntimeConfigError, match="ParallelizationFactor 2"):
        mappings_of(_template(TumblingWindowInSeconds=0, ParallelizationFactor=2))
    with pytest.raises(RuntimeConfigError, match="AT_TIMESTAMP"):
        mappings_of(_template(StartingPosition="AT_TIMESTAMP"))


def test_every_setting_of_a_mapping_comes_from_the_template() -> None:
    (mapping,) = mappings_of(_template(BatchSize=7, MaximumRetryAttempts=3), ["AggregatorFunction"])
    assert (mapping.id, mapping.event.batch_size, mapping.event.maximum_retry_attempts) == (
        "AggregatorFunction.Orders",
        7,
        3,
    )
    assert mapping.windowed
    assert mapping.on_failure_queue == "dev-salesstream-consumer-failures"
    assert mapping.stream_arn.endswith(":stream/dev-salesstream-orders")


def test_functions_that_disagree_on_an_environment_variable_are_refused() -> None:
    (mapping,) = mappings_of(_template(), ["AggregatorFunction"])
    other = replace(
        mapping,
        function=replace(mapping.function, logical_id="OtherFunction", environment={"STAGE": "prod"}),
    )
    assert function_environment([mapping, mapping])["STAGE"] == "dev"
    with pytest.raises(RuntimeConfigError, match="STAGE differently"):
        function_environment([mapping, other])
