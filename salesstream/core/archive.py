"""The event archive's format: one gzip JSON-lines object per archiver invocation, holding the
invocation's Kinesis records as received (as Kinesis Data Firehose keeps a stream), not decoded.

Key, partitioned by arrival hour (UTC) as Firehose writes it:

    archive/YYYY/MM/DD/HH/<shardId>-<first sequence number>-<last sequence number>.jsonl.gz

The hour is the arrival of the batch's first record; the sequence numbers (zero-padded to 60
digits) are the batch's first and last Kinesis record. A replayed invocation therefore writes
the same key, and, gzip's header time fixed at 0, the same bytes.

The first line is the header: the format and the shard with its hash key range (as it was when
the records were archived):

    {"format":"kinesis-records/1","shard":"shardId-000000000000","hash_range":["0","1701..."]}

Then one line per Kinesis record, in stream order, its fields exactly as the Lambda event
carried them: `data` is the event's base64 text (no decode, no re-encode: the batch layer hands
the very same string to the shared decoder, salesstream/core/records.py `decode_records`), `arrival`
the `approximateArrivalTimestamp` (JSON round-trips a float exactly):

    {"sequence_number":"4959...","arrival":1795428001.234,"partition_key":"store-1","data":"84ma..."}

A KPL aggregate is one line however many user records it holds: the archiver's work is per byte,
never per event. Whether a user record is accepted or refused is decided when the
archive is read, by the aggregator's own pipeline, so both layers judge the same bytes alike.

Card numbers (docs/reliability.md B7): no producer of ours sends one, but a rogue writer can. A record
whose bytes or partition key hold one is masked before it is stored (`screen`): the card digits
become '#', and the line names the masked user records (`"masked":[2]`), which the batch layer
refuses as the aggregator did (reason card_number). A masked aggregate is written again with the
same user records, keys and order (its MD5 trailer recomputed), so the others still decode alike.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

# aws-kinesis-agg's generated modules need its aggregator imported first (see salesstream/core/kpl.py)
import aws_kinesis_agg.aggregator  # noqa: F401
from aws_kinesis_agg import MAGIC, messages_pb2

from salesstream.core.cards import (
    contains_card_number,
    may_hold_card_number,
    redact_card_numbers,
    redact_framed,
)
from salesstream.core.kpl import (
    GZIP_MAGIC,
    BrokenAggregate,
    UserRecord,
    deaggregate,
    is_aggregated,
    is_compressed,
    payloads,
    unwrap,
)
from salesstream.core.positions import sequence_key
from salesstream.core.sharding import Shard

ARCHIVE_PREFIX: Final = "archive/"
FORMAT: Final = "kinesis-records/1"
_SUFFIX: Final = ".jsonl.gz"
_HOUR_MS: Final = 3_600_000
# gzip level 1: half the CPU of level 6 on base64 text for ~20% more bytes (load_tests/bench_archiver.py);
# the archiver's CPU is what limits the stream's throughput, S3 storage is cheap
_LEVEL: Final = 1
_BASE64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_GZIP_WBITS: Final = 31  # zlib's gzip container: header (time 0) and CRC-32 trailer
_ENVELOPE_BASE64: Final = base64.b64encode(GZIP_MAGIC).decode()  # how a compressed envelope's text starts


class ArchiveFormatError(ValueError):
    """An archive object, key or line that this format did not write."""


@dataclass(frozen=True, slots=True)
class ArchivedRecord:
    """One Kinesis record as the Lambda event carried it."""

    sequence_number: str
    arrival: float  # approximateArrivalTimestamp, epoch seconds
    partition_key: str
    data: str  # base64, as received (masked when it held a card number)
    masked: tuple[int, ...] = ()  # sub-sequence numbers whose card numbers were masked


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    shard: Shard  # the shard the records were read from, with its hash key range then
    records: list[ArchivedRecord]


# --- keys -------------------------------------------------------------------------------------


def hour_prefix(arrival_ms: int) -> str:
    moment = datetime.fromtimestamp(arrival_ms / 1000, tz=UTC)
    return f"{ARCHIVE_PREFIX}{moment:%Y/%m/%d/%H}/"


def archive_key(shard_id: str, first_arrival_ms: int, first_sequence: str, last_sequence: str) -> str:
    return (
        f"{hour_prefix(first_arrival_ms)}{shard_id}-{sequence_key(first_sequence)}-"
        f"{sequence_key(last_sequence)}{_SUFFIX}"
    )


@dataclass(frozen=True, slots=True)
class ArchiveKey:
    """What a key says without reading the object."""

    key: str
    hour_start_ms: int
    shard_id: str
    first_sequence: str
    last_sequence: str

    @classmethod
    def parse(cls, key: str) -> ArchiveKey:
        try:
            hour, name = key.removeprefix(ARCHIVE_PREFIX).rsplit("/", 1)
            moment = datetime.strptime(hour, "%Y/%m/%d/%H").replace(tzinfo=UTC)
            shard_id, first, last = name.removesuffix(_SUFFIX).rsplit("-", 2)
            first_sequence, last_sequence = str(int(first)), str(int(last))
        except ValueError as error:
            raise ArchiveFormatError(f"not an archive key: {key!r}") from error
        return cls(key, round(moment.timestamp() * 1000), shard_id, first_sequence, last_sequence)

    @property
    def hour_end_ms(self) -> int:
        return self.hour_start_ms + _HOUR_MS


# --- writing ----------------------------------------------------------------------------------


def header_line(shard: Shard) -> bytes:
    hash_range = [str(shard.starting_hash_key), str(shard.ending_hash_key)]
    return json.dumps(
        {"format": FORMAT, "shard": shard.shard_id, "hash_range": hash_range}, separators=(",", ":")
    ).encode()


def record_line(record: ArchivedRecord) -> tuple[bytes, bytes, bytes]:
    """A record's line (with its newline) in three pieces, the data (the bulk) among them as it
    is: `encode_object` joins every piece of the object at once, so the data is copied once."""
    sequence, key = json.dumps(record.sequence_number), json.dumps(record.partition_key)
    data = record.data.encode("utf-8", errors="surrogatepass")
    # base64 text needs no JSON escaping: skip the encoder's char-by-char scan of the bulk (C-speed
    # check); anything else (a record Lambda sent as non-base64) goes through json.dumps
    if data.translate(None, _BASE64_ALPHABET):
        data = json.dumps(record.data)[1:-1].encode()
    masked = f',"masked":{json.dumps(list(record.masked))}' if record.masked else ""
    arrival = json.dumps(record.arrival)
    head = f'{{"sequence_number":{sequence},"arrival":{arrival},"partition_key":{key},"data":"'
    return head.encode(), data, f'"{masked}}}\n'.encode()


def encode_object(shard: Shard, records: Iterable[ArchivedRecord]) -> bytes:
    """The object's bytes: deterministic for the same records (gzip header time 0)."""
    kept = list(records)
    text = b"".join([header_line(shard), b"\n", *(part for r in kept for part in record_line(r))])
    # memory level 8: zlib's default, as gzip.compress uses (plain aggregates: the same bytes as it)
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, _GZIP_WBITS, 8, _strategy(kept))
    return packer.compress(text) + packer.flush()


