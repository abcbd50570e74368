"""The embedded emulator: moto's server on a free loopback port, no Docker, no AWS account.

By default it runs in a thread of this process (starts in ~0.5 s). `in_subprocess=True` runs
it as a child process instead, so the emulator gets a core of its own (load tests use this on a
2-core machine: the pipeline and the emulator no longer share one interpreter lock).
Either way moto runs with `salesstream.emulator.moto_fixes` applied, so resharding behaves as on Kinesis.
`roll_table_stream` asks it to roll a table stream's shard, which DynamoDB does by itself and no
AWS API asks for (the fault run uses it).
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from moto.server import ThreadedMotoServer

from salesstream.emulator import moto_fixes
from salesstream.emulator.moto_fixes import ROLL_STREAM_PATH
from salesstream.emulator.targets import Endpoint, Target

if TYPE_CHECKING:
    from types import TracebackType

MOTO_SERVER = "salesstream.emulator.moto_fixes"  # moto's server with the project's fixes
_LOOPBACK = "127.0.0.1"


class EmulatorError(RuntimeError):
    """The embedded emulator did not start or stopped answering."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _wait_until_ready(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):  # noqa: S310 - loopback only
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise EmulatorError(f"the embedded emulator at {url} did not answer within {timeout:.0f} s")


def roll_table_stream(endpoint: Endpoint, table: str) -> tuple[str, str]:
    """Close the open shard of the table's stream and open its child, on the embedded emulator
    (salesstream/emulator/moto_fixes.py, `roll_stream`). Returns (parent shard id, child shard id)."""
    if endpoint.target is not Target.EMBEDDED or endpoint.url is None:
        raise EmulatorError(
            f"only the embedded emulator rolls a stream's shard on request, not {endpoint.target}"
        )
    asked = {"TableName": table, "Region": endpoint.region, "AccountId": endpoint.account_id()}
    request = urllib.request.Request(  # noqa: S310 - the emulator's loopback URL
        endpoint.url + ROLL_STREAM_PATH,
        data=json.dumps(asked).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback only
            rolled = json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        raise EmulatorError(
            f"the emulator did not roll {table}'s stream: {refused.read().decode()}"
        ) from refused
    return str(rolled["ParentShardId"]), str(rolled["ShardId"])


class EmbeddedEmulator:
    def __init__(self, *, port: int | None = None, in_subprocess: bool = False) -> None:
        self.port = port or _free_port()
        self.in_subprocess = in_subprocess
        self._thread_server: ThreadedMotoServer | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{_LOOPBACK}:{self.port}"

    def start(self) -> Endpoint:
        # werkzeug logs every request at INFO; thousands per second would drown the CLI.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        if self.in_subprocess:
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [
                    sys.executable,
                    "-m",
                    "salesstream.emulator.moto_fixes",
                    "-H",
                    _LOOPBACK,
                    "-p",
                    str(self.port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            moto_fixes.apply()  # resharding as AWS does it (see salesstream/emulator/moto_fixes.py)
            self._thread_server = ThreadedMotoServer(ip_address=_LOOPBACK, port=self.port, verbose=False)
            self._thread_server.start()
        _wait_until_ready(self.url)
        return Endpoint(Target.EMBEDDED, self.url)

    def stop(self) -> None:
        if self._thread_server is not None:
            self._thread_server.stop()
            self._thread_server = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()  # reaped, so its CPU is counted in RUSAGE_CHILDREN
            self._process = None

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
