"""The `Producer`: what a POS integration calls.

    with Producer(producer_client(), "dev-salesstream-orders", spool="var/spool.jsonl") as producer:
        rejection = producer.submit(raw_event_bytes)   # None, or the RejectedEvent with its reason
    result = producer.result                            # accepted, sent, spooled, tally, ...

Submit validates against the contract (a refused event is counted by reason and never sent; a
card number never reaches the stream), routes the event to its shard and aggregates it (each
finished aggregate compressed, unless `compress` is off). Buffered
events go out when a PutRecords call is full or `linger_seconds` after the oldest arrived
(checked on each submit and by `poll()`), and on `flush()` / `close()`. What cannot be sent
after the retries is spooled; the next producer on the same spool sends it first.

Synchronous and not thread-safe: use one Producer per thread, each with its own spool file.
Per-store order holds in the stream except when a failed entry is resent after later ones
succeeded; totals do not depend on order.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from producer.encoder import Encoder, accept_many
from producer.result import ProducerResult, ShardCount, Tally
from producer.sender import MAX_BYTES_PER_CALL, MAX_ENTRIES_PER_CALL, Sender, SendFailure
from producer.settings import ProducerSettings
from producer.shards import ShardMapError, fetch_shard_map
from producer.spool import Spool, SpoolEntry, SpoolReason

if TYPE_CHECKING:
    from types import TracebackType

    from producer.aggregation import Accepted, Entry
    from salesstream.core.contract import OrderEvent
    from salesstream.core.reasons import RejectedEvent

# A flush sends what is buffered; a shard map refreshed on the way can rebuild unsent aggregates
# for shards that closed, which the next round sends. More rounds than this in one flush means
# the stream is being resharded right now: what is left waits for the next flush.
_FLUSH_ROUNDS: Final = 4


class ProducerClosed(RuntimeError):
    """The producer was closed; its result is final."""


class Producer:
    def __init__(
        self,
        client: Any,
        stream_name: str,
        spool: Path | str,
        *,
        settings: ProducerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or ProducerSettings()
        self._client = client
        self._sender = Sender(
            client,
            stream_name,
            self.settings.retry,
            sleep=sleep,
            rng=rng or random.Random(),  # noqa: S311 - backoff jitter
        )
        self._encoder = Encoder(aggregate=self.settings.aggregate, compression=self.settings.compression)
        self._spool = Spool(Path(spool))
        self._clock = clock
        self.result = ProducerResult(
            stream=stream_name,
            aggregated=self.settings.aggregate,
            compressed=self.settings.compression is not None,
            spool_path=str(spool),
        )
        self._rejected: Counter[str] = Counter()
        self._shards: defaultdict[str, ShardCount] = defaultdict(ShardCount)
        self._tally = Tally()
        self._outgoing: list[Entry] = []
        self._outgoing_bytes = 0
        self._oldest: float | None = None  # when the oldest buffered event was accepted
        self._map_fetched_at: float | None = None
        self._map_failure: SendFailure | None = None
        self._spool_lines: defaultdict[str, list[int]] = defaultdict(list)  # event_id -> lines read at open
        self._settled_lines: set[int] = set()  # of those, the ones sent or spooled anew this run
        self._opened = self._closed = False

    # --- the public surface ---------------------------------------------------------------

    def __enter__(self) -> Producer:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()  # also after an error: buffered events are sent or spooled, never dropped

    def open(self) -> None:
        """Lock the spool and queue what it holds ahead of everything else."""
        if self._opened:
            return
        self._opened = True
        entries = self._spool.open()
        self.result.spool_unreadable_lines = self._spool.unreadable_lines
        for index, entry in entries:
            self._spool_lines[entry.event_id].append(index)
        self.result.from_spool = len(entries)
        # refused now (the contract changed)? counted; its line stays
        self._take([entry.raw for _, entry in entries])

    def submit(self, event: bytes | OrderEvent) -> RejectedEvent | None:
        """Accept one event; returns the refusal (reason + detail) if the contract refuses it.
        An `OrderEvent` is valid already: only its bytes are screened (size cap, card scan)."""
        refused = self.submit_many((event,))
        return refused[0][1] if refused else None

    def submit_many(self, events: Iterable[bytes | OrderEvent]) -> list[tuple[int, RejectedEvent]]:
        """Accept many; returns (position, refusal) for each refused one. Cheaper per event than
        `submit`: the size cap and the card scan run once over the whole chunk when it is clean,
        and the chunk is routed and aggregated in one pass."""
        if self._closed:
            raise ProducerClosed("submit() after close(): open a new Producer")
        self.open()
        return self._take(events if isinstance(events, Sequence) else list(events))

    def poll(self) -> None:
        """Send buffered events whose linger time is up (for callers that go quiet)."""
        if self._oldest is not None and self._clock() - self._oldest >= self.settings.linger_seconds:
            self.flush()

    def flush(self) -> None:
        """Send everything buffered; what cannot be sent is spooled."""
        self.open()
        for _ in range(_FLUSH_ROUNDS):
            if not (self._outgoing or self._encoder.buffered):
                break
            self._refresh_shard_map(force=False)
            if self._encoder.aggregate and self._encoder.shard_map is None:
                self._spool_events(self._encoder.take_buffered(), self._map_failure)
                break
            self._send(self._take_outgoing() + self._encoder.drain())
        self._oldest = None

    def close(self) -> ProducerResult:
        """Flush, spool what could not be sent, settle the spool and return the result."""
        if self._closed:
            return self.result
        try:
            self.flush()
            if leftover := self._encoder.take_buffered():
                failure = SendFailure("the shard map kept changing while sending (resharding?)")
                self._spool_events(leftover, failure)
            self._spool.remove(self._settled_lines)
        finally:
            self._spool.close()
            self._closed = True
        self.result.rejected = dict(sorted(self._rejected.items()))
        self.result.shards = dict(sorted(self._shards.items()))
        self.result.tally = self._tally.rows()
        return self.result

    @property
    def accepted(self) -> int:
        return self.result.accepted

    @property
    def sent(self) -> int:
        return self.result.sent

    # --- the path of one event ------------------------------------------------------------

    def _take(self, events: Sequence[bytes | OrderEvent]) -> list[tuple[int, RejectedEvent]]:
        accepted, refused = accept_many(events)
        for _, refusal in refused:
            self._rejected[refusal.reason.value] += 1
        if not accepted:
            return refused
        self.result.accepted += len(accepted)
        now = self._clock()
        if self._oldest is None:
            self._oldest = now
        if self._encoder.aggregate and self._map_fetched_at is None:
            self._refresh_shard_map(force=True)
        for entry in self._encoder.add_many(accepted):
            self._queue(entry)
        if len(self._outgoing) >= MAX_ENTRIES_PER_CALL or self._outgoing_bytes >= MAX_BYTES_PER_CALL:
            self._send(self._take_outgoing())
        if now - self._oldest >= self.settings.linger_seconds:
            self.flush()
        return refused

    def _queue(self, entry: Entry) -> None:
        self._outgoing.append(entry)
        self._outgoing_bytes += entry.size

    def _take_outgoing(self) -> list[Entry]:
        entries, self._outgoing, self._outgoing_bytes = self._outgoing, [], 0
        return entries

    def _send(self, entries: list[Entry]) -> None:
        if not entries:
            return
        report = self._sender.put(entries)
        self.result.throttled += report.throttled
        self.result.resent += report.resent_events
        self.result.lost_responses += report.lost_responses
        self.result.backoff_seconds += report.backoff_seconds
        # Whatever Kinesis stored is counted where it was stored (consumers count every user
        # record where it lands): an aggregate that landed on another shard than planned is never
        # sent again. A retry resends the same entry with the same explicit hash key, so any copy
        # lands on that shard or a descendant, within the consumers' per-lineage dedup.
        for entry, shard_id in report.acked:
            self._acknowledge(entry, shard_id)
            if entry.shard_id not in (None, shard_id):
                self.result.landed_elsewhere += len(entry.events)
        if any(entry.shard_id not in (None, shard_id) for entry, shard_id in report.acked):
            self._refresh_shard_map(force=True)  # a reshard: route what comes next by the new shards
        if report.unsent:
            self._spool_events([event for entry in report.unsent for event in entry.events], report.failure)

    def _acknowledge(self, entry: Entry, shard_id: str) -> None:
        shard = self._shards[shard_id]
        shard.records += 1
        shard.payload_units += entry.payload_units
        shard.events += len(entry.events)
        self.result.sent += len(entry.events)
        for event in entry.events:
            self._tally.add(event)
        if self._spool_lines:  # only events read back from the spool have lines to settle
            for event in entry.events:
                self._settle(event.event_id)

    def _settle(self, event_id: str) -> None:
        lines = self._spool_lines.get(event_id)
        if lines:
            self._settled_lines.update(lines)

    def _spool_events(self, events: list[Accepted], failure: SendFailure | None) -> None:
        if not events:
            return
        failure = failure or SendFailure("not sent")
        reason = SpoolReason(failure.kind.value)
        self._spool.append(SpoolEntry.of(e.event_id, e.raw, reason, str(failure)) for e in events)
        self.result.spooled += len(events)
        self.result.error = f"{reason.value}: {failure}"
        for event in events:
            self._settle(event.event_id)  # its new line replaces the old one

    # --- the shard map --------------------------------------------------------------------

    def _refresh_shard_map(self, *, force: bool) -> None:
        if not self._encoder.aggregate:
            return
        now = self._clock()
        due = (
            self._map_fetched_at is None or now - self._map_fetched_at >= self.settings.shard_refresh_seconds
        )
        if not (force or due or self._encoder.shard_map is None):
            return
        self._map_fetched_at = now
        try:
            shard_map = self._sender.call(lambda: fetch_shard_map(self._client, self._sender.stream_name))
        except SendFailure as failure:
            self._map_failure = failure
            return
        except ShardMapError as failure:  # mid-reshard: keep the old map, look again next time
            self._map_failure = SendFailure(str(failure))
            return
        # Finished aggregates for shards that have closed would land off-shard: build them again.
        open_shards = {shard.shard_id for shard in shard_map.open_shards}
        stale_events: list[Accepted] = []
        for entry in self._take_outgoing():
            if entry.shard_id is None or entry.shard_id in open_shards:
                self._queue(entry)
            else:
                stale_events.extend(entry.events)
        for rebuilt in self._encoder.route(shard_map, earlier=stale_events):
            self._queue(rebuilt)
