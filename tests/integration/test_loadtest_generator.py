"""The load generator's child process sends through the real producer to the embedded stream and
hands back what it wrote to stdout/stderr or logged, so the fault run can scan the generator's
logs for card numbers like every other log (load_tests/generator.py)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from load_tests.config import LoadTestConfig
from load_tests.generator import GeneratorOutcome, GeneratorProcess, _Sender
from load_tests.meters import RequestMeter


class _ChattySender(_Sender):
    """A sender whose child logs a warning and prints to stderr before sending (module level:
    the spawned child imports it)."""

    def send(self, conn: Any, meter: RequestMeter) -> GeneratorOutcome:
        logging.getLogger("producer.test").warning("a warning from the generator child")
        print("printed by the generator child", file=sys.stderr)
        return super().send(conn, meter)


def test_the_generator_child_sends_every_event_and_returns_its_output(
    make_stack: Any, endpoint: Any, tmp_path: Path
) -> None:
    template, _ = make_stack(ShardCount=1)
    config = LoadTestConfig(run_id="gen-test", rate=200, duration=1, stores=5, bad_share=0)
    slots: list[int] = []
    with GeneratorProcess(
        config, endpoint, template.physical_name("OrdersStream"), tmp_path / "spool", _ChattySender
    ) as generator:
        outcome = generator.run(lambda first, count, at, acknowledged: slots.append(count))
    assert outcome.result.sent == sum(slots) == 200
    # the events' own size, not the compressed aggregates' (the naive design is priced on it)
    assert 250 < outcome.event_bytes / 200 < 600
    assert "a warning from the generator child" in outcome.output
    assert "printed by the generator child" in outcome.output
