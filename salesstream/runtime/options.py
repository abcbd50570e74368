"""The runtime's settings: loaded once, explicit arguments win over SALESSTREAM_RUNTIME_* env vars."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MEBIBYTE = 1024 * 1024


class RuntimeOptions(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESSTREAM_RUNTIME_", frozen=True, extra="forbid")

    # Lambda polls each shard about once a second, sooner while it is behind.
    poll_interval_seconds: float = Field(1.0, gt=0)
    # How often the shard list is read (new children, closed parents).
    shard_refresh_seconds: float = Field(5.0, gt=0)
    # A window closes this long after its end once the shard is read up to then: slack for the
    # difference between the stream's clock (arrival times) and ours.
    window_close_grace_seconds: float = Field(1.0, ge=0)
    # AWS does not document whether the final invocation carries records: default none.
    final_invocation_carries_records: bool = False
    # Window state per shard (AWS: 1 MB); past it the window segment ends early.
    state_limit_bytes: int = Field(MEBIBYTE, gt=2)
    # Lambda's synchronous invocation payload limit.
    payload_limit_bytes: int = Field(6 * MEBIBYTE, gt=0)
    # GetRecords Limit (the API allows at most 10,000 records per call).
    get_records_limit: int = Field(10_000, ge=1, le=10_000)
    # Overrides every function's template Timeout (tests of the timeout guard).
    timeout_seconds: float | None = Field(None, gt=0)
    # Run the template's Schedule events (rate/cron) on the runtime's clock, as EventBridge would.
    run_schedules: bool = True
    # Worker threads (start()) look for work this often when they have none.
    idle_tick_seconds: float = Field(0.05, gt=0)
    # Invocations of one function that may run at once. Lambda runs one per shard, each in a
    # sandbox of its own; in-process they share the handler's module state, so the default is one
    # (a warm sandbox) and more is for handlers that are thread-safe (the aggregator is).
    concurrent_invocations: int = Field(1, ge=1)
