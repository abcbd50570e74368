"""The batch layer as the API reads it: the latest snapshot (its horizon and its rows) and the
latest reconciliation.

PROVISIONAL: the batch layer (consumers/batch/views.py, another branch) has not landed in this
branch yet; until it does, there is never a snapshot and the reconciliation says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from consumers.api.merge import Part
from consumers.api.query import SalesQuery
from consumers.api.settings import ApiSettings


class Snapshot(Protocol):
    snapshot_id: str
    horizon_ms: int

    def parts(self, query: SalesQuery) -> Iterable[Part]: ...


@dataclass
class BatchView:
    s3: Any
    dynamodb: Any
    settings: ApiSettings

    @classmethod
    def of(cls, s3: Any, dynamodb: Any, settings: ApiSettings) -> BatchView:
        return cls(s3, dynamodb, settings)

    def latest_snapshot(self) -> Snapshot | None:
        return None

    def latest_reconciliation(self) -> dict[str, Any]:
        return {"status": "none", "summary": "no reconciliation has run yet"}
