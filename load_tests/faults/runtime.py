"""Faults in the event-source-mapping runtime, and a reshard through the Kinesis API.

`RuntimeFaults` is `SeededFaults` (salesstream/runtime/hooks.py: replay a batch, crash after
the handler wrote and before the checkpoint, hold back a final invocation) with draws that
depend on the call itself (mapping, shard, window, first record, final or not, and how often
that call came before) rather than on the order in which shard threads reach the generator, so
the same traffic under the same seed meets the same faults.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from load_tests.faults.draw import Draws
from load_tests.faults.kinds import Injected
from salesstream.runtime.hooks import Call, Fault, SeededFaults

_INJECTED = {
    Fault.REPLAY: Injected.BATCH_REPLAYED,
    Fault.CRASH: Injected.CRASHED_AFTER_WRITE,
    Fault.DEFER: Injected.FINAL_DELAYED,
}


class RuntimeFaults(SeededFaults):
    def __init__(
        self, draws: Draws, *, replay: float = 0.0, crash_after: float = 0.0, delay_final: float = 0.0
    ) -> None:
        super().__init__(0, crash_after=crash_after, replay=replay, defer_final=delay_final)
        self._draws = draws
        self._lock = threading.Lock()

    def _draw(self, probability: float, fault: Fault, call: Call) -> Fault:
        batch = call.batch
        window = batch.window.start_ms if batch.window is not None else -1
        key = f"{call.mapping}|{call.shard_id}|{window}|{batch.first_sequence}|{batch.final}".encode()
        if not self._draws.hit(f"runtime-{fault.value}", key, probability):
            return Fault.NONE
        with self._lock:
            self.injected.append((fault, call.mapping, call.shard_id, batch.first_sequence))
        return fault

    def counts(self) -> dict[str, int]:
        with self._lock:
            found = Counter(_INJECTED[fault].value for fault, *_ in self.injected)
        return dict(sorted(found.items()))


@dataclass(frozen=True)
class Split:
    parent: str
    starting_hash_key: int
    at: float  # epoch seconds


def split_a_shard(kinesis: Any, stream: str, draws: Draws, number: int, now: float) -> Split:
    """The `number`-th split of a run: one open shard (chosen by the draws) split at the middle
    of its hash range."""
    shards = [s for s in _shards(kinesis, stream) if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    ordered = sorted(shards, key=lambda s: s["ShardId"])
    shard = ordered[int(draws.uniform("split-shard", str(number).encode()) * len(ordered))]
    low, high = (int(shard["HashKeyRange"][name]) for name in ("StartingHashKey", "EndingHashKey"))
    middle = (low + high + 1) // 2
    kinesis.split_shard(StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str(middle))
    kinesis.get_waiter("stream_exists").wait(
        StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )
    return Split(shard["ShardId"], middle, now)


def _shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    answer = kinesis.list_shards(StreamName=stream)
    found.extend(answer["Shards"])
    while answer.get("NextToken"):
        answer = kinesis.list_shards(NextToken=answer["NextToken"])
        found.extend(answer["Shards"])
    return found
