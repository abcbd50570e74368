"""The producer's settings: one object, loaded once; explicit values win over the environment
(SALESSTREAM_PRODUCER_LINGER_SECONDS=0.5 and so on)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer.aggregation import Compression
from producer.sender import RetryPolicy


class ProducerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALESSTREAM_PRODUCER_", frozen=True, extra="forbid")

    aggregate: bool = True
    # Aggregates go out in salesstream's compressed envelope (gzip), which only salesstream's
    # consumers open: ~8x fewer payload units and shard bytes. No effect without `aggregate`.
    compress: bool = True
    compression_level: int = Field(default=1, ge=1, le=9)
    # The payload units an envelope aims to fill (an aggregate grows with the compression ratio).
    compressed_units: int = Field(default=1, ge=1, le=40)
    # Buffered events are sent at the latest this long after the oldest arrived (KPL's
    # RecordMaxBufferedTime); checked on every submit and by poll().
    linger_seconds: float = Field(default=0.1, ge=0)
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_seconds: float = Field(default=0.05, gt=0)
    backoff_cap_seconds: float = Field(default=2.0, gt=0)
    # A reshard is noticed when a record lands on an unexpected shard; this catches the rest.
    shard_refresh_seconds: float = Field(default=30.0, gt=0)

    @property
    def compression(self) -> Compression | None:
        """A fresh `Compression` (it keeps the running ratio: one per producer), or None."""
        if not (self.aggregate and self.compress):
            return None
        return Compression(self.compression_level, self.compressed_units)

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.backoff_base_seconds, self.backoff_cap_seconds)
