"""One event source mapping on one shard: read, batch, invoke, checkpoint, strictly in order.

This is the logic of Lambda's stream poller for one shard (ParallelizationFactor 1), written
over small ports (a shard reader, a checkpoint store, a destination, an invoker, a clock) so the
same code runs against Kinesis streams and DynamoDB tables' streams (the reader and the record
shape differ, every rule below is shared) and, in unit tests, against synthetic records.

The rules, each named by the contract tests:
- Batches: up to BatchSize records and Lambda's 6 MB payload; invoked when full, when the
  MaximumBatchingWindowInSeconds since the oldest waiting record is over (0 = at once), or when
  nothing more can join (window boundary, shard end). Records that do not pass the
  FilterCriteria never reach a batch; their positions are checkpointed all the same.
- Tumbling windows (TumblingWindowInSeconds > 0): a record belongs to the epoch-aligned window
  holding its arrival time; a batch never spans two windows; `state` starts as {} and moves
  forward only when an invocation succeeds; once the clock is past a window's end and the shard
  has been read beyond it (or, on a quiet shard, read to its tip after the grace), the window
  gets its final invocation
  (isFinalInvokeForWindow) - with no records, or with the window's last records if the runtime
  is told so. A final invocation that fails is retried until it succeeds: the shard waits.
- State limit: when a successful invocation returns a state over the limit (1 MB), that state
  cannot be passed on, so the segment ends with the last state under the limit: a final
  invocation with isWindowTerminatedEarly, then the same batch again with fresh state {} (the
  window continues as a new segment). A fresh segment's first batch whose state alone is over
  the limit is a function error.
- Failures: a handler error, timeout or missing state fails the whole batch;
  BisectBatchOnFunctionError splits it in two (not counted as a retry); otherwise it is retried
  until MaximumRetryAttempts is used up, then its metadata goes to the OnFailure destination and
  the shard moves on. With ReportBatchItemFailures the records before the lowest failed one are
  done (with the returned state) and the rest is retried. Records older than
  MaximumRecordAgeInSeconds are discarded to the destination before any invocation.
- Resharding: once the shard is known closed and read to its end, an open window gets its final
  invocation at once and the shard is marked finished (its children may start).
- Checkpoint after every invocation that moves the shard: position + window + state together.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import replace
from typing import Any, Protocol

from salesstream.core.windows import Window, rfc3339
from salesstream.runtime.clock import Clock
from salesstream.runtime.destinations import Destination, FailureCondition, failure_record
from salesstream.runtime.events import EVENT_ENVELOPE_BYTES, Source, build_event, interpret, stream_record
from salesstream.runtime.hooks import Call, Fault, Hooks
from salesstream.runtime.invoker import InvocationResult, Raised, Returned, TimedOut
from salesstream.runtime.log import logger
from salesstream.runtime.mappings import Mapping
from salesstream.runtime.model import (
    Batch,
    Checkpoint,
    Failed,
    FailureKind,
    Fetch,
    Outcome,
    PartlyFailed,
    ShardStats,
    SimulatedCrash,
    StreamRecord,
    Succeeded,
)
from salesstream.runtime.options import RuntimeOptions

FRESH_STATE = "{}"
# After a window's end a caught-up shard is read this often until a record past the end shows
# the window complete (or the grace ends): its final invocation does not wait for a regular poll.
_CLOSING_POLL_MS = 100


class Reader(Protocol):
    def reset(self, after: str | None) -> None: ...

    def read(self, limit: int) -> Fetch: ...


class Invoker(Protocol):
    function_arn: str

    def invoke(self, event: dict[str, Any]) -> InvocationResult: ...


class Store(Protocol):
    def load(self, mapping: str, shard_id: str) -> Checkpoint: ...

    def save(self, mapping: str, shard_id: str, checkpoint: Checkpoint) -> Checkpoint: ...


def _later(sequence_number: str | None, than: str | None) -> bool:
    return sequence_number is not None and (than is None or int(sequence_number) > int(than))


class ShardConsumer:
    def __init__(
        self,
        mapping: Mapping,
        shard_id: str,
        *,
        reader: Reader,
        store: Store,
        destination: Destination,
        invoker: Invoker,
        clock: Clock,
        options: RuntimeOptions,
        hooks: Hooks,
        stats: ShardStats,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.mapping = mapping
        self.shard_id = shard_id
        self._event = mapping.event
        self._reader, self._store, self._destination = reader, store, destination
        self._invoker, self._clock, self._options, self._hooks = invoker, clock, options, hooks
        self.stats = stats
        self._source = Source(
            shard_id, mapping.stream_arn, mapping.region, mapping.identity_arn, mapping.event.from_table
        )
        self.checkpoint = checkpoint if checkpoint is not None else store.load(mapping.id, shard_id)
        self._reader.reset(self.checkpoint.position)
        self._buffer: deque[StreamRecord] = deque()  # read, filtered, not yet in a batch
        self._pending: deque[Batch] = deque()  # formed, not yet done; pending[0] is next
        self._read_through: str | None = self.checkpoint.position
        self._next_poll_at = 0
        self._caught_up_at: int | None = None
        self._caught_up = False
        self._closed_known = False
        self._at_end = False
        self.last_failed = False
        stats.finished = self.checkpoint.finished
        stats.position = self.checkpoint.position

    # --- the public surface ----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.checkpoint.finished

    def mark_closed(self) -> None:
        """The shard list says this shard is closed: once read to its end, it is finished."""
        self._closed_known = True

    def is_idle(self) -> bool:
        """The shard read to its end less than a poll interval ago (the next poll is not due
        yet), nothing read and not done, no window open."""
        if self.checkpoint.finished:
            return True
        if self._closed_known:
            return False  # split or merged: work remains until it is read to its end and finished
        return (
            self._caught_up
            and self._clock.now_ms() < self._next_poll_at
            and not self._buffer
            and not self._pending
            and self.checkpoint.window is None
            and not _later(self._read_through, self.checkpoint.position)
        )

    def step(self, *, flush: bool = False) -> bool:
        """Do what is due now: at most one GetRecords and one invocation. `flush` ignores the
        poll interval and the batching window (run_until_idle); windows still close by the
        clock only. Returns whether the shard moved (records read, checkpoint advanced, ...)."""
        if self.checkpoint.finished:
            return False
        now = self._clock.now_ms()
        progress = False
        if self._poll_due(now, flush):
            progress = self._poll(now)
        batch = self._next_batch(now, flush)
        moved = self._run(batch, now) if batch is not None else self._settle()
        progress = moved or progress
        self._update_lag(now)
        return progress

    # --- reading ---------------------------------------------------------------------------

    def _poll_due(self, now: int, flush: bool) -> bool:
        return (
            not self._at_end
            and len(self._buffer) < self._event.batch_size
            and (flush or now >= self._next_poll_at)
        )

    def _poll(self, now: int) -> bool:
        closed_before = self._closed_known  # a read that began before we knew proves nothing
        fetch = self._reader.read(self._options.get_records_limit)
        interval_ms = round(self._options.poll_interval_seconds * 1000)
        if fetch.throttled:
            self.stats.throttled_reads += 1
            self._next_poll_at = now + interval_ms
            return False
        record_filter = self.mapping.filter
        for raw in fetch.records:
            self._read_through = raw.sequence_number
            record = stream_record(raw, self._source, now)
            if record_filter and not record_filter.accepts(record.event_record):
                self.stats.records_filtered += 1
                continue
            self._buffer.append(record)
        self.stats.records_read += len(fetch.records)
        self.stats.millis_behind_latest = fetch.millis_behind
        self._caught_up = fetch.caught_up
        if fetch.caught_up:
            self._caught_up_at = now
        if fetch.end_of_shard or (closed_before and fetch.caught_up):
            self._at_end = True
        # Lambda keeps reading while it is behind and polls about once a second otherwise; an
        # open window is read once more as soon as it can close, so its final invocation does
        # not wait up to a poll interval for the next regular read.
        self._next_poll_at = now
        if fetch.caught_up:
            closing = self._closing_read_at(now)
            regular = now + interval_ms
            self._next_poll_at = min(regular, closing) if closing is not None and closing > now else regular
        return bool(fetch.records)

    def _closing_read_at(self, now: int) -> int | None:
        """When the next read may prove the open window complete: a record past its end closes
        it, so read again soon after the end (every _CLOSING_POLL_MS while none has come); on a
        quiet shard, a caught-up read at the end of the grace does."""
        window = self.checkpoint.window
        if window is None and self._buffer and self.mapping.windowed:
            window = Window.containing(self._buffer[0].arrival_ms, self._event.tumbling_window_seconds)
        if window is None:
            return None
        if self._read_past(window):
            return None  # already shown complete: its final invocation needs no further read
        grace_over = window.end_ms + round(self._options.window_close_grace_seconds * 1000)
        if now < window.end_ms:
            return window.end_ms + _CLOSING_POLL_MS
        return min(now + _CLOSING_POLL_MS, grace_over) if now < grace_over else grace_over

    # --- forming batches -------------------------------------------------------------------

    def _next_batch(self, now: int, flush: bool) -> Batch | None:
        if self._pending:
            return self._pending[0]
        self._discard_expired_head(now)
        form = self._next_window_batch if self.mapping.windowed else self._next_plain_batch
        batch = form(now, flush)
        if batch is not None:
            self._pending.append(batch)
        return batch

    def _take(self, window_end_ms: int | None, state_bytes: int) -> tuple[int, bool]:
        """How many buffered records the next batch takes, and whether it could take more
        later (False: it is full, at the payload limit, or at the window's end)."""
        budget = self._options.payload_limit_bytes - EVENT_ENVELOPE_BYTES - state_bytes
        count = 0
        for record in self._buffer:
            if window_end_ms is not None and record.arrival_ms >= window_end_ms:
                return count, False
            if count and record.size > budget:
                return count, False
            budget -= record.size
            count += 1
            if count == self._event.batch_size:
                return count, False
        return count, True

    def _batching_window_over(self, now: int) -> bool:
        wait_ms = self._event.maximum_batching_window_seconds * 1000
        return bool(self._buffer) and self._buffer[0].fetched_at_ms + wait_ms <= now

    def _pop(self, count: int) -> tuple[StreamRecord, ...]:
        return tuple(self._buffer.popleft() for _ in range(count))

    def _next_plain_batch(self, now: int, flush: bool) -> Batch | None:
        if not self._buffer:
            return None
        count, could_grow = self._take(None, 0)
        if could_grow and not (flush or self._at_end or self._batching_window_over(now)):
            return None
        return Batch(self._pop(count))

    def _read_past(self, window: Window) -> bool:
        """A record past the window's end has been read: the shard's order holds nothing more of
        the window (a batch never takes a record behind it), so a grace would only delay it."""
        return bool(self._buffer) and self._buffer[-1].arrival_ms >= window.end_ms

    def _window_closable(self, window: Window, now: int) -> bool:
        """Every record of the window has been read and the window is over by our clock."""
        if self._at_end:
            return True
        if now < window.end_ms:
            return False
        if self._read_past(window):
            return True
        # a quiet shard: nothing shows the window is over but the clock, with a grace for
        # records put just before the end and not yet readable
        over_at = window.end_ms + round(self._options.window_close_grace_seconds * 1000)
        return now >= over_at and self._caught_up_at is not None and self._caught_up_at >= over_at

    def _open_window(self) -> Window:
        window = Window.containing(self._buffer[0].arrival_ms, self._event.tumbling_window_seconds)
        if window.end_ms <= self.checkpoint.closed_through_ms:
            # Only a clock ahead of the stream's (a virtual clock in a test) closes a window
            # before its records are in: they become a further segment of that window.
            self.stats.late_segments += 1
            logger.warning(
                "records arrived for a window already closed: a new segment of it",
                extra=self._log_keys(window=window.key),
            )
        self.checkpoint = replace(self.checkpoint, window=window, state=FRESH_STATE, segment=0)
        return window

    def _next_window_batch(self, now: int, flush: bool) -> Batch | None:
        window = self.checkpoint.window
        if window is None:
            if not self._buffer:
                return None
            window = self._open_window()
        state_bytes = len((self.checkpoint.state or FRESH_STATE).encode("utf-8"))
        count, could_grow = self._take(window.end_ms, state_bytes)
        closable = self._window_closable(window, now)
        if count == 0:
            return Batch((), window, final=True) if closable else None
        if could_grow and not (flush or closable or self._batching_window_over(now)):
            return None
        whole_rest = count == len(self._buffer) or self._buffer[count].arrival_ms >= window.end_ms
        final = self._options.final_invocation_carries_records and closable and whole_rest
        return Batch(self._pop(count), window, final=final)

    # --- invoking --------------------------------------------------------------------------

    def _run(self, batch: Batch, now: int) -> bool:
        if self._expire_old_records(batch, now):
            return True
        windowed = self.mapping.windowed
        event = build_event(batch, self._source, self.checkpoint.state if windowed else None)
        call = Call(self.mapping.id, self.shard_id, batch, event)
        match self._hooks.before_invoke(call):
            case Fault.CRASH:
                raise SimulatedCrash(f"{self.mapping.id} {self.shard_id}: crash before invoking")
            case Fault.DEFER:
                return False
        outcome = self._invoke(event, batch)
        match self._hooks.after_invoke(call, outcome):
            case Fault.CRASH:
                raise SimulatedCrash(f"{self.mapping.id} {self.shard_id}: crash after the handler returned")
            case Fault.REPLAY:
                outcome = self._invoke(event, batch)
        self.last_failed = not isinstance(outcome, Succeeded)
        match outcome:
            case Succeeded(state=state):
                return self._succeeded(batch, state)
            case PartlyFailed(state=state, failed_at=failed_at):
                return self._partly_failed(batch, state, failed_at)
            case Failed():
                return self._failed(batch, outcome)
        raise AssertionError(f"unknown outcome {outcome!r}")  # pragma: no cover

    def _invoke(self, event: dict[str, Any], batch: Batch) -> Outcome:
        self.stats.invocations += 1
        logger.debug(
            "invoking",
            extra=self._log_keys(
                records=len(batch.records),
                first=batch.first_sequence,
                final=batch.final,
                window=batch.window.key if batch.window else None,
                attempt=batch.attempts + 1,
            ),
        )
        result = self._invoker.invoke(event)
        match result:
            case Returned(value=value):
                return interpret(
                    value,
                    batch,
                    windowed=self.mapping.windowed,
                    report_batch_item_failures=self._event.report_batch_item_failures,
                )
            case Raised(error_type=error_type, message=message):
                return Failed(FailureKind.UNHANDLED, f"{error_type}: {message}")
            case TimedOut(seconds=seconds):
                return Failed(FailureKind.TIMEOUT, f"ran past its timeout of {seconds:g} s")
        raise AssertionError(f"unknown invocation result {result!r}")  # pragma: no cover

    def _age_cutoff(self, now: int) -> int | None:
        """Records that arrived before this are older than MaximumRecordAgeInSeconds."""
        max_age = self._event.maximum_record_age_seconds
        return None if max_age < 0 else now - max_age * 1000

    def _discard_expired_head(self, now: int) -> None:
        """Too-old records never open a window or reach a batch: straight to the destination."""
        cutoff = self._age_cutoff(now)
        if cutoff is None or not self._buffer or self._buffer[0].arrival_ms >= cutoff:
            return
        expired = []
        while self._buffer and self._buffer[0].arrival_ms < cutoff:
            expired.append(self._buffer.popleft())
        self._discard(tuple(expired), 0, FailureCondition.RECORD_AGE_EXCEEDED, None, now)
        self._save(replace(self.checkpoint, position=expired[-1].sequence_number))

    def _expire_old_records(self, batch: Batch, now: int) -> bool:
        """Records of a batch being retried that grew too old meanwhile are discarded; any?"""
        cutoff = self._age_cutoff(now)
        if cutoff is None or not batch.records:
            return False
        count = next((i for i, r in enumerate(batch.records) if r.arrival_ms >= cutoff), len(batch.records))
        if not count:
            return False
        expired, rest = batch.records[:count], replace(batch, records=batch.records[count:])
        self._discard(expired, batch.attempts, FailureCondition.RECORD_AGE_EXCEEDED, None, now)
        self._pending.popleft()
        if rest.records or rest.final:
            self._pending.appendleft(rest)
        self._save(replace(self.checkpoint, position=expired[-1].sequence_number))
        return True

    # --- outcomes --------------------------------------------------------------------------

    def _succeeded(self, batch: Batch, state: dict[str, Any] | None) -> bool:
        checkpoint = self.checkpoint
        position = batch.records[-1].sequence_number if batch.records else checkpoint.position
        if not self.mapping.windowed:
            self._done(batch, replace(checkpoint, position=position))
            return True
        if batch.final:
            self._done(batch, self._after_final(batch, position))
            return True
        state_json = json.dumps(state, separators=(",", ":"))
        if len(state_json.encode("utf-8")) > self._options.state_limit_bytes:
            return self._state_too_large(batch)
        self._done(batch, replace(checkpoint, position=position, state=state_json))
        return True

    def _after_final(self, batch: Batch, position: str | None) -> Checkpoint:
        checkpoint, window = self.checkpoint, batch.window
        assert window is not None
        if batch.terminated_early:
            self.stats.segments_terminated_early += 1
            logger.info("window segment ended early (state limit)", extra=self._log_keys(window=window.key))
            return replace(checkpoint, state=FRESH_STATE, segment=checkpoint.segment + 1)
        self.stats.windows_closed += 1
        logger.info("window closed", extra=self._log_keys(window=window.key, position=position))
        return replace(
            checkpoint,
            position=position,
            window=None,
            state=None,
            segment=0,
            closed_through_ms=max(checkpoint.closed_through_ms, window.end_ms),
        )

    def _done(self, batch: Batch, checkpoint: Checkpoint) -> None:
        self.stats.records_delivered += len(batch.records)
        self._pending.popleft()
        self._save(checkpoint)

    def _state_too_large(self, batch: Batch) -> bool:
        if self.checkpoint.state in (None, FRESH_STATE):
            return self._failed(
                batch,
                Failed(FailureKind.STATE_TOO_LARGE, "the state of a fresh window segment exceeds the limit"),
            )
        # The too-large state cannot be passed on: end the segment with the last state under the
        # limit, then deliver this batch again with fresh state (it was never checkpointed).
        self._pending.appendleft(Batch((), batch.window, final=True, terminated_early=True))
        return True

    def _partly_failed(self, batch: Batch, state: dict[str, Any] | None, failed_at: int) -> bool:
        self.stats.partial_failures += 1
        handled, remaining = batch.records[:failed_at], batch.records[failed_at:]
        checkpoint = self.checkpoint
        if self.mapping.windowed:
            state_json = json.dumps(state, separators=(",", ":"))
            if len(state_json.encode("utf-8")) > self._options.state_limit_bytes:
                return self._state_too_large(batch)
            checkpoint = replace(checkpoint, state=state_json)
        if handled:
            checkpoint = replace(checkpoint, position=handled[-1].sequence_number)
        self.stats.records_delivered += len(handled)
        retry = replace(batch, records=remaining, attempts=batch.attempts + 1)
        self._pending[0] = retry
        if self._exhausted(retry):
            self._give_up(retry, None, checkpoint)
        else:
            self._save(checkpoint)
        return True

    def _failed(self, batch: Batch, failure: Failed) -> bool:
        self.stats.function_errors += 1
        logger.warning(
            "invocation failed",
            extra=self._log_keys(
                kind=failure.kind.value,
                error=failure.message,
                first=batch.first_sequence,
                records=len(batch.records),
                final=batch.final,
                attempt=batch.attempts + 1,
            ),
        )
        if not batch.records:
            # A final invocation carries the window's result: the shard waits until it succeeds.
            self.stats.final_invocation_failures += 1
            return False
        if self._event.bisect_batch_on_function_error and len(batch.records) > 1:
            half = len(batch.records) // 2
            self._pending.popleft()
            self._pending.appendleft(replace(batch, records=batch.records[half:]))
            self._pending.appendleft(replace(batch, records=batch.records[:half], final=False))
            self.stats.bisections += 1
            return True
        retry = replace(batch, attempts=batch.attempts + 1)
        self._pending[0] = retry
        if self._exhausted(retry):
            self._give_up(retry, "Unhandled", self.checkpoint)
            return True
        return self._event.maximum_retry_attempts >= 0  # bounded retries move towards an end

    def _exhausted(self, batch: Batch) -> bool:
        limit = self._event.maximum_retry_attempts
        return limit >= 0 and batch.attempts > limit

    def _give_up(self, batch: Batch, function_error: str | None, checkpoint: Checkpoint) -> None:
        """Retries used up: the metadata goes to the destination and the shard moves on; a
        final invocation still follows for a batch that was final."""
        now = self._clock.now_ms()
        exhausted = FailureCondition.RETRY_ATTEMPTS_EXHAUSTED
        self._discard(batch.records, batch.attempts, exhausted, function_error, now)
        self._pending.popleft()
        if batch.final:
            self._pending.appendleft(Batch((), batch.window, final=True))
        self._save(replace(checkpoint, position=batch.records[-1].sequence_number))

    def _discard(
        self,
        records: tuple[StreamRecord, ...],
        invoke_count: int,
        condition: FailureCondition,
        function_error: str | None,
        now: int,
    ) -> None:
        self.stats.records_discarded += len(records)
        self._destination.send(
            failure_record(
                records,
                condition=condition,
                function_arn=self._invoker.function_arn,
                shard_id=self.shard_id,
                stream_arn=self.mapping.stream_arn,
                invoke_count=invoke_count,
                function_error=function_error,
                now_ms=now,
                from_table=self.mapping.from_table,
            )
        )
        logger.warning(
            "records discarded to the on-failure destination"
            if self.mapping.on_failure_queue
            else "records discarded; the mapping has no on-failure destination",
            extra=self._log_keys(
                condition=condition.value,
                first=records[0].sequence_number,
                last=records[-1].sequence_number,
                count=len(records),
            ),
        )

    # --- idle work -------------------------------------------------------------------------

    def _settle(self) -> bool:
        """Nothing to invoke: checkpoint past filtered-out records, finish a drained closed shard."""
        if self._buffer or self._pending:
            return False
        progress = False
        if _later(self._read_through, self.checkpoint.position):
            self._save(replace(self.checkpoint, position=self._read_through))
            progress = True
        if self._at_end and (not self.mapping.windowed or self.checkpoint.window is None):
            self._save(replace(self.checkpoint, finished=True))
            self.stats.finished = True
            logger.info("shard finished", extra=self._log_keys(position=self.checkpoint.position))
            progress = True
        return progress

    def _save(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = self._store.save(self.mapping.id, self.shard_id, checkpoint)
        self.stats.position = self.checkpoint.position

    def _update_lag(self, now: int) -> None:
        oldest = next((b.records[0] for b in self._pending if b.records), None) or (
            self._buffer[0] if self._buffer else None
        )
        self.stats.pending_records = len(self._buffer) + sum(len(b.records) for b in self._pending)
        self.stats.iterator_age_ms = max(0, now - oldest.arrival_ms) if oldest else 0
        window = self.checkpoint.window
        self.stats.open_window = rfc3339(window.start_ms) if window else None

    def _log_keys(self, **keys: Any) -> dict[str, Any]:
        return {"mapping": self.mapping.id, "shard_id": self.shard_id, **keys}
