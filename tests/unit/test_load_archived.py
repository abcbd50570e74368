"""The archive judged per event id against what the load test sent (load_tests/archived.py)."""

from __future__ import annotations

from load_tests.archived import tally_archive
from load_tests.truth import SendLedger


class Ids:
    """Event ids as a fleet numbers them: `run-<n>`; anything else belongs to another run."""

    def event_id(self, number: int) -> str:
        return f"run-{number}"

    def event_number(self, event_id: str) -> int | None:
        prefix, _, number = event_id.partition("-")
        return int(number) if prefix == "run" else None


IDS = Ids()


def ledger(sent: int, *, bad: set[int] | None = None, spooled: set[int] | None = None) -> SendLedger:
    result = SendLedger()
    result.note(1, sent, 100.0)
    result.bad = bad or set()
    result.not_acknowledged = spooled or set()
    return result


def test_every_accepted_event_archived_once_is_complete() -> None:
    tally = tally_archive([IDS.event_id(n) for n in (1, 2, 3)], ledger(3), IDS)
    assert (tally.archived, tally.lines, tally.missing, tally.unexpected) == (3, 3, 0, 0)


def test_a_resent_event_is_one_event_on_two_lines() -> None:
    tally = tally_archive(["run-1", "run-2", "run-2", "run-3"], ledger(3), IDS)
    assert (tally.archived, tally.lines, tally.missing, tally.unexpected) == (3, 4, 0, 0)


def test_an_accepted_event_missing_from_the_archive_is_named() -> None:
    tally = tally_archive(["run-1", "run-3"], ledger(3), IDS)
    assert (tally.archived, tally.missing) == (2, 1)
    assert tally.examples == {"not_archived": ["run-2"]}


def test_corrupted_and_spooled_events_are_not_expected_and_a_corrupted_one_archived_is_wrong() -> None:
    expected_absent = tally_archive(["run-1"], ledger(3, bad={2}, spooled={3}), IDS)
    assert (expected_absent.archived, expected_absent.missing, expected_absent.unexpected) == (1, 0, 0)
    archived_bad = tally_archive(["run-1", "run-2"], ledger(2, bad={2}), IDS)
    assert (archived_bad.missing, archived_bad.unexpected) == (0, 1)
    assert archived_bad.examples == {"corrupted_archived": ["run-2"]}


def test_ids_of_other_runs_are_ignored_and_ids_never_sent_are_wrong() -> None:
    tally = tally_archive(["run-1", "earlier-7", "run-9"], ledger(1), IDS)
    assert (tally.archived, tally.foreign, tally.unexpected, tally.lines) == (1, 1, 1, 2)
    assert tally.examples == {"archived_never_sent": ["run-9"]}
