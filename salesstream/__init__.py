"""salesstream: near-real-time sales aggregation on Amazon Kinesis.

`salesstream.core` is the pure domain (no AWS SDK); the rest of this package is the
local tooling around it: the CLI, the embedded stack and the event-source-mapping runtime.
"""
