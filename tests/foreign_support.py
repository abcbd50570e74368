"""A point-of-sale vendor who never saw our producer: its events, its ways of writing them into
Kinesis with plain boto3, and an independent tally of what it sold.

The events are built as plain JSON (never through the contract's models) with real-world
identifiers: UUID v4 event ids, store-prefixed hex order ids (`S038-2b8f0162c9`), EAN-13 SKUs
from a small GTIN generator (GS1 prefixes 400-440, German suppliers). The tally is summed here
from the same numbers, in integer minor units, once per event id: what the pipeline's totals
must equal to the cent.

The writers:
- `RecordAggregator` of aws-kinesis-agg, used the library's default way: one aggregator for all
  stores (partition keys mixed inside an aggregate) and no explicit hash key, so Kinesis places
  each aggregate by its first user record's key; or with an explicit hash key per aggregate;
- plain PutRecords, one event per record;
- `spec_aggregate`: the aggregated format written by hand from its specification
  (awslabs/amazon-kinesis-producer aggregation-format.md), as another language's library does,
  without the protobuf runtime: see `tests/events/kpl_spec_vectors.json`.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aws_kinesis_agg.aggregator import RecordAggregator

from salesstream.core.aggregation import Totals

KPL_MAGIC: Final = bytes([0xF3, 0x89, 0x9A, 0xC2])  # aggregation-format.md: "the magic number"
CURRENCIES: Final = {"EUR": 2, "JPY": 0, "USD": 2, "KWD": 3}  # a few ISO 4217 codes, minor digits


def gtin13(rng: random.Random, prefix: int | None = None) -> str:
    """A valid EAN-13: a GS1 prefix, random digits, the mod-10 check digit (weights 1, 3)."""
    head = f"{prefix if prefix is not None else rng.randint(400, 440):03d}"
    body = head + "".join(str(rng.randrange(10)) for _ in range(9))
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def is_valid_gtin13(code: str) -> bool:
    return (
        len(code) == 13
        and code.isdigit()
        and sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(code)) % 10 == 0
    )


@dataclass
class ForeignPOS:
    """A vendor's fleet: `stores` shops, seeded. Its events are never screened here: every one of
    them is a real sale the pipeline must count (random valid EAN-13 SKUs, UUID event ids)."""

    stores: int = 12
    seed: int = 38
    start: datetime = field(default_factory=lambda: datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    rng: random.Random = field(init=False)
    _made: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def store_id(self, number: int) -> str:
        return f"S{number:03d}"

    def event(self, *, refund: bool = False, store: int | None = None) -> dict[str, Any]:
        return self._candidate(refund=refund, store=store)

    def events(self, count: int, *, refund_share: float = 0.1) -> list[dict[str, Any]]:
        return [self.event(refund=self.rng.random() < refund_share) for _ in range(count)]

    def _candidate(self, *, refund: bool, store: int | None) -> dict[str, Any]:
        rng = self.rng
        self._made += 1
        number = store if store is not None else rng.randrange(1, self.stores + 1)
        currency = sorted(CURRENCIES)[number % len(CURRENCIES)]
        lines: list[dict[str, Any]] = [
            {"sku": gtin13(rng), "quantity": rng.randint(1, 4), "unit_price_minor": rng.randint(50, 25_000)}
            for _ in range(rng.randint(1, 5))
        ]
        occurred = self.start + timedelta(seconds=self._made)
        return {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event_type": "order_refunded" if refund else "order_placed",
            "order_id": f"{self.store_id(number)}-{rng.getrandbits(40):010x}",
            "store_id": self.store_id(number),
            "terminal_id": f"{self.store_id(number)}-T{rng.randint(1, 4)}",
            "occurred_at": occurred.isoformat(),
            "currency": currency,
            "lines": lines,
            "total_minor": sum(line["quantity"] * line["unit_price_minor"] for line in lines),
        }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def tally(events: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Totals]:
    """(store, currency) -> totals over the distinct event ids, summed from the lines here."""
    distinct: dict[str, dict[str, Any]] = {}
    for event in events:
        distinct.setdefault(event["event_id"], event)
    totals: dict[tuple[str, str], Totals] = {}
    for event in distinct.values():
        amount = sum(line["quantity"] * line["unit_price_minor"] for line in event["lines"])
        one = (
            Totals(refunds=1, refunds_minor=amount)
            if event["event_type"] == "order_refunded"
            else Totals(orders=1, gross_minor=amount)
        )
        key = (event["store_id"], event["currency"])
        totals[key] = totals.get(key, Totals()) + one
    return totals


# --- writing --------------------------------------------------------------------------------------

Entry = dict[str, Any]  # one PutRecords entry


def agg_entries(
    events: Sequence[dict[str, Any]],
    *,
    per_aggregate: int = 25,
    explicit_hash_key: Callable[[int], str | None] = lambda _: None,
) -> list[Entry]:
    """aws-kinesis-agg's RecordAggregator, one for every store: partition keys mixed in each
    aggregate; the aggregate's explicit hash key (None: the library sets none) per aggregate."""
    aggregator = RecordAggregator()
    entries: list[Entry] = []

    def emit() -> None:
        record = aggregator.clear_and_get()
        if record is not None:
            partition_key, _, data = record.get_contents()
            entry: Entry = {"PartitionKey": _text(partition_key), "Data": data}
            key = explicit_hash_key(len(entries))
            if key is not None:
                entry["ExplicitHashKey"] = key
            entries.append(entry)

    for index, event in enumerate(events):
        assert aggregator.add_user_record(event["store_id"], encode(event)) is None  # never full here
        if (index + 1) % per_aggregate == 0:
            emit()
    emit()
    return entries


