"""Reference handlers the CLI tests plug in with `--handler FUNCTION=tests.cli_handlers.NAME`."""

from __future__ import annotations

from typing import Any

from salesstream.core.lambda_events import KinesisTimeWindowEvent


def count_records(event: dict[str, Any], context: Any) -> dict[str, Any]:
    parsed = KinesisTimeWindowEvent.model_validate(event)
    state = dict(parsed.state) or {"records": 0}
    state["records"] += len(parsed.Records)
    return {"state": state, "batchItemFailures": []}
