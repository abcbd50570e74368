"""The botocore client configuration shared by the Lambda functions and the local tooling, and
the functions' clients.

A module of its own so that a handler can use it without importing the tooling
(`salesstream.emulator.targets`: endpoints, emulator credentials, LocalStack discovery) into its package.
"""

from __future__ import annotations

from typing import Any, Final

import botocore.session
from botocore.config import Config

CLIENT_CONFIG: Final = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=32,
)


def clients(*services: str) -> tuple[Any, ...]:
    """One new botocore session's clients: boto3's clients without importing boto3 (its
    resources and s3transfer, unused here, cost a cold start ~40 ms)."""
    session = botocore.session.get_session()
    return tuple(session.create_client(service, config=CLIENT_CONFIG) for service in services)