def _strategy(records: list[ArchivedRecord]) -> int:
    """Base64 of compressed envelopes (what the producer sends) holds no repeats for LZ77 to find:
    Huffman coding alone makes it as small (~0.75 of the text) for a quarter of the CPU. Anything
    else (plain aggregates: JSON in base64, ~0.12 with matches) is worth the search
    (load_tests/bench_archiver.py measures both)."""
    enveloped = sum(len(r.data) for r in records if r.data.startswith(_ENVELOPE_BASE64))
    whole = sum(len(r.data) for r in records)
    return zlib.Z_HUFFMAN_ONLY if 2 * enveloped > whole else zlib.Z_DEFAULT_STRATEGY


def screen(sequence_number: str, arrival: float, partition_key: str, data: str) -> ArchivedRecord:
    """The record to archive: as received, unless its bytes or partition key hold a card number.

    One card scan over each record's bytes (C-speed pre-filter; the aggregator runs the same scan
    over a whole aggregate): O(bytes), no de-aggregation unless a card number is found. Only user
    records whose own bytes held one are named masked (the aggregator refuses exactly those)."""
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error:
        raw = None  # refused whole when read, as by the aggregator: screen the text itself
    if raw is not None and is_compressed(raw):
        # compressed bytes hide card numbers: scan (and mask) what is inside. A broken envelope is
        # refused whole when read (the aggregator quarantines it): its bytes are scanned as they are
        with contextlib.suppress(BrokenAggregate):
            raw = unwrap(raw)
    text = data.encode() if raw is None else raw
    card_in_key = contains_card_number(partition_key.encode())
    # an aggregate's framing bytes may sit against a payload's digits: the conservative scan there,
    # then the exact one per user record (what the aggregator refuses)
    framed = raw is not None and is_aggregated(raw)
    suspect = may_hold_card_number(text) if framed else contains_card_number(text)
    if not card_in_key and not suspect:
        return ArchivedRecord(sequence_number, arrival, partition_key, data)
    masked: tuple[int, ...]
    if raw is None:
        masked_data, masked = _mask_text(data), ((0,) if contains_card_number(text) else ())
    else:
        masked_raw, masked = _masked(raw, partition_key)
        if masked_raw is raw and not card_in_key:
            return ArchivedRecord(sequence_number, arrival, partition_key, data)  # a false alarm
        # a compressed aggregate is stored masked and decompressed: the batch layer reads both
        masked_data = binascii.b2a_base64(masked_raw, newline=False).decode()
    return ArchivedRecord(sequence_number, arrival, _mask_text(partition_key), masked_data, masked)


