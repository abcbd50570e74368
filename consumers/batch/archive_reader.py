"""The archive read back: each object's Kinesis records decoded by the aggregator's own pipeline
(salesstream/core/records.py `decode_records`), as sightings for the recompute
(salesstream/core/recompute.py).

The archive holds the records as received (salesstream/core/archive.py), so the batch layer
judges the very bytes the aggregator judged, with the same code:
- an accepted user record is a sighting: event id, arrival, position, effect;
- a refused one (malformed, a card number, ...) is not: the aggregator quarantined it with its
  reason; here it is counted per reason, which the reconciliation shows beside the quarantine's.
Every user record counts on the shard it was archived from, whatever its keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from salesstream.core.aggregation import effect_of
from salesstream.core.archive import ArchivedRecord, read_object
from salesstream.core.lambda_events import KinesisEventRecord, KinesisPayload
from salesstream.core.reasons import Reason
from salesstream.core.recompute import Sighting
from salesstream.core.records import decode_records


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
        if masked and (index, subsequence) in masked:
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
