"""What a load test is asked to do (`LoadTestConfig`) and the documented run's targets: the one
module the generator, the charts, the report and the run itself all read, so none imports another
for them."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from load_tests.profile import LoadProfile, Shape
from producer.simulator import FleetConfig

# The load test's targets on this 2-core machine (docs/load-tests.md).
TARGET_RATE: Final = 20_000
TARGET_SECONDS: Final = 60
TARGET_VISIBLE_P95: Final = 1.5
TARGET_EVENTS_PER_UNIT: Final = 95
TARGET_COST: Final = 0.01
RECONCILE_UP_TO_SECONDS: Final = 120  # the snapshot reads the whole archive: ~26 us per event here


class LoadTestConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    source: Literal["stream", "table"] = "stream"  # table: the orders table (load_tests/table_source.py)
    shape: Shape = Shape.FLAT
    rate: float = Field(20_000, gt=0)  # events/s (the peak of a day, the end of a ramp)
    ramp_from: float = Field(0, ge=0)
    duration: float = Field(60, gt=0)  # seconds of traffic
    stores: int = Field(1_000, ge=1)
    terminals: int = Field(4, ge=1)  # per store
    seed: int = 1
    refund_share: float = Field(0.03, ge=0, lt=1)
    zipf_exponent: float = Field(0.6, ge=0)
    max_lines: int = Field(5, ge=1, le=5)
    skewed_clock_share: float = Field(0.01, ge=0, le=1)
    max_clock_skew_seconds: int = Field(900, ge=0)
    ids: Literal["simulator", "realistic"] = "simulator"  # realistic: UUID ids, hex orders, EAN-13 SKUs
    bad_share: float = Field(0.001, ge=0, lt=1)  # corrupted events put past the producer
    probe_interval: float = Field(0.1, gt=0)
    sample_interval: float = Field(1.0, gt=0)
    drain_timeout: float = Field(120, gt=0)  # after the last window should have closed
    reconcile: bool | None = None  # the batch snapshot and reconciliation after the run; None: auto
    command: str = ""

    @property
    def reconciles(self) -> bool:
        return self.duration <= RECONCILE_UP_TO_SECONDS if self.reconcile is None else self.reconcile

    def fleet_config(self) -> FleetConfig:
        return FleetConfig(
            stores=self.stores,
            terminals_per_store=self.terminals,
            seed=self.seed,
            refund_share=self.refund_share,
            zipf_exponent=self.zipf_exponent,
            max_lines=self.max_lines,
            run_id=self.run_id,
            skewed_clock_share=self.skewed_clock_share,
            max_clock_skew_seconds=self.max_clock_skew_seconds,
            ids=self.ids,
        )

    def profile(self) -> LoadProfile:
        return LoadProfile(self.shape, self.rate, self.duration, self.ramp_from)