def _mask_text(text: str) -> str:
    return redact_card_numbers(text.encode()).decode("utf-8", errors="replace")


def _masked(raw: bytes, partition_key: str) -> tuple[bytes, tuple[int, ...]]:
    """The record's bytes with every card number masked, and the user records that held one;
    `raw` itself when none did."""
    if not is_aggregated(raw):
        return (redact_card_numbers(raw), (0,)) if contains_card_number(raw) else (raw, ())
    try:
        users = deaggregate(raw, partition_key)
    except BrokenAggregate:
        # refused whole when read (the masking breaks its checksum if nothing else did); its
        # framing cannot be trusted, so every digit stretch that may hold a number is masked
        return redact_framed(raw), ((0,) if contains_card_number(raw) else ())
    masked = tuple(user.subsequence for user in users if contains_card_number(user.data))
    if not masked and not any(contains_card_number(user.partition_key.encode()) for user in users):
        return raw, ()
    return _aggregate_again(users), masked


def _aggregate_again(users: list[UserRecord]) -> bytes:
    """The same user records, keys and order with card numbers masked: a KPL aggregate again."""
    message = messages_pb2.AggregatedRecord()
    partition_keys: dict[str, int] = {}
    hash_keys: dict[str, int] = {}
    for user in users:
        entry = message.records.add(data=redact_card_numbers(user.data))
        key = _mask_text(user.partition_key)
        entry.partition_key_index = partition_keys.setdefault(key, len(partition_keys))
        if user.explicit_hash_key is not None:
            entry.explicit_hash_key_index = hash_keys.setdefault(user.explicit_hash_key, len(hash_keys))
    message.partition_key_table.extend(partition_keys)
    message.explicit_hash_key_table.extend(hash_keys)
    body = message.SerializeToString()
    return MAGIC + body + hashlib.md5(body).digest()  # noqa: S324 - the KPL format's checksum


# --- reading ----------------------------------------------------------------------------------


def read_object(data: bytes, key: str = "") -> ArchivedObject:
    """An object's shard and records; raises ArchiveFormatError for anything else."""
    lines = gzip.decompress(data).splitlines()
    try:
        header = json.loads(lines[0])
        if header.get("format") != FORMAT:
            raise ValueError(f"format {header.get('format')!r}")
        start, end = header["hash_range"]
        shard = Shard(header["shard"], int(start), int(end))
        records = [_record(json.loads(line)) for line in lines[1:] if line]
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise ArchiveFormatError(f"not an archive object of {FORMAT}: {key!r} ({error})") from error
    return ArchivedObject(shard, records)


def _record(document: dict[str, object]) -> ArchivedRecord:
    sequence, arrival, key, data = (
        document["sequence_number"],
        document["arrival"],
        document["partition_key"],
        document["data"],
    )
    masked = document.get("masked", [])
    if not (
        isinstance(sequence, str)
        and isinstance(arrival, int | float)
        and isinstance(key, str)
        and isinstance(data, str)
        and isinstance(masked, list)
    ):
        raise TypeError("a record line with a field of the wrong type")
    return ArchivedRecord(sequence, float(arrival), key, data, tuple(int(m) for m in masked))


def stored_payloads(data: bytes) -> Iterator[bytes]:
    """Every payload an archive object holds, decoded: the object's text, each record's bytes
    and each of its user records (what a data-protection scan must look at: base64 hides text)."""
    yield gzip.decompress(data)
    for record in read_object(data).records:
        try:
            raw = binascii.a2b_base64(record.data, strict_mode=True)
        except binascii.Error:
            continue  # not base64: the object's text above holds it as it is
        yield raw
        try:
            users = payloads(raw)
        except BrokenAggregate:
            continue  # refused whole: its bytes were scanned above
        yield from (user for user in users if user is not None)
