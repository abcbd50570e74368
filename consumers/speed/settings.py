"""The aggregator's settings, read once per process from the function's environment
(deploy/template.yaml sets every variable; a missing or malformed one fails at start-up with
its name). A msgspec struct rather than pydantic-settings, like the rest of the aggregator's
hot path: the function starts without pydantic (see docs/speed-layer.md, cold start)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

import msgspec

from salesstream.core.windows import MAX_WINDOW_SECONDS


class AggregatorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """AGGREGATES_TABLE, QUARANTINE_TABLE, ARCHIVE_BUCKET, STREAM_NAME, WINDOW_SECONDS,
    DEDUP_HORIZON_SECONDS."""

    aggregates_table: str
    quarantine_table: str
    archive_bucket: str
    stream_name: str
    window_seconds: Annotated[int, msgspec.Meta(gt=0, le=MAX_WINDOW_SECONDS)]
    dedup_horizon_seconds: Annotated[int, msgspec.Meta(ge=0)]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> AggregatorSettings:
        """Every field from its upper-case variable; numbers from their text ("60")."""
        values = {name: environ[name.upper()] for name in cls.__struct_fields__ if name.upper() in environ}
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as error:
            raise SettingsError(f"the aggregator's environment: {error}") from None


class SettingsError(ValueError):
    """A variable of the function's environment is missing or malformed (the message names it)."""
