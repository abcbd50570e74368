"""The fault layer's pure parts: the bad-input catalogue (each kind refused by the consumer's own
decoding with the reason the catalogue promises), the profiles, the seeded draws."""

from __future__ import annotations

from pathlib import Path

import pytest

from load_tests.faults.catalogue import CATALOGUE, KINDS, TEST_CARD_NUMBERS, conflicting_copy, kind_for
from load_tests.faults.draw import Draws
from load_tests.faults.profile import FaultProfile, UnknownProfile
from producer.simulator import Fleet, FleetConfig
from salesstream.core.cards import contains_card_number
from salesstream.core.lambda_events import KinesisTimeWindowEvent
from salesstream.core.records import WHOLE_RECORD, decode_records
from tests.window_events import Shard

GOOD = Fleet(FleetConfig(stores=30, seed=3)).events(60)


def refusals(data: bytes) -> list[tuple[int, str]]:
    shard = Shard()
    event = KinesisTimeWindowEvent.model_validate(shard.event([shard.put(data)]))
    batch = decode_records(event.Records)
    assert batch.accepted == []
    return [(r.subsequence, r.reason.value) for r in batch.refused]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_refused_by_the_consumer_with_its_reason(kind: str) -> None:
    bad = CATALOGUE[kind]
    for raw in GOOD[:20]:
        expected = [(WHOLE_RECORD if bad.whole_record else 0, bad.reason.value)]
        assert refusals(bad.make(raw)) == expected


def test_the_catalogue_covers_b1_b2_b3_b7() -> None:
    reasons = {bad.reason.value for bad in CATALOGUE.values()}
    assert {"not_json", "bad_utf8", "bad_aggregate_checksum", "broken_aggregate"} <= reasons  # B1
    assert {"corrupt_envelope", "envelope_oversize"} <= reasons  # B1, B3 for compressed aggregates
    assert {"missing_field", "non_positive_quantity", "negative_price", "wrong_type"} <= reasons  # B2
    assert {"unknown_currency", "unknown_field", "oversize", "card_number"} <= reasons  # B2, B3, B7


def test_kinds_come_in_turn() -> None:
    assert [kind_for(n).kind for n in range(2 * len(KINDS))] == [*KINDS, *KINDS]


def test_every_test_card_number_is_one() -> None:
    assert all(contains_card_number(card.encode()) for card in TEST_CARD_NUMBERS)
    assert all(contains_card_number(CATALOGUE["card_number"].make(raw)) for raw in GOOD)


def test_a_conflicting_copy_is_valid_with_the_same_id_and_another_amount() -> None:
    import json

    from salesstream.core.contract import validate_wire

    for raw in GOOD:
        copy = conflicting_copy(raw)
        original, changed = validate_wire(raw), validate_wire(copy)
        assert changed["event_id"] == original["event_id"]
        assert changed["total_minor"] != original["total_minor"]
        assert json.loads(copy)["store_id"] == json.loads(raw)["store_id"]


def test_named_profiles() -> None:
    named = FaultProfile.named()
    assert set(named) == {"none", "standard"}
    assert not named["none"].injects_anything
    standard = named["standard"]
    assert (standard.orders, standard.shards) == (100_000, 4)
    assert (standard.put_entry_failure, standard.lost_response, standard.replay_batch) == (0.05, 0.01, 0.02)
    assert (standard.crash_after_write, standard.dynamodb_throttle, standard.reshards) == (0.01, 0.10, 1)
    assert (standard.malformed, standard.conflicting_duplicate) == (0.005, 0.001)
    assert FaultProfile.load("standard") == standard
    assert standard.sized(2_000).orders == 2_000
    assert standard.sized(2_000).run_seconds == 2_000 / standard.rate


def test_a_profile_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("orders: 500\nmalformed: 0.1\n")
    profile = FaultProfile.load(str(path))
    assert (profile.name, profile.orders, profile.malformed, profile.put_entry_failure) == (
        "mine",
        500,
        0.1,
        0,
    )
    path.write_text("orders: 500\nmalformd: 0.1\n")
    with pytest.raises(UnknownProfile, match="malformd"):
        FaultProfile.load(str(path))
    with pytest.raises(UnknownProfile, match="standard"):
        FaultProfile.load("nonesuch")


def test_draws_replay_exactly_and_give_a_retry_its_own_chance() -> None:
    first, again = Draws(7), Draws(7)
    keys = [f"record-{n}".encode() for n in range(2_000)]
    hits = [first.hit("put", key, 0.05) for key in keys]
    assert hits == [again.hit("put", key, 0.05) for key in keys]
    assert 60 < sum(hits) < 140  # ~5% of 2,000
    retried = [first.hit("put", key, 0.05) for key in keys]  # the second draw on each key
    assert retried != hits
    assert hits != [Draws(8).hit("put", key, 0.05) for key in keys]