def plain_entries(events: Sequence[dict[str, Any]]) -> list[Entry]:
    return [{"PartitionKey": event["store_id"], "Data": encode(event)} for event in events]


def put(kinesis: Any, stream: str, entries: Sequence[Entry]) -> list[str]:
    """PutRecords in calls of up to 500 entries; returns the shard each entry landed on."""
    landed: list[str] = []
    for start in range(0, len(entries), 500):
        answer = kinesis.put_records(StreamName=stream, Records=list(entries[start : start + 500]))
        assert answer["FailedRecordCount"] == 0  # moto never throttles
        landed += [result["ShardId"] for result in answer["Records"]]
    return landed


def _text(key: str | bytes) -> str:
    return key.decode() if isinstance(key, bytes) else key


# --- the format by hand, from its specification ---------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def spec_aggregate(
    records: Sequence[tuple[str, str | None, bytes]],
    *,
    shared_tables: bool = True,
    tags: Sequence[tuple[str, str | None]] = (),
    records_first: bool = False,
) -> bytes:
    """MAGIC + AggregatedRecord + MD5, encoded field by field as aggregation-format.md lays it
    out. `shared_tables=False` stores every record's keys as their own table entries (the spec
    allows it); `tags` go on every record (in the schema, unused by the KPL); `records_first`
    writes the records before the key tables (any field order is valid protobuf)."""
    partition_keys: list[str] = []
    hash_keys: list[str] = []
    body_records = b""

    def index_of(table: list[str], key: str) -> int:
        if shared_tables and key in table:
            return table.index(key)
        table.append(key)
        return len(table) - 1

    for partition_key, hash_key, data in records:
        record = _varint(1 << 3 | 0) + _varint(index_of(partition_keys, partition_key))
        if hash_key is not None:
            record += _varint(2 << 3 | 0) + _varint(index_of(hash_keys, hash_key))
        record += _field(3, data)
        for key, value in tags:
            record += _field(
                4, _field(1, key.encode()) + (b"" if value is None else _field(2, value.encode()))
            )
        body_records += _field(3, record)
    tables = b"".join(_field(1, k.encode()) for k in partition_keys) + b"".join(
        _field(2, k.encode()) for k in hash_keys
    )
    body = body_records + tables if records_first else tables + body_records
    return KPL_MAGIC + body + hashlib.md5(body).digest()  # noqa: S324 - the format's checksum
