"""What a producer run did, as one typed, JSON-ready object.

The tally is what Kinesis acknowledged, per store and currency, counted once per event_id, in
minor units: the pipeline's totals must match it to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, computed_field

from producer.aggregation import Accepted


class ShardCount(BaseModel):
    records: int = 0
    payload_units: int = 0
    events: int = 0


class StoreTally(BaseModel):
    store_id: str
    currency: str
    orders: int = 0
    refunds: int = 0
    gross_minor: int = 0
    refunds_minor: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunds_minor


@dataclass(slots=True)
class _Totals:
    orders: int = 0
    refunds: int = 0
    gross_minor: int = 0
    refunds_minor: int = 0


class Tally:
    """Acknowledged sales per (store, currency), once per event_id."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._totals: dict[tuple[str, str], _Totals] = {}

    def add(self, event: Accepted) -> None:
        if event.event_id in self._seen:
            return
        self._seen.add(event.event_id)
        key = (event.store_id, event.currency)
        totals = self._totals.get(key)
        if totals is None:
            totals = self._totals[key] = _Totals()
        if event.is_refund:
            totals.refunds += 1
            totals.refunds_minor += event.total_minor
        else:
            totals.orders += 1
            totals.gross_minor += event.total_minor

    def rows(self) -> list[StoreTally]:
        return [
            StoreTally(
                store_id=store,
                currency=currency,
                orders=t.orders,
                refunds=t.refunds,
                gross_minor=t.gross_minor,
                refunds_minor=t.refunds_minor,
            )
            for (store, currency), t in sorted(self._totals.items())
        ]


class ProducerResult(BaseModel):
    stream: str
    aggregated: bool
    compressed: bool = False  # aggregates sent in the compressed envelope
    accepted: int = 0  # passed the contract (spooled events resent this run included)
    sent: int = 0  # accepted events Kinesis acknowledged
    resent: int = 0  # extra transmissions: failed entries, lost responses
    spooled: int = 0  # written to the spool this run (not sent)
    from_spool: int = 0  # events read back from the spool at the start of this run
    rejected: dict[str, int] = {}  # refused by the contract, by reason code; none was sent
    throttled: int = 0  # entries Kinesis throttled (each one retried)
    lost_responses: int = 0
    # events in aggregates that landed on another shard than planned (a reshard since the map was
    # read): counted there, never sent again
    landed_elsewhere: int = 0
    backoff_seconds: float = 0.0
    shards: dict[str, ShardCount] = {}  # records, payload units and events acknowledged per shard
    tally: list[StoreTally] = []
    error: str | None = None  # one line: why something was spooled
    spool_path: str
    spool_unreadable_lines: list[int] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def ok(self) -> bool:
        """Everything accepted was acknowledged and nothing is left in the spool by this run."""
        return self.spooled == 0 and self.error is None
