"""The POS fleet simulator: valid, reproducible, skewed like real store sizes."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import Counter
from datetime import datetime

import pytest

from producer.encoder import accept
from producer.simulator import Fleet, FleetConfig, paced
from salesstream.core.cards import contains_card_number, gtin_valid
from salesstream.core.contract import parse_order

NOON = 1_795_000_000.0  # a fixed "now" for reproducible timestamps


def fleet(seed: int = 7, clock: float = NOON, **config: object) -> Fleet:
    return Fleet(FleetConfig(seed=seed, **config), clock=lambda: clock)  # type: ignore[arg-type]


def test_the_same_seed_gives_the_same_events() -> None:
    assert fleet(7).events(2_000) == fleet(7).events(2_000)
    assert fleet(7).events(100) != fleet(8).events(100)


def test_event_ids_and_amounts_do_not_depend_on_the_clock() -> None:
    def essence(raw: bytes) -> tuple[str, str, int]:
        event = json.loads(raw)
        return event["event_id"], event["store_id"], event["total_minor"]

    earlier = [essence(raw) for raw in fleet(7, clock=NOON).events(500)]
    later = [essence(raw) for raw in fleet(7, clock=NOON + 86_400).events(500)]
    assert earlier == later
    assert len({event_id for event_id, _, _ in earlier}) == 500


def test_every_event_passes_the_contract_and_carries_no_card_number() -> None:
    events = fleet(3, stores=200).events(5_000)
    accepted = [accept(raw) for raw in events]  # raises RejectedEvent on any refusal
    assert not any(contains_card_number(raw) for raw in events)
    parsed = [json.loads(raw) for raw in events]
    assert {len(e["lines"]) for e in parsed} == {1, 2, 3, 4, 5}
    assert len({e.event_id for e in accepted}) == len(events)


def test_occurred_at_is_now_in_the_stores_own_offset() -> None:
    simulated = fleet(5, stores=50)
    for raw in simulated.events(300):
        event = json.loads(raw)
        store = next(s for s in simulated.stores if s.store_id == event["store_id"])
        assert event["occurred_at"].endswith(f"{store.utc_offset_hours:+03d}:00")


def test_refunds_refer_to_an_earlier_sale_of_the_same_store() -> None:
    events = [json.loads(raw) for raw in fleet(11, refund_share=0.2).events(5_000)]
    sales = {e["order_id"]: e for e in events if e["event_type"] == "order_placed"}
    refunds = [e for e in events if e["event_type"] == "order_refunded"]
    share = len(refunds) / len(events)
    assert 0.17 < share < 0.23
    for refund in refunds:
        sale = sales[refund["order_id"]]
        assert sale["store_id"] == refund["store_id"]
        assert refund["lines"] == sale["lines"][:1]
        assert refund["total_minor"] <= sale["total_minor"]


def test_store_sizes_follow_the_zipf_weights() -> None:
    simulated = fleet(13, stores=20, zipf_exponent=1.1)
    weights = sorted(store.weight for store in simulated.stores)
    assert weights[-1] / weights[0] == pytest.approx(20**1.1)
    total = 40_000
    counts = Counter(json.loads(raw)["store_id"] for raw in simulated.events(total))
    for store in simulated.stores:
        expected = total * store.weight
        spread = math.sqrt(expected * (1 - store.weight))
        assert abs(counts[store.store_id] - expected) < 5 * spread + 1, store.store_id
    biggest = max(simulated.stores, key=lambda s: s.weight)
    assert counts.most_common(1)[0][0] == biggest.store_id


def test_most_stores_sell_in_euro_but_not_all() -> None:
    currencies = Counter(store.currency for store in fleet(17, stores=500).stores)
    assert 0.6 < currencies["EUR"] / 500 < 0.8
    assert len(currencies) >= 4


def test_pacing_spreads_the_events_over_the_duration() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    chunks = list(paced(fleet(1), rate=200, duration=3, clock=lambda: now[0], sleep=sleep))
    assert sum(len(chunk) for chunk in chunks) == 600
    assert {len(chunk) for chunk in chunks} == {10}  # 1/20 s worth each
    assert now[0] == pytest.approx(3.0 - 0.05)  # the last chunk is due 50 ms before the end


@pytest.mark.parametrize(
    "config",
    [{"stores": 0}, {"terminals_per_store": 0}, {"refund_share": 1.0}, {"max_lines": 6}],
)
def test_a_fleet_that_cannot_exist_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        FleetConfig(**config)  # type: ignore[arg-type]


# --- the load test's extensions: run ids, skewed clocks, opening hours ---------------------------


def test_a_run_id_salts_the_ids_and_changes_nothing_else() -> None:
    def essence(raw: bytes) -> tuple[str, int]:
        event = json.loads(raw)
        return event["store_id"], event["total_minor"]

    plain, first, second = (
        fleet(7).events(300),
        fleet(7, run_id="a").events(300),
        fleet(7, run_id="b").events(300),
    )
    ids = [{json.loads(raw)["event_id"] for raw in events} for events in (plain, first, second)]
    assert not ids[0] & ids[1]
    assert not ids[1] & ids[2]
    assert (
        [essence(raw) for raw in plain] == [essence(raw) for raw in first] == [essence(raw) for raw in second]
    )
    assert fleet(7, run_id="a").events(300) == first  # still reproducible


def test_event_numbers_and_ids_map_both_ways() -> None:
    simulated = fleet(3, run_id="r1")
    events = simulated.events(40)
    assert simulated.events_made == 40
    for number, raw in enumerate(events, start=1):
        event_id = json.loads(raw)["event_id"]
        assert simulated.event_number(event_id) == number
        assert simulated.event_id(number) == event_id
    assert fleet(3, run_id="r2").event_number(simulated.event_id(5)) is None  # another run's id
    assert simulated.event_number("evt-1") is None


def test_a_share_of_terminals_have_skewed_clocks_and_nothing_else_changes() -> None:
    plain = fleet(9, stores=40, terminals_per_store=5)
    skewed = fleet(9, stores=40, terminals_per_store=5, skewed_clock_share=0.1, max_clock_skew_seconds=600)
    assert len(skewed.clock_skews) == 20  # 10% of 200 terminals
    assert all(1 <= abs(skew) <= 600 for skew in skewed.clock_skews.values())
    shifted = 0
    for before, after in zip(plain.events(3_000), skewed.events(3_000), strict=True):
        a, b = json.loads(before), json.loads(after)
        moved = datetime.fromisoformat(b["occurred_at"]) - datetime.fromisoformat(a["occurred_at"])
        store = int(a["store_id"].split("-")[1])
        terminal = int(a["terminal_id"].rsplit(".t", 1)[1]) - 1
        assert moved.total_seconds() == skewed.clock_skews.get((store, terminal), 0)
        shifted += moved.total_seconds() != 0
        assert {k: v for k, v in a.items() if k != "occurred_at"} == {
            k: v for k, v in b.items() if k != "occurred_at"
        }
    assert shifted > 0
    for raw in skewed.events(200):
        accept(raw)  # still valid events


def test_activity_restricts_sales_to_open_stores_without_changing_the_baskets() -> None:
    simulated = fleet(4, stores=10)
    open_only = [1.0 if index in (2, 5) else 0.0 for index in range(10)]
    simulated.set_activity(open_only)
    stores = {json.loads(raw)["store_id"] for raw in simulated.events(500)}
    assert stores == {simulated.stores[2].store_id, simulated.stores[5].store_id}
    simulated.set_activity(None)  # every store open again
    assert len({json.loads(raw)["store_id"] for raw in simulated.events(2_000)}) == 10
    with pytest.raises(ValueError, match="activity"):
        simulated.set_activity([0.0] * 10)
    with pytest.raises(ValueError, match="activity"):
        simulated.set_activity([1.0])


def test_realistic_ids_are_uuids_store_hex_orders_and_ean13_skus_that_pass_the_contract() -> None:
    simulated = fleet(3, stores=200, ids="realistic")
    events = simulated.events(5_000)
    accepted = [accept(raw) for raw in events]  # valid Identifiers: no '#', '/', spaces
    assert not any(contains_card_number(raw) for raw in events)
    assert len({e.event_id for e in accepted}) == len(events)
    for event in map(parse_order, events[:500]):
        assert uuid.UUID(event.event_id).version == 4
        assert re.fullmatch(r"S[0-9]{3,}-[0-9a-f]+", event.order_id)
        assert all(len(line.sku) == 13 and gtin_valid(line.sku.encode()) for line in event.lines)


def test_realistic_event_ids_map_back_to_their_numbers_and_other_ids_do_not() -> None:
    simulated = fleet(5, ids="realistic")
    events = [json.loads(raw) for raw in simulated.events(300)]
    assert [simulated.event_number(e["event_id"]) for e in events] == list(range(1, 301))
    assert simulated.event_number(str(uuid.UUID(int=12345, version=4))) is None
    assert simulated.event_number("e.123") is None
    other_run = Fleet(FleetConfig(seed=5, ids="realistic", run_id="other"))
    assert other_run.event_id(1) != simulated.event_id(1)


def test_the_style_of_ids_changes_no_other_draw() -> None:
    def essence(raw: bytes) -> tuple[str, int, int]:
        event = json.loads(raw)
        return event["store_id"], len(event["lines"]), event["total_minor"]

    plain = [essence(raw) for raw in fleet(9).events(1_000)]
    realistic = [essence(raw) for raw in fleet(9, ids="realistic").events(1_000)]
    assert plain == realistic


def test_an_unknown_style_of_ids_is_refused() -> None:
    with pytest.raises(ValueError, match="ids must be one of"):
        FleetConfig(ids="guid")


def test_the_load_tests_fleet_takes_the_style_of_ids_from_its_config() -> None:
    from load_tests.config import LoadTestConfig

    config = LoadTestConfig(run_id="ids-test", rate=100, duration=1, stores=5, ids="realistic")
    simulated = Fleet(config.fleet_config(), clock=lambda: NOON)
    event = json.loads(simulated.events(1)[0])
    assert uuid.UUID(event["event_id"]).version == 4
    assert simulated.event_number(event["event_id"]) == 1
    assert Fleet(LoadTestConfig(run_id="ids-test").fleet_config()).event_id(1).startswith("e.")
    with pytest.raises(ValueError, match="ids"):
        LoadTestConfig(run_id="ids-test", ids="guid")
