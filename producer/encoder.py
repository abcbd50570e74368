"""Raw events in, PutRecords entries out: validate, route to the destination shard, aggregate.

No network here: the shard map is handed in, so the whole encode path runs (and is benchmarked)
offline. Aggregation on: one `AggregateBuilder` per open shard, each user record routed by the
MD5 of its partition key (its store), and with `compression` every aggregate sent in a compressed
envelope (one running compression ratio for all shards). Aggregation off: one entry per event,
never compressed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from producer.aggregation import (
    PAYLOAD_UNIT_BYTES,
    Accepted,
    AggregateBuilder,
    Compression,
    Entry,
    plain_entry,
)
from salesstream.core.contract import OrderEvent, screen, screen_many
from salesstream.core.reasons import RejectedEvent
from salesstream.core.wire import REFUND, decode_event

if TYPE_CHECKING:
    from producer.shards import ShardMap

# An Accepted without NamedTuple's Python-level __new__ (one frame less per event).
_new_accepted = tuple.__new__


def accept(raw: bytes, *, screened: bool = False) -> Accepted:
    """The contract's checks (size cap, card scan, strict schema, total) or `RejectedEvent`;
    `screened` when the size cap and card scan already ran over a whole chunk (`screen_many`).
    The one place the producer validates bytes: the contract compiled for the hot paths
    (`salesstream.core.wire`), which gives the verdict and reason of `OrderEvent` itself."""
    event = decode_event(raw, screened=screened)
    return _new_accepted(
        Accepted,
        (raw, event.event_id, event.store_id, event.currency, event.event_type == REFUND, event.total_minor),
    )


def accept_model(event: OrderEvent) -> Accepted:
    """An `OrderEvent` the caller built is valid already (pydantic checked it when it was made):
    only its bytes are screened (size cap, card scan), never validated a second time."""
    raw = event.to_json_bytes()
    screen(raw)
    return Accepted(raw, event.event_id, event.store_id, event.currency, event.is_refund, event.total_minor)


def accept_many(
    events: Sequence[bytes | OrderEvent],
) -> tuple[list[Accepted], list[tuple[int, RejectedEvent]]]:
    """`accept` (bytes) or `accept_model` (an `OrderEvent`) over a chunk: the size cap and the
    card scan run once over all the bytes when they are clean (one by one otherwise, to name the
    bad ones). Returns the accepted events, in order, and (position, refusal) for each refused one."""
    screened = screen_many([event for event in events if not isinstance(event, OrderEvent)])
    accepted: list[Accepted] = []
    refused: list[tuple[int, RejectedEvent]] = []
    keep = accepted.append
    for index, event in enumerate(events):
        try:
            keep(accept_model(event) if isinstance(event, OrderEvent) else accept(event, screened=screened))
        except RejectedEvent as refusal:
            refused.append((index, refusal))
    return accepted, refused


class Encoder:
    def __init__(
        self,
        *,
        aggregate: bool = True,
        unit_bytes: int = PAYLOAD_UNIT_BYTES,
        compression: Compression | None = None,
    ) -> None:
        self.aggregate = aggregate
        self._unit_bytes = unit_bytes
        self.compression = compression if aggregate else None
        self.shard_map: ShardMap | None = None
        self._builders: dict[str, AggregateBuilder] = {}  # by partition key: one lookup per event
        self._by_shard: dict[str, AggregateBuilder] = {}
        self._unrouted: list[Accepted] = []  # aggregation on, but no shard map yet

    @property
    def buffered(self) -> int:
        return len(self._unrouted) + sum(len(builder) for builder in self._by_shard.values())

    def add(self, event: Accepted) -> Entry | None:
        """Buffer one event; returns an entry when one is complete."""
        if not self.aggregate:
            return plain_entry(event)
        builder = self._builders.get(event.store_id)
        if builder is None:
            if self.shard_map is None:
                self._unrouted.append(event)
                return None
            builder = self._builder_for(event.store_id)
        return builder.add(event)

    def add_many(self, events: Iterable[Accepted]) -> list[Entry]:
        """`add` for each event, in order; returns the entries completed on the way."""
        if not self.aggregate:
            return [plain_entry(event) for event in events]
        if self.shard_map is None:
            self._unrouted.extend(events)
            return []
        builders = self._builders
        finished: list[Entry] = []
        for event in events:
            builder = builders.get(event.store_id)
            if builder is None:
                builder = self._builder_for(event.store_id)
            if (entry := builder.add(event)) is not None:
                finished.append(entry)
        return finished

    def _builder_for(self, partition_key: str) -> AggregateBuilder:
        assert self.shard_map is not None
        shard = self.shard_map.shard_for(partition_key)
        builder = self._by_shard.get(shard.shard_id)
        if builder is None:
            builder = self._by_shard[shard.shard_id] = AggregateBuilder(
                shard, self._unit_bytes, self.compression
            )
        self._builders[partition_key] = builder
        return builder

    def route(self, shard_map: ShardMap, earlier: Iterable[Accepted] = ()) -> list[Entry]:
        """Use a new shard map; events buffered for shards that closed are routed again, after
        `earlier` ones (taken back from finished aggregates), so each store keeps its order.
        Returns entries that filled up on the way."""
        if shard_map.routes_like(self.shard_map):
            self.shard_map = shard_map
            return [entry for event in earlier if (entry := self.add(event)) is not None]
        waiting = [*earlier, *self.take_buffered()]
        self.shard_map = shard_map
        self._builders.clear()
        self._by_shard.clear()
        return [entry for event in waiting if (entry := self.add(event)) is not None]

    def drain(self) -> list[Entry]:
        """Every non-empty aggregate, finished now (the linger flush)."""
        return [entry for builder in self._by_shard.values() if (entry := builder.take()) is not None]

    def take_buffered(self) -> list[Accepted]:
        """Every buffered event, out of the encoder (to route again, or to spool)."""
        events, self._unrouted = self._unrouted, []
        for entry in self.drain():
            events.extend(entry.events)
        return events
