"""The spool: readable JSON lines, durable appends, atomic removal, nothing dropped on a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from producer.spool import Spool, SpoolEntry, SpoolLocked, SpoolReason


def entry(number: int) -> SpoolEntry:
    raw = json.dumps({"event_id": f"e.{number}", "n": number}).encode()
    return SpoolEntry.of(f"e.{number}", raw, SpoolReason.ENDPOINT_UNREACHABLE, "cannot reach the endpoint")


def read(path: Path) -> list[tuple[int, SpoolEntry]]:
    spool = Spool(path)
    try:
        return spool.open()
    finally:
        spool.close()


def event_ids(path: Path) -> list[str]:
    """What a person reading the file sees (works while a producer holds the spool)."""
    return [json.loads(line)["event_id"] for line in path.read_text().splitlines()]


def test_entries_round_trip_and_are_readable_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    assert spool.open() == []
    assert spool.append(entry(n) for n in range(3)) == 3
    spool.close()

    lines = path.read_text().splitlines()
    assert [json.loads(json.loads(line)["event"])["n"] for line in lines] == [0, 1, 2]
    assert {json.loads(line)["reason"] for line in lines} == {"endpoint_unreachable"}
    back = read(path)
    assert [(index, e.event_id) for index, e in back] == [(0, "e.0"), (1, "e.1"), (2, "e.2")]
    assert back[1][1].raw == entry(1).raw


def test_removing_lines_rewrites_the_rest_and_removing_all_deletes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    spool.open()
    spool.append(entry(n) for n in range(4))
    spool.remove({0, 2})
    assert event_ids(path) == ["e.1", "e.3"]
    spool.remove({0, 1})
    assert not path.exists()
    spool.close()


def test_a_crash_during_the_rewrite_leaves_the_old_spool_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    spool.open()
    spool.append(entry(n) for n in range(5))
    before = path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        spool.remove({1, 2})
    assert path.read_bytes() == before  # nothing lost: the next run sends all five again
    monkeypatch.undo()
    spool.remove({1, 2})  # the leftover temporary file is simply overwritten
    spool.close()
    assert [e.event_id for _, e in read(path)] == ["e.0", "e.3", "e.4"]


def test_a_torn_last_line_is_kept_and_reported_never_dropped(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    torn = entry(1).model_dump_json()[:40]
    path.write_text(entry(0).model_dump_json() + "\n" + torn)  # a crash in the middle of an append

    spool = Spool(path)
    assert [e.event_id for _, e in spool.open()] == ["e.0"]
    assert spool.unreadable_lines == [2]
    appended = entry(2)
    spool.append([appended])
    spool.remove({0})
    spool.close()
    assert path.read_text().splitlines() == [torn, appended.model_dump_json()]


def test_one_producer_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    first = Spool(path)
    first.open()
    with pytest.raises(SpoolLocked):
        Spool(path).open()
    first.close()
    second = Spool(path)
    second.open()
    second.close()
