"""The dedup index's rule (replay / duplicate / conflict), its horizon and eviction, the log's
keys and payload, and the rule at work across a window boundary and a reshard."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesstream.core.aggregation import Effect
from salesstream.core.dedup import (
    CONFLICT,
    DUPLICATE,
    NEW,
    REPLAY,
    DedupIndex,
    decode_log,
    encode_log,
    log_first_arrival,
    log_key,
    log_start_after,
)
from salesstream.core.limits import ID_PATTERN
from salesstream.core.positions import Position

HORIZON = 300_000
A: Effect = (("store-1", "EUR", 739_000), False, 1000)
A_REFUND: Effect = (("store-1", "EUR", 739_000), True, 1000)
A_MORE: Effect = (("store-1", "EUR", 739_000), False, 1001)


def test_the_rule() -> None:
    index = DedupIndex(HORIZON)
    assert index.judge_all("s0", [("e1", "100", 0, A, 1_000)]) == [NEW]
    # the very record again (a failed invocation's batch redelivered): fold it again
    assert index.judge_all("s0", [("e1", "100", 0, A, 1_000)]) == [REPLAY]
    # a resend: another position, same effect
    assert index.judge_all("s0", [("e1", "105", 0, A, 2_000)]) == [DUPLICATE]
    assert index.judge_all("s0", [("e1", "100", 1, A, 1_000)]) == [DUPLICATE]
    # same id, another effect: a conflict, whatever field differs
    assert index.judge_all("s0", [("e1", "106", 0, A_MORE, 2_000)]) == [CONFLICT]
    assert index.judge_all("s0", [("e1", "107", 0, A_REFUND, 2_000)]) == [CONFLICT]
    # the first sighting stays the reference
    assert index.judge_all("s0", [("e1", "100", 0, A, 1_000)]) == [REPLAY]


def test_equal_ids_in_one_batch() -> None:
    index = DedupIndex(HORIZON)
    verdicts = index.judge_all(
        "s0", [("e1", "100", 0, A, 1_000), ("e1", "100", 1, A, 1_000), ("e1", "101", 0, A_MORE, 1_010)]
    )
    assert verdicts == [NEW, DUPLICATE, CONFLICT]


def test_same_position_on_another_shard_is_a_resend() -> None:
    index = DedupIndex(HORIZON)
    index.judge_all("parent", [("e1", "100", 0, A, 1_000)])
    assert index.judge_all("child", [("e1", "100", 0, A, 2_000)]) == [DUPLICATE]


def test_the_horizon_is_a_rule_not_an_accident_of_memory() -> None:
    index = DedupIndex(HORIZON)
    index.judge_all("s0", [("e1", "100", 0, A, 1_000)])
    assert index.judge_all("s0", [("e1", "200", 0, A, 1_000 + HORIZON)]) == [DUPLICATE]
    # one millisecond later the first sighting no longer counts, even though it is still in memory
    assert index.judge_all("s0", [("e1", "300", 0, A, 1_001 + HORIZON)]) == [NEW]
    # and the new sighting is the reference from then on
    assert index.judge_all("s0", [("e1", "300", 0, A, 1_001 + HORIZON)]) == [REPLAY]


def test_eviction_follows_each_shards_own_clock() -> None:
    index = DedupIndex(HORIZON, slack_ms=60_000)
    index.judge_all("slow", [("old", "1", 0, A, 1_000)])
    index.judge_all("fast", [("f1", "1", 0, A, 1_000)])
    index.judge_all("fast", [("f2", "2", 0, A, 1_000 + HORIZON + 60_001)])
    assert index.evict("fast") == 1
    assert index.evict("slow") == 0  # another shard being ahead does not age this one
    assert len(index) == 2
    assert index.judge_all("slow", [("old", "9", 0, A, 2_000)]) == [DUPLICATE]


def test_loading_a_log_keeps_the_earliest_sighting() -> None:
    index = DedupIndex(HORIZON)
    index.judge_all("s0", [("e1", "105", 0, A, 2_000)])
    assert index.load("s0", [("e1", "100", 0, A, 1_000), ("e2", "101", 0, A, 1_000)]) == 2
    assert index.judge_all("s0", [("e1", "100", 0, A, 1_000)]) == [REPLAY]
    assert index.load("s0", [("e2", "102", 0, A, 3_000)]) == 0


def test_log_payload_round_trip() -> None:
    logged = [("100", 1_000, [("e1", 0, A), ("e2", 1, A_REFUND)]), ("101", 1_010, [("e3", 0, A_MORE)])]
    assert list(decode_log(encode_log(logged))) == [
        ("e1", "100", 0, A, 1_000),
        ("e2", "100", 1, A_REFUND, 1_000),
        ("e3", "101", 0, A_MORE, 1_010),
    ]


_IDS = st.from_regex(ID_PATTERN, fullmatch=True).filter(lambda text: len(text) <= 128)
_EFFECTS = st.tuples(
    st.tuples(_IDS, st.sampled_from(["EUR", "USD", "JPY"]), st.integers(1, 800_000)),
    st.booleans(),
    st.integers(0, 999_999_999_999),
)
_LOGGED = st.lists(
    st.tuples(
        st.from_regex(r"[0-9]{1,56}", fullmatch=True),
        st.integers(0, 10**15),
        st.lists(st.tuples(_IDS, st.integers(0, 10_000), _EFFECTS), min_size=1, max_size=5),
    ),
    max_size=5,
)


@given(_LOGGED)
def test_log_payload_is_the_json_lines_every_version_wrote_and_reads_back(
    logged: list[tuple[str, int, list[tuple[str, int, Effect]]]],
) -> None:
    payload = encode_log(logged)
    # objects written before (json.dumps) and after read alike: the bytes are the same
    assert payload == "\n".join(json.dumps(line, separators=(",", ":")) for line in logged).encode()
    assert list(decode_log(payload)) == [
        (event_id, sequence, subsequence, effect, arrival)
        for sequence, arrival, users in logged
        for event_id, subsequence, effect in users
    ]


def test_a_log_line_of_another_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match="Expected"):
        list(decode_log(b'["100",1000,[["e1",0,[["store-1","EUR",739000],0,1000]]]]'))


def test_log_keys_sort_by_first_arrival_then_position() -> None:
    keys = [
        log_key("s0", 1_000, Position(5, 0), Position(9, 3)),
        log_key("s0", 1_000, Position(10, 0), Position(10, 0)),
        log_key("s0", 999_999, Position(11, 0), Position(12, 0)),
        log_key("s0", 1_000_000, Position(2, 0), Position(3, 0)),
    ]
    assert sorted(keys) == keys
    assert [log_first_arrival(key) for key in keys] == [1_000, 1_000, 999_999, 1_000_000]
    assert keys[0].startswith("dedup/s0/")
    assert keys[0].endswith(".jsonl")


def test_start_after_lists_exactly_the_objects_from_an_arrival_on() -> None:
    before = log_key("s0", 4_999, Position(1, 0), Position(1, 0))
    at = log_key("s0", 5_000, Position(1, 0), Position(1, 0))
    after = log_key("s0", 5_001, Position(1, 0), Position(1, 0))
    start = log_start_after("s0", 5_000)
    assert before <= start < at < after
    assert log_start_after("s0", -10) == "dedup/s0/"


def test_knowing_the_log() -> None:
    index = DedupIndex(HORIZON)
    assert not index.knows_shard("s0")
    assert index.last_log("s0") is None
    index.track("s0")
    assert index.knows_shard("s0")
    first = log_key("s0", 1_000, Position(1, 0), Position(1, 0))
    second = log_key("s0", 2_000, Position(2, 0), Position(2, 0))
    index.note_log("s0", second)
    index.note_log("s0", first)
    assert index.knows_log("s0", first)
    assert index.last_log("s0") == second
    assert not index.knows_log("s1", first)
