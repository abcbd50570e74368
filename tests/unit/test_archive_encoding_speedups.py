"""The faster archive write and scan say exactly what the code before them said: checked against
the copy of that code the benchmarks keep (load_tests/legacy_archive.py)."""

from __future__ import annotations

import gzip
import zlib
from base64 import b64encode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from load_tests import legacy_archive
from load_tests.bench_aggregator import order_payloads
from salesstream.core.archive import ArchivedRecord, encode_object, read_object
from salesstream.core.kpl import aggregate, compress
from salesstream.core.recompute import Sighting, decode_sightings, encode_sighting, partition_of, route
from salesstream.core.sharding import HASH_KEY_MAX, Shard

SHARD = Shard("shardId-000000000003", 0, HASH_KEY_MAX)
EVENTS = order_payloads(400, seed=3)


def records(*, compressed: bool) -> list[ArchivedRecord]:
    kept = []
    for n, start in enumerate(range(0, len(EVENTS), 100)):
        data = aggregate([("store-1", event) for event in EVENTS[start : start + 100]], "7")
        if compressed:
            data = compress(data, 1)
        kept.append(ArchivedRecord(str(n + 1), 1_795_428_000.125 + n, "store-1", b64encode(data).decode()))
    # a record Lambda sent as no base64 at all, with a masked card number and a quote in its key
    kept.append(ArchivedRecord("99", 1_795_428_009.5, 'k"ey', 'not base64: "é" \\ \x01', (0,)))
    return kept


def strategy_of(body: bytes) -> str:
    """What the deflate stream used: Huffman-only blocks never hold a back-reference, so the
    stream re-deflated with Huffman only at the same level comes out identical."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31, 8, zlib.Z_HUFFMAN_ONLY)
    return "huffman" if packer.compress(gzip.decompress(body)) + packer.flush() == body else "default"


def test_plain_aggregates_are_archived_byte_for_byte_as_before() -> None:
    plain = records(compressed=False)
    assert encode_object(SHARD, plain) == legacy_archive.encode_object(SHARD, plain)
    assert strategy_of(encode_object(SHARD, plain)) == "default"


def test_compressed_envelopes_are_archived_with_huffman_coding_alone_and_read_back_alike() -> None:
    enveloped = records(compressed=True)
    body, before = encode_object(SHARD, enveloped), legacy_archive.encode_object(SHARD, enveloped)
    assert gzip.decompress(body) == gzip.decompress(before)  # the same lines
    assert read_object(body) == read_object(before) == legacy_archive.read_object(body)
    assert read_object(body).records == enveloped
    assert strategy_of(body) == "huffman"
    assert len(body) <= len(before)  # no repeats to find in base64 of deflated bytes
    assert body == encode_object(SHARD, list(enveloped))  # deterministic


sightings = st.lists(
    st.tuples(
        st.text("abcdef0123-", min_size=1, max_size=12),
        st.integers(0, 2**45),
        st.sampled_from(["shardId-000000000000", "shardId-000000000007"]),
        st.integers(0, 10**30).map(str),
        st.integers(0, 500),
        st.tuples(
            st.tuples(
                st.sampled_from(["store-1", "store-22"]),
                st.sampled_from(["EUR", "JPY"]),
                st.integers(1, 800_000),
            ),
            st.booleans(),
            st.integers(-(10**12), 10**12),
        ),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(sightings, st.integers(1, 9), st.integers(0, 2**45))
def test_the_scan_routes_each_sighting_before_the_horizon_as_before(
    seen: list[Sighting], partitions: int, horizon_ms: int
) -> None:
    mine: list[list[str]] = [[] for _ in range(partitions)]
    theirs: list[list[str]] = [[] for _ in range(partitions)]
    routed = route(seen, horizon_ms, mine)
    assert routed == legacy_archive.route(seen, horizon_ms, theirs)
    assert mine == theirs
    expected: list[list[str]] = [[] for _ in range(partitions)]
    for sighting in seen:
        if sighting[1] < horizon_ms:
            expected[partition_of(sighting[0], partitions)].append(encode_sighting(sighting))
    assert mine == expected
    assert routed == sum(1 for sighting in seen if sighting[1] < horizon_ms)


@settings(max_examples=200, deadline=None)
@given(sightings)
def test_sighting_lines_decode_as_before(seen: list[Sighting]) -> None:
    text = "".join(map(legacy_archive.encode_sighting, seen))
    assert "".join(map(encode_sighting, seen)) == text
    assert list(decode_sightings(text)) == list(legacy_archive.decode_sightings(text)) == seen


def test_a_line_that_is_not_a_sighting_is_refused_by_name() -> None:
    nine_fields = "\t".join("123456789") + "\n"
    with pytest.raises(ValueError, match=r"^not a sighting line: "):
        list(decode_sightings(nine_fields))
