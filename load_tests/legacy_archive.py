"""BASELINE ONLY: the archive write and the batch recompute as they were before they were made
faster (salesstream/core/archive.py, salesstream/core/recompute.py and
consumers/batch/archive_reader.py today). Kept unchanged so load_tests/bench_archiver.py and
load_tests/bench_snapshot.py can measure today's path against it in the same run; nothing in the
pipeline imports it. What did not change (the card screen, the shared decode, the judgement of
one event id, the speed layer's reducer) is imported from the live code.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from salesstream.core.aggregation import Effect, WindowState, effect_of, fold_all, result
from salesstream.core.archive import (
    FORMAT,
    ArchivedObject,
    ArchivedRecord,
    ArchiveFormatError,
    archive_key,
    header_line,
    screen,
)
from salesstream.core.lambda_events import KinesisEventRecord, KinesisPayload
from salesstream.core.reasons import Reason
from salesstream.core.recompute import PartitionResult, Sighting, finding_of, judge
from salesstream.core.records import decode_records
from salesstream.core.sharding import Shard
from salesstream.core.windows import to_millis

_LEVEL: Final = 1
_BASE64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_FIELDS: Final = 10


def record_line(record: ArchivedRecord) -> bytes:
    sequence, key = json.dumps(record.sequence_number), json.dumps(record.partition_key)
    # base64 text needs no JSON escaping: skip the encoder's char-by-char scan of the bulk (C-speed
    # check); anything else (a record Lambda sent as non-base64) goes through json.dumps
    encoded = record.data.encode("utf-8", errors="surrogatepass")
    data = record.data if not encoded.translate(None, _BASE64_ALPHABET) else json.dumps(record.data)[1:-1]
    masked = f',"masked":{json.dumps(list(record.masked))}' if record.masked else ""
    return (
        f'{{"sequence_number":{sequence},"arrival":{json.dumps(record.arrival)},'
        f'"partition_key":{key},"data":"{data}"{masked}}}'
    ).encode()


def encode_object(shard: Shard, records: Iterable[ArchivedRecord]) -> bytes:
    """The object's bytes: deterministic for the same records (gzip header time 0)."""
    lines = [header_line(shard), *map(record_line, records)]
    return gzip.compress(b"\n".join(lines) + b"\n", compresslevel=_LEVEL, mtime=0)


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


@dataclass
class ReadBack:
    """One archive object, decoded."""

    shard_id: str
    records: int = 0  # Kinesis records
    sightings: list[Sighting] = field(default_factory=list)  # the accepted user records
    refused: list[tuple[int, str]] = field(default_factory=list)  # (arrival ms, reason code)

    def counts(self, horizon_ms: int) -> Counter[str]:
        """The snapshot's counters for this object; only user records before the horizon are
        judged, refused ones by reason (the aggregator quarantined them: not counted)."""
        counts: Counter[str] = Counter(archive_records=self.records)
        counts["user_records"] = len(self.sightings) + len(self.refused)
        counts["user_records_after_horizon"] = sum(1 for arrival in self._arrivals() if arrival >= horizon_ms)
        for arrival, reason in self.refused:
            if arrival < horizon_ms:
                counts.update(("refused", f"refused_{reason}"))
        return counts

    def _arrivals(self) -> Iterator[int]:
        yield from (sighting[1] for sighting in self.sightings)
        yield from (arrival for arrival, _ in self.refused)


def read_back(body: bytes, key: str = "") -> ReadBack:
    archived = read_object(body, key)
    shard_id = archived.shard.shard_id
    records = [_event_record(shard_id, record) for record in archived.records]
    batch = decode_records(records)
    infos = batch.records
    # the archiver masked these user records' card numbers: the aggregator refused them
    masked = {(index, sub) for index, record in enumerate(archived.records) for sub in record.masked}
    read = ReadBack(shard_id, len(records))
    for event, _, index, subsequence in batch.accepted:
        info = infos[index]
        if (index, subsequence) in masked:
            read.refused.append((info.arrival_ms, Reason.CARD_NUMBER.value))
            continue
        read.sightings.append(
            (
                event["event_id"],
                info.arrival_ms,
                shard_id,
                info.sequence_number,
                subsequence,
                effect_of(event),
            )
        )
    for refusal in batch.refused:
        reason = Reason.CARD_NUMBER if (refusal.record, refusal.subsequence) in masked else refusal.reason
        read.refused.append((infos[refusal.record].arrival_ms, reason.value))
    return read


