"""What a foreign producer is given and what it may send, without a network: the contract's JSON
schema against the model, the non-Python example's sample event, the KPL vectors from the format
specification, and the fault catalogue's foreign shapes."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from load_tests.faults.foreign import FOREIGN_SHAPES
from producer.schema import SCHEMA_PATH, contract_schema
from salesstream.core.contract import parse_order
from salesstream.core.kpl import deaggregate
from salesstream.core.lambda_events import KinesisTimeWindowEvent
from salesstream.core.records import decode_records
from tests.foreign_support import ForeignPOS, encode, is_valid_gtin13, spec_aggregate
from tests.window_events import Shard

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parent.parent.parent
EVENTS = ROOT / "tests" / "events"


def test_the_committed_schema_is_the_contract_models_own() -> None:
    committed = json.loads(SCHEMA_PATH.read_text())
    assert committed == contract_schema(), "producer/schema.json drifted: run `python -m producer.schema`"
    assert committed["additionalProperties"] is False
    assert set(committed["required"]) >= {"event_id", "store_id", "currency", "lines", "total_minor"}


def test_the_nodejs_examples_sample_event_passes_the_contract() -> None:
    raw = (ROOT / "producer" / "examples" / "nodejs" / "sample-event.json").read_bytes()
    event = parse_order(raw)
    assert (event.store_id, event.total_minor, len(event.lines)) == ("S038", 2999, 2)
    assert all(is_valid_gtin13(line.sku) for line in event.lines)
    # the example builds events with the schema's field names, nothing else
    source = (ROOT / "producer" / "examples" / "nodejs" / "pos.mjs").read_text()
    fields = set(json.loads(SCHEMA_PATH.read_text())["properties"])
    assert all(re.search(rf"\b{name}\b[:,]", source) for name in fields)  # a key or JS shorthand


def test_the_kpl_vectors_from_the_format_specification_decode_strictly() -> None:
    document = json.loads((EVENTS / "kpl_spec_vectors.json").read_text())
    assert len(document["vectors"]) == 4
    for vector in document["vectors"]:
        data = bytes.fromhex(vector["data_hex"])
        expected = [
            (u["partition_key"], u["explicit_hash_key"], encode(u["event"])) for u in vector["user_records"]
        ]
        options = vector["options"]
        # the committed bytes are exactly the specification's layout of these records
        assert spec_aggregate(expected, **options) == data, vector["name"]
        records = deaggregate(data, "ignored")
        assert [(r.partition_key, r.explicit_hash_key, r.data) for r in records] == expected
        shard = Shard()
        batch = decode_records(KinesisTimeWindowEvent.model_validate(shard.event([shard.put(data)])).Records)
        assert [event["event_id"] for event, _, _, _ in batch.accepted] == [
            u["event"]["event_id"] for u in vector["user_records"]
        ]
        assert batch.refused == []


@pytest.mark.parametrize("name", sorted(FOREIGN_SHAPES))
def test_every_foreign_shape_carries_each_event_exactly_once(name: str) -> None:
    events = [encode(event) for event in ForeignPOS(stores=9, seed=4).events(60)]
    entries = FOREIGN_SHAPES[name].make(events, random.Random(1))
    carried = [r.data for entry in entries for r in deaggregate(entry["Data"], entry["PartitionKey"])]
    assert sorted(carried) == sorted(events)
    assert all(set(entry) <= {"PartitionKey", "Data", "ExplicitHashKey"} for entry in entries)
    if name == "mixed_key_aggregate":
        keys = [{r.partition_key for r in deaggregate(e["Data"], e["PartitionKey"])} for e in entries]
        assert all(len(k) > 1 for k in keys)  # partition keys really mixed in each aggregate
        assert all("ExplicitHashKey" not in entry for entry in entries)


def test_the_standard_fault_profile_writes_a_foreign_share() -> None:
    from load_tests.faults.profile import FaultProfile

    standard = FaultProfile.load("standard")
    assert standard.foreign_mixed_key == 0.02
    assert standard.injects_anything
    assert FaultProfile.load("none").foreign_mixed_key == 0
