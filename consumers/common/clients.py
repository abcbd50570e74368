"""The botocore client configuration shared by the Lambda functions and the local tooling.

A module of its own so that a handler can use it without importing the tooling
(`salesstream.emulator.targets`: endpoints, emulator credentials, LocalStack discovery) into its package.
"""

from __future__ import annotations

from typing import Final

from botocore.config import Config

CLIENT_CONFIG: Final = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=32,
)