def _event_record(shard_id: str, record: ArchivedRecord) -> KinesisEventRecord:
    """The record as the Lambda event carried it: the four fields the decoder reads (typed by the
    archive's reader, so not validated again) and its event id; the mapping's fields are not
    kept (the decoder never reads them)."""
    payload = KinesisPayload.model_construct(
        partitionKey=record.partition_key,
        sequenceNumber=record.sequence_number,
        data=record.data,
        approximateArrivalTimestamp=record.arrival,
    )
    return KinesisEventRecord.model_construct(
        kinesis=payload,
        eventID=f"{shard_id}:{record.sequence_number}",
        invokeIdentityArn="",
        awsRegion="",
        eventSourceARN="",
    )


def partition_of(event_id: str, partitions: int) -> int:
    """Stable across processes (Python's own str hash is salted per process)."""
    return zlib.crc32(event_id.encode()) % partitions


def encode_sighting(sighting: Sighting) -> str:
    event_id, arrival, shard, sequence, subsequence, effect = sighting
    (store, currency, day), refund, amount = effect
    position = f"{event_id}\t{arrival}\t{shard}\t{sequence}\t{subsequence}"
    return f"{position}\t{store}\t{currency}\t{day}\t{int(refund)}\t{amount}\n"


def decode_sightings(text: str) -> Iterator[Sighting]:
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != _FIELDS:
            raise ValueError(f"not a sighting line: {line[:80]!r}")
        event_id, arrival, shard, sequence, subsequence, store, currency, day, refund, amount = parts
        effect: Effect = ((store, currency, int(day)), refund == "1", int(amount))
        yield event_id, int(arrival), shard, sequence, int(subsequence), effect


def reduce_partition(
    sightings: Iterable[Sighting], *, window_ms: int, dedup_horizon_ms: int
) -> PartitionResult:
    """Judge every event id of a partition and fold the counted sightings, per (shard, window),
    through the speed layer's reducer."""
    grouped: dict[str, Sighting | list[Sighting]] = {}
    for sighting in sightings:
        event_id = sighting[0]
        seen = grouped.get(event_id)
        if seen is None:
            grouped[event_id] = sighting  # most ids are seen once: no list for them
        elif isinstance(seen, list):
            seen.append(sighting)
        else:
            grouped[event_id] = [seen, sighting]

    effects: dict[tuple[str, int], list[Effect]] = {}
    outcome = PartitionResult()
    counts = dict.fromkeys(
        (
            "events",
            "duplicates",
            "conflicts",
            "replays",
            "late_resends",
            "copies_on_other_shards",
        ),
        0,
    )
    for event_id, seen in grouped.items():
        if not isinstance(seen, list):
            arrival = seen[1]
            effects.setdefault((seen[2], arrival - arrival % window_ms), []).append(seen[5])
            counts["events"] += 1
            continue
        verdict = judge(event_id, seen, dedup_horizon_ms)
        _, arrival, shard, _, _, effect = verdict.counted
        effects.setdefault((shard, arrival - arrival % window_ms), []).append(effect)
        counts["events"] += 1
        counts["replays"] += verdict.replays
        counts["duplicates"] += verdict.duplicates
        counts["conflicts"] += verdict.conflicts
        counts["late_resends"] += len(verdict.late_resends)
        counts["copies_on_other_shards"] += sum(1 for s in verdict.sightings if s[2] != shard)
        if not verdict.is_plain:
            outcome.findings.append(finding_of(verdict, window_ms))
    outcome.counts = counts
    for (shard, window_start), window_effects in effects.items():
        state = fold_all(WindowState(), window_effects)
        for (store, day, currency), totals in result(state).by_store_day.items():
            outcome.rows[(shard, window_start, store, currency, day)] = [
                totals.orders,
                totals.refunds,
                totals.gross_minor,
                totals.refunds_minor,
            ]
    return outcome


def route(sightings: Iterable[Sighting], horizon_ms: int, buffers: list[list[str]]) -> int:
    """The snapshot scan's loop over one object's sightings (consumers/batch/snapshot.py)."""
    routed = 0
    for sighting in sightings:
        if sighting[1] < horizon_ms:
            buffers[partition_of(sighting[0], len(buffers))].append(encode_sighting(sighting))
            routed += 1
    return routed


def archive_object(shard: Shard, records: list[KinesisEventRecord]) -> tuple[str, int, bytes]:
    """consumers/archive/archive.py's `archive_object` on the encoding above: key, masked, bytes."""
    received = [record.kinesis for record in records]
    kept = [screen(k.sequenceNumber, k.approximateArrivalTimestamp, k.partitionKey, k.data) for k in received]
    masked = sum(
        1
        for k, r in zip(kept, received, strict=True)
        if (k.data, k.partition_key) != (r.data, r.partitionKey)
    )
    first, last = received[0], received[-1]
    key = archive_key(
        shard.shard_id,
        to_millis(first.approximateArrivalTimestamp),
        first.sequenceNumber,
        last.sequenceNumber,
    )
    return key, masked, encode_object(shard, kept)
