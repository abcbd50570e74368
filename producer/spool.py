"""The spool: events that could not be sent, kept on local disk until a later run sends them.

A JSON-lines file a person can read: one event per line with why and when it was spooled and the
event exactly as it was submitted (`jq -r .event SPOOL.jsonl` gives the original lines back; the
CLI keeps one spool per endpoint and stream under the state home: docs/cli.md).

Durability: lines are appended in one write and fsynced before the events count as spooled.
Removing what a run sent is an atomic rewrite (temporary file in the same folder, fsync,
rename, fsync of the folder), so a crash at any point leaves either the old or the new file,
never a half-written one; a crash before the rewrite only means some events are sent again,
which their event_id makes harmless. A torn last line (a crash in the middle of an append) is
kept as it is and reported, never dropped. One process at a time: an exclusive lock on
`<spool>.lock` makes a second producer on the same spool fail at once instead of racing.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError


class SpoolReason(StrEnum):
    ENDPOINT_UNREACHABLE = "endpoint_unreachable"
    RETRIES_EXHAUSTED = "retries_exhausted"
    REFUSED_BY_SERVICE = "refused_by_service"


class SpoolEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    spooled_at: AwareDatetime
    reason: SpoolReason
    detail: str
    event_id: str
    event: str  # the event's JSON text exactly as submitted

    @classmethod
    def of(cls, event_id: str, raw: bytes, reason: SpoolReason, detail: str) -> SpoolEntry:
        return cls(
            spooled_at=datetime.now(UTC),
            reason=reason,
            detail=detail,
            event_id=event_id,
            event=raw.decode(),  # validated events are UTF-8
        )

    @property
    def raw(self) -> bytes:
        return self.event.encode()


class SpoolLocked(RuntimeError):
    """Another producer holds this spool."""


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock: IO[bytes] | None = None
        self.unreadable_lines: list[int] = []  # 1-based line numbers kept as they are

    def open(self) -> list[tuple[int, SpoolEntry]]:
        """Lock the spool and read it: (line index, entry) for every readable line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise SpoolLocked(f"{self.path} is in use by another producer") from None
        self._lock = lock
        entries = []
        self.unreadable_lines = []
        for index, line in enumerate(self._lines()):
            try:
                entries.append((index, SpoolEntry.model_validate_json(line)))
            except ValidationError:
                self.unreadable_lines.append(index + 1)
        return entries

    def close(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return [line for line in data.split(b"\n") if line.strip()]

    def append(self, entries: Iterable[SpoolEntry]) -> int:
        """Append and fsync; returns how many entries were written."""
        lines = [entry.model_dump_json().encode() + b"\n" for entry in entries]
        if not lines:
            return 0
        created = not self.path.exists()
        with self.path.open("ab") as spool:
            if spool.tell() and not self._ends_with_newline():
                lines.insert(0, b"\n")  # after a torn last line, start on a fresh line
            spool.write(b"".join(lines))
            spool.flush()
            os.fsync(spool.fileno())
        if created:
            _fsync_folder(self.path.parent)
        return len(lines)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as spool:
            spool.seek(-1, os.SEEK_END)
            return spool.read(1) == b"\n"

    def remove(self, indices: set[int]) -> None:
        """Atomically drop the lines with these indices (as numbered by `open`)."""
        if not indices:
            return
        kept = [line for index, line in enumerate(self._lines()) if index not in indices]
        if not kept:
            self.path.unlink(missing_ok=True)
            _fsync_folder(self.path.parent)
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("wb") as spool:
            spool.write(b"".join(line + b"\n" for line in kept))
            spool.flush()
            os.fsync(spool.fileno())
        os.replace(temporary, self.path)
        _fsync_folder(self.path.parent)
