"""Shard routing: MD5 of the partition key against the open shards' inclusive hash ranges."""

from __future__ import annotations

import pytest

from producer.shards import HASH_KEY_MAX, Shard, ShardMap, ShardMapError, hash_key


def even_shards(count: int) -> list[Shard]:
    return ShardMap.uniform(count).open_shards


def test_hash_key_is_the_md5_digest_read_as_a_big_endian_integer() -> None:
    # MD5("a") = 0cc175b9c0f1b6a831c399e269772661, a published test vector
    assert hash_key("a") == 0x0CC175B9C0F1B6A831C399E269772661
    assert 0 <= hash_key("store-0007") <= HASH_KEY_MAX


def test_a_uniform_map_is_what_create_stream_makes() -> None:
    shards = even_shards(3)
    assert [s.shard_id for s in shards] == [f"shardId-00000000000{i}" for i in range(3)]
    assert shards[0].starting_hash_key == 0
    assert shards[-1].ending_hash_key == HASH_KEY_MAX
    assert shards[1].starting_hash_key == shards[0].ending_hash_key + 1 == (HASH_KEY_MAX + 1) // 3


def test_both_ends_of_a_range_belong_to_the_shard() -> None:
    shards = even_shards(4)
    shard_map = ShardMap(shards)
    for shard in shards:
        assert shard_map.shard_for_key(shard.starting_hash_key) == shard
        assert shard_map.shard_for_key(shard.ending_hash_key) == shard
    assert shard_map.shard_for_key(0) == shards[0]
    assert shard_map.shard_for_key(HASH_KEY_MAX) == shards[-1]


def test_a_partition_key_goes_where_its_md5_falls() -> None:
    shard_map = ShardMap(even_shards(4))
    for number in range(200):
        key = f"store-{number:04d}"
        shard = shard_map.shard_for(key)
        assert shard.starting_hash_key <= hash_key(key) <= shard.ending_hash_key
        assert shard_map.belongs(key, shard.shard_id)
    # "a" hashes to 0x0cc1..., in the first quarter of the space
    assert shard_map.shard_for("a").shard_id == "shardId-000000000000"


def test_the_explicit_hash_key_is_inside_the_shard() -> None:
    for shard in even_shards(7):
        assert shard.holds(int(shard.explicit_hash_key))


def test_closed_shards_are_never_targets_but_still_judge_landings() -> None:
    parent, right = even_shards(2)
    middle = parent.starting_hash_key + (parent.ending_hash_key - parent.starting_hash_key) // 2
    children = [
        Shard("shardId-000000000002", parent.starting_hash_key, middle),
        Shard("shardId-000000000003", middle + 1, parent.ending_hash_key),
    ]
    closed_parent = Shard(parent.shard_id, parent.starting_hash_key, parent.ending_hash_key, is_open=False)
    shard_map = ShardMap([closed_parent, right, *children])
    assert [s.shard_id for s in shard_map.open_shards] == [
        "shardId-000000000002",
        "shardId-000000000003",
        "shardId-000000000001",
    ]
    assert shard_map.shard_for_key(middle + 1).shard_id == "shardId-000000000003"
    assert shard_map.belongs("a", closed_parent.shard_id)  # a record may still sit on the parent


def test_list_shards_items_are_read_with_their_state() -> None:
    shard_map = ShardMap.from_api(
        [
            {
                "ShardId": "shardId-000000000000",
                "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(HASH_KEY_MAX)},
                "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
            },
            {
                "ShardId": "shardId-000000000001",
                "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(HASH_KEY_MAX)},
                "SequenceNumberRange": {"StartingSequenceNumber": "10"},
            },
        ]
    )
    assert not shard_map.shards["shardId-000000000000"].is_open
    assert [s.shard_id for s in shard_map.open_shards] == ["shardId-000000000001"]


@pytest.mark.parametrize(
    "shards",
    [
        pytest.param([Shard("a", 0, 10), Shard("b", 12, HASH_KEY_MAX)], id="gap"),
        pytest.param([Shard("a", 0, 10), Shard("b", 10, HASH_KEY_MAX)], id="overlap"),
        pytest.param([Shard("a", 0, 10)], id="uncovered"),
        pytest.param([Shard("a", 1, HASH_KEY_MAX)], id="not-from-zero"),
        pytest.param([], id="no-open-shard"),
    ],
)
def test_open_shards_must_tile_the_hash_key_space(shards: list[Shard]) -> None:
    with pytest.raises(ShardMapError):
        ShardMap(shards)


def test_a_map_routes_like_another_with_the_same_open_shards() -> None:
    assert ShardMap(even_shards(3)).routes_like(ShardMap(even_shards(3)))
    assert not ShardMap(even_shards(3)).routes_like(ShardMap(even_shards(4)))
    assert not ShardMap(even_shards(3)).routes_like(None)
