"""The handler's small decisions that need no AWS: resuming a state, naming the failed record."""

from __future__ import annotations

from consumers.speed.handler import failures, resume
from salesstream.core.aggregation import LAYOUT, WindowState
from salesstream.core.lambda_events import BatchItemFailure
from salesstream.core.records import DecodedBatch, RecordInfo
from tests.conftest import load_event


def test_a_state_of_another_layout_restarts_the_segment() -> None:
    assert resume({"v": LAYOUT + 1, "t": {"x": [1, 0, 5, 0]}}) == WindowState()
    # the AWS documentation's sample state is such a state
    assert resume(load_event("kinesis_tumbling_window.json")["state"]) == WindowState()


def test_the_first_record_not_folded_is_named_for_redelivery() -> None:
    batch = DecodedBatch(records=[RecordInfo(str(sequence), 0, "pk", 1) for sequence in (7, 8, 9)])
    assert failures(batch, 3) == []
    assert failures(batch, 1) == [BatchItemFailure(itemIdentifier="8")]
