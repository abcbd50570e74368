"""Where AWS calls go: the embedded emulator, LocalStack, a custom endpoint, or AWS itself.

An `Endpoint` is chosen once per process. `activate()` exports it through the environment
variables boto3 reads natively (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, and fake credentials for
emulators), so Lambda handlers run in-process by the local runtime build their own clients the
same way they do on AWS and still reach the emulator. Clients are cached: one per service.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import boto3

from consumers.common.clients import CLIENT_CONFIG

if TYPE_CHECKING:
    from botocore.config import Config

# Emulators accept any credentials; these are the documented placeholders, not secrets.
_EMULATOR_CREDENTIALS: Final = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
DEFAULT_REGION: Final = "us-east-1"
__all__ = ["CLIENT_CONFIG", "DEFAULT_REGION", "Endpoint", "Target"]


class Target(StrEnum):
    EMBEDDED = "embedded"
    LOCALSTACK = "localstack"
    AWS = "aws"
    CUSTOM = "custom"


@dataclass
class Endpoint:
    target: Target
    url: str | None
    region: str = DEFAULT_REGION
    _clients: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def localstack(cls, region: str = DEFAULT_REGION) -> Endpoint:
        from localstack_client.config import get_service_endpoint

        return cls(Target.LOCALSTACK, get_service_endpoint("kinesis"), region)

    @property
    def is_emulator(self) -> bool:
        return self.target is not Target.AWS

    def environment(self) -> dict[str, str]:
        """What a process (or an in-process handler) needs to reach this endpoint."""
        env = {"AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}
        if self.url:
            env["AWS_ENDPOINT_URL"] = self.url
        if self.is_emulator:
            env.update(_EMULATOR_CREDENTIALS)
        return env

    def activate(self) -> Endpoint:
        """Point every boto3 client this process creates from now on at this endpoint."""
        os.environ.update(self.environment())
        if not self.url:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        return self

    def client(self, service: str, config: Config | None = None) -> Any:
        """A cached boto3 client; pass `config` for a client with its own retry policy."""
        key = (service, id(config))
        if key not in self._clients:
            credentials = (
                {
                    "aws_access_key_id": _EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                    "aws_secret_access_key": _EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                }
                if self.is_emulator
                else {}
            )
            self._clients[key] = boto3.session.Session().client(
                service,
                region_name=self.region,
                endpoint_url=self.url,
                config=CLIENT_CONFIG.merge(config) if config else CLIENT_CONFIG,
                **credentials,
            )
        return self._clients[key]

    def account_id(self) -> str:
        return str(self.client("sts").get_caller_identity()["Account"])
