"""What a fault run injects, and how big the run is: a `FaultProfile`, by name or from YAML.

    profile = FaultProfile.load("standard")        # a name in profiles.yaml, or a path to a file
    profile.run_seconds                            # orders / rate

Every share is a probability drawn per unit it names (a PutRecords entry, a write call, a
batch, an invocation, a record); the draws are seeded (load_tests/faults/draw.py).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Share = float
_PROFILES: Final = "profiles.yaml"


class UnknownProfile(LookupError):
    """Neither a named profile nor a readable YAML file."""


class FaultProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "custom"
    description: str = ""
    seed: int = 8
    # the size and shape of the run
    orders: int = Field(100_000, ge=1)
    shards: int = Field(4, ge=1)
    rate: float = Field(5_000, gt=0)  # events/s
    stores: int = Field(200, ge=1)
    window_seconds: int = Field(10, ge=1, le=900)
    # the mappings' BatchSize (records per invocation): KPL aggregation packs ~50 events into a
    # record, so the template's batches make only ~100 invocations of 100,000 orders; smaller
    # batches give the per-invocation faults (replay, crash after write) something to hit
    batch_size: int | None = Field(None, ge=1, le=10_000)
    # the producer's side (botocore hooks on its Kinesis client)
    put_entry_failure: Share = Field(0.0, ge=0, lt=1)
    lost_response: Share = Field(0.0, ge=0, lt=1)  # PutRecords calls and the consumers' DynamoDB writes
    # the consumers' side (botocore hooks on every client the handlers create)
    dynamodb_throttle: Share = Field(0.0, ge=0, lt=1)
    transaction_cancel: Share = Field(0.0, ge=0, lt=1)
    # the event-source-mapping runtime (salesstream.runtime.hooks)
    replay_batch: Share = Field(0.0, ge=0, lt=1)
    crash_after_write: Share = Field(0.0, ge=0, lt=1)
    delay_final: Share = Field(0.0, ge=0, lt=1)
    reshards: int = Field(0, ge=0)  # shards split, spread over the middle of the run
    # bad input, put into the stream past the producer
    malformed: Share = Field(0.0, ge=0, lt=1)  # spread evenly over every kind of the catalogue
    conflicting_duplicate: Share = Field(0.0, ge=0, lt=1)
    # good events a foreign producer writes past ours: aws-kinesis-agg aggregates with mixed
    # partition keys and no explicit hash key (load_tests/faults/foreign.py)
    foreign_mixed_key: Share = Field(0.0, ge=0, lt=1)

    @property
    def run_seconds(self) -> float:
        return self.orders / self.rate

    @property
    def injects_anything(self) -> bool:
        return any(
            getattr(self, name)
            for name in (
                "put_entry_failure",
                "lost_response",
                "dynamodb_throttle",
                "transaction_cancel",
                "replay_batch",
                "crash_after_write",
                "delay_final",
                "reshards",
                "malformed",
                "conflicting_duplicate",
                "foreign_mixed_key",
            )
        )

    @classmethod
    def named(cls) -> dict[str, FaultProfile]:
        text = resources.files(__package__).joinpath(_PROFILES).read_text()
        return {
            name: cls.model_validate({"name": name, **_mapping_of(body)})
            for name, body in _mapping(text).items()
        }

    @classmethod
    def load(cls, name_or_path: str) -> FaultProfile:
        """A named profile (`none`, `standard`) or a YAML file holding one profile's fields."""
        named = cls.named()
        if name_or_path in named:
            return named[name_or_path]
        path = Path(name_or_path)
        if not path.is_file():
            raise UnknownProfile(
                f"no fault profile {name_or_path!r}: use one of {sorted(named)} or a YAML file"
            )
        try:
            return cls.model_validate({"name": path.stem, **_mapping(path.read_text())})
        except ValidationError as error:
            raise UnknownProfile(f"{path}: {error}") from error

    def sized(self, orders: int | None) -> FaultProfile:
        """The same faults over another number of orders."""
        return self if orders is None else self.model_validate({**self.model_dump(), "orders": orders})


def _mapping(text: str) -> dict[str, Any]:
    return _mapping_of(yaml.safe_load(text))


def _mapping_of(loaded: Any) -> dict[str, Any]:
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UnknownProfile("a fault profile holds a mapping of field names to values")
    return loaded
