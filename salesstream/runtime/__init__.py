"""The local event-source-mapping runtime: AWS Lambda's Kinesis event source mappings,
tumbling windows included, run in-process against any endpoint (the embedded emulator,
LocalStack, or AWS for reading). See docs/runtime.md.

    runtime = Runtime(template, endpoint, clock=VirtualClock(), handlers={"AggregatorFunction": fn})
    runtime.run_until_idle()          # deterministic: tests, demos
    runtime.start(); ...; runtime.stop()   # threads: the CLI
"""

from salesstream.runtime.clock import Clock, VirtualClock, WallClock
from salesstream.runtime.hooks import Call, Fault, Hooks, SeededFaults
from salesstream.runtime.model import (
    CheckpointConflict,
    HandlerImportError,
    RuntimeConfigError,
    RuntimeStuck,
    ShardStats,
    SimulatedCrash,
)
from salesstream.runtime.options import RuntimeOptions
from salesstream.runtime.runtime import Runtime, RuntimeStats

__all__ = [
    "Call",
    "CheckpointConflict",
    "Clock",
    "Fault",
    "HandlerImportError",
    "Hooks",
    "Runtime",
    "RuntimeConfigError",
    "RuntimeOptions",
    "RuntimeStats",
    "RuntimeStuck",
    "SeededFaults",
    "ShardStats",
    "SimulatedCrash",
    "VirtualClock",
    "WallClock",
]
