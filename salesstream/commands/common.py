"""What every command shares: choosing the endpoint and reading the template.

`--target embedded` (the default) reuses the stack a running `salesstream up` recorded in
`var/stack.json`; when none is running, commands that need one start their own in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from salesstream.aws import DEFAULT_REGION, Endpoint, Target
from salesstream.template import DEFAULT_TEMPLATE, Template

if TYPE_CHECKING:
    from collections.abc import Iterator

STATE_DIR = Path(os.environ.get("SALESSTREAM_HOME", "var"))
STACK_FILE = STATE_DIR / "stack.json"


class CommandError(RuntimeError):
    """A failure the user can act on: printed as one line, exit code 2, no traceback."""


def add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where")
    group.add_argument(
        "--target",
        choices=[t.value for t in Target if t is not Target.CUSTOM],
        default=Target.EMBEDDED.value,
        help="embedded emulator (default), LocalStack, or AWS (boto3 credential chain)",
    )
    group.add_argument("--endpoint", metavar="URL", help="any AWS-compatible endpoint (overrides --target)")
    group.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", DEFAULT_REGION))


def add_template_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("template parameters (deploy/template.yaml)")
    group.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help=argparse.SUPPRESS)
    group.add_argument("--stage", help="Stage parameter (resource name prefix)")
    group.add_argument("--shards", type=int, help="ShardCount parameter")
    group.add_argument("--window-seconds", type=int, help="WindowSeconds parameter")
    group.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other template parameter; repeatable",
    )


def template_parameters(args: argparse.Namespace) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"--param needs NAME=VALUE, got {item!r}")
        parameters[name] = value
    # The local tooling runs the event source mappings itself (salesstream/runtime), whatever the
    # endpoint; only `sam deploy` keeps the template's default (AWS Lambda runs them).
    parameters.setdefault("Target", "local")
    for name, value in (
        ("Stage", args.stage),
        ("ShardCount", args.shards),
        ("WindowSeconds", args.window_seconds),
    ):
        if value is not None:
            parameters[name] = value
    return parameters


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL we wrote ourselves
            return True
    except urllib.error.HTTPError:
        return True  # it answered, with an error: something is listening
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False


def running_stack() -> dict[str, Any] | None:
    """The stack a live `salesstream up` recorded, or None if there is none (or it died)."""
    if not STACK_FILE.exists():
        return None
    stack: dict[str, Any] = json.loads(STACK_FILE.read_text())
    url = stack.get("endpoint_url")
    return stack if url and _answers(url) else None


def endpoint_from(args: argparse.Namespace, *, reuse_running: bool = True) -> Endpoint | None:
    """The endpoint the arguments name, or None for 'embedded, but none is running yet'."""
    if args.endpoint:
        return Endpoint(Target.CUSTOM, args.endpoint, args.region)
    target = Target(args.target)
    if target is Target.LOCALSTACK:
        return Endpoint.localstack(args.region)
    if target is Target.AWS:
        return Endpoint(Target.AWS, None, args.region)
    stack = running_stack() if reuse_running else None
    return (
        Endpoint(Target.EMBEDDED, stack["endpoint_url"], stack.get("region", args.region)) if stack else None
    )


def account_of(endpoint: Endpoint) -> str:
    """The endpoint's account (STS): the first call a command makes, so the one that tells the
    user, in one line, that nothing answers or that there are no credentials."""
    try:
        return endpoint.account_id()
    except EndpointConnectionError as error:
        start = " (start LocalStack: docker compose up -d)" if endpoint.target is Target.LOCALSTACK else ""
        raise CommandError(f"nothing answers at {endpoint.url or 'AWS'}{start}") from error
    except NoCredentialsError as error:
        raise CommandError("no AWS credentials: configure boto3's credential chain") from error


@dataclass
class Session:
    endpoint: Endpoint
    template: Template
    started_here: bool


@contextlib.contextmanager
def session(
    args: argparse.Namespace,
    *,
    start_embedded: bool = True,
    reuse_running: bool = True,
    emulator_in_subprocess: bool = False,
    resolve_account: bool = True,
) -> Iterator[Session]:
    """Endpoint + resolved template for a command; starts (and provisions) an in-process
    embedded stack when the target is embedded and no `salesstream up` is running (or when
    `reuse_running` is False, as for `up` itself). `resolve_account=False` skips the STS call
    (a command that must start even when the endpoint is down; ARNs then use a placeholder)."""
    from salesstream.embedded import EmbeddedEmulator
    from salesstream.provision import provision

    endpoint = endpoint_from(args, reuse_running=reuse_running)
    emulator = None
    if endpoint is None:
        if not start_embedded:
            raise CommandError("no embedded stack is running: start `salesstream up` first")
        emulator = EmbeddedEmulator(in_subprocess=emulator_in_subprocess)
        endpoint = emulator.start()
    try:
        endpoint.activate()
        known_account = {"account_id": account_of(endpoint)} if resolve_account or emulator else {}
        template = Template.load(
            args.template,
            template_parameters(args),
            region=endpoint.region,
            endpoint_url=endpoint.url,
            **known_account,
        )
        if emulator is not None:
            provision(template, endpoint)
        yield Session(endpoint, template, started_here=emulator is not None)
    finally:
        if emulator is not None:
            emulator.stop()
