"""What every command shares: the state home, choosing the endpoint, checking flags and the
template's parameters.

`--target embedded` (the default) reuses the stack a running `salesstream up` recorded in
`<home>/stack.json`; when none is running, commands that need one start their own in-process.
The home is `SALESSTREAM_HOME` (a relative path is taken from the current directory), else
`$XDG_STATE_HOME/salesstream`, else `~/.local/state/salesstream`: found from any directory.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib
import json
import os
import re
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from salesstream.deploy.template import DEFAULT_TEMPLATE, Template, TemplateError
from salesstream.emulator.targets import DEFAULT_REGION, Endpoint, Target

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def state_home() -> Path:
    """Where the stack record, the runtime's stats and the spools live (see the module doc)."""
    if home := os.environ.get("SALESSTREAM_HOME"):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"  # the XDG rule
    return base / "salesstream"


def stack_file() -> Path:
    return state_home() / "stack.json"


def stats_file() -> Path:
    """The local runtime's stats snapshot (`up` and `consume` write it, the API's lag reads it)."""
    return state_home() / "runtime-stats.json"


def spool_path(endpoint: Endpoint, stream: str) -> Path:
    """The default spool of one endpoint and stream: what waits for one is never sent to another."""
    where = urllib.parse.urlsplit(endpoint.url).netloc if endpoint.url else endpoint.region
    key = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{endpoint.target.value}-{where}")
    return state_home() / "spool" / f"{key}--{stream}.jsonl"


@contextlib.contextmanager
def stack_lock() -> Iterator[bool]:
    """The record's lock, which a live `salesstream up` holds for its whole life: yields True
    when taken here (no `up` is running on this home), False when another process holds it.
    The kernel drops it when that process dies, however it dies, so it never goes stale."""
    path = state_home() / "stack.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_HELP_WIDTH: Final = 88


class CommandError(RuntimeError):
    """A failure the user can act on: printed as one line, exit code 2, no traceback."""


# Flag types: argparse turns their ArgumentTypeError into "argument --x: ..." and exit 2.
def _number(kind: Callable[[str], Any], test: Callable[[Any], bool], wanted: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if value != value or not test(value):  # value != value: NaN
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        return value

    parse.__name__ = wanted  # argparse names the type in "invalid <name> value"
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive whole number")
non_negative_int = _number(int, lambda v: v >= 0, "a whole number >= 0")
positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
non_negative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number >= 0")
share = _number(float, lambda v: 0 <= v <= 1, "a share between 0 and 1")
port = _number(int, lambda v: 0 <= v < 65536, "a port 0-65535")


def endpoint_url(text: str) -> str:
    """`--endpoint`: an http(s) URL with a host, as boto3's endpoint_url wants it."""
    parsed = urllib.parse.urlsplit(text)
    try:
        port_ok = parsed.port is None or 0 < parsed.port < 65536
    except ValueError:
        port_ok = False
    if parsed.scheme not in ("http", "https") or not parsed.hostname or not port_ok:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL such as http://localhost:4566")
    return text


def add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where")
    group.add_argument(
        "--target",
        choices=[t.value for t in Target if t is not Target.CUSTOM],
        default=Target.EMBEDDED.value,
        help="embedded emulator (default), LocalStack, or AWS (boto3 credential chain)",
    )
    group.add_argument(
        "--endpoint",
        type=endpoint_url,
        metavar="URL",
        help="any AWS-compatible endpoint, e.g. http://localhost:4566 (overrides --target)",
    )
    group.add_argument(
        "--region",
        default=os.environ.get("AWS_DEFAULT_REGION", DEFAULT_REGION),
        help=f"AWS region (default: $AWS_DEFAULT_REGION, else {DEFAULT_REGION})",
    )


def add_template_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("template parameters (deploy/template.yaml)")
    group.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help=argparse.SUPPRESS)
    group.add_argument("--stage", help="Stage parameter (resource name prefix)")
    group.add_argument("--shards", type=int, metavar="N", help="ShardCount parameter")
    group.add_argument("--window-seconds", type=int, metavar="SECONDS", help="WindowSeconds parameter")
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


def check_parameters(args: argparse.Namespace) -> None:
    """The template parameters against the template's own constraints (AllowedPattern,
    AllowedValues, MinValue, MaxValue), before anything starts: a bad one is a CommandError."""
    try:
        Template.load(args.template, template_parameters(args))
    except TemplateError as error:
        raise CommandError(str(error)) from None
    except OSError as error:
        raise CommandError(f"cannot read the template {args.template}: {error.strerror}") from None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL we wrote ourselves
            return True
    except urllib.error.HTTPError:
        return True  # it answered, with an error: something is listening
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False


def recorded_stack() -> dict[str, Any] | None:
    """What `salesstream up` recorded, alive or not (None: no record)."""
    try:
        text = stack_file().read_text()
    except FileNotFoundError:
        return None
    try:
        stack: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        raise CommandError(f"{stack_file()} is not a stack record: remove it") from None
    return stack


def running_stack() -> dict[str, Any] | None:
    """The stack a live `salesstream up` recorded, or None if there is none (or it died)."""
    stack = recorded_stack()
    url = stack.get("endpoint_url") if stack else None
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
    from salesstream.emulator.embedded import EmbeddedEmulator
    from salesstream.emulator.provision import provision

    check_parameters(args)  # before an emulator starts: a bad value costs nothing
    endpoint = endpoint_from(args, reuse_running=reuse_running)
    emulator = None
    if endpoint is None:
        if not start_embedded:
            raise CommandError(
                "no embedded stack is running: start `salesstream up` first "
                f"(no live record in {stack_file()})"
            )
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


def add_command(
    subparsers: Any, name: str, summary: str, description: str, examples: list[tuple[str, str]]
) -> argparse.ArgumentParser:
    """A sub-command's parser with its description and examples in `--help`."""
    lines = "\n".join(f"  # {what}\n  $ salesstream {name} {command}".rstrip() for what, command in examples)
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, _HELP_WIDTH),
        epilog=f"examples:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def print_json(document: Any) -> None:
    """The one thing a `--json` command writes to stdout."""
    print(json.dumps(document, sort_keys=True), flush=True)


@contextlib.contextmanager
def handlers_print_to_stderr() -> Iterator[Any]:
    """While Lambda handlers run in this process: their powertools logs and EMF metrics (stdout on
    Lambda, where CloudWatch reads it) go to stderr, so the command's stdout holds its output
    alone. Yields the real stdout, for that output."""
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        yield out


def load_as_function(template: Template, logical_id: str, *modules: str) -> None:
    """Import a function's modules as the function would meet them: its environment held while
    they are imported (powertools reads the service name and level when a logger is created;
    the settings come from the template, `BatchResources.from_template`), and its loggers
    writing to stderr. On Lambda they write to stdout, which CloudWatch reads; in the CLI
    stdout holds the command's output (a `--json` object must be all there is)."""
    from salesstream.runtime.environment import function_environment_set

    with (
        function_environment_set(template.function(logical_id).environment),
        contextlib.redirect_stdout(sys.stderr),
    ):
        for module in modules:
            importlib.import_module(module)
