"""The Jepsen-style count at the end of a fault run, and its verdict.

Pass = 0 lost, 0 counted twice, every malformed record and every conflicting duplicate
quarantined with its expected reason (matched by its position in the stream), 0 unexplained
reconciliation differences, the speed layer's totals equal to the producer's tally, no card
number anywhere.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, computed_field
from rich.table import Table

from load_tests.faults.kinds import Injected
from load_tests.faults.profile import FaultProfile


class KindCheck(BaseModel):
    """One kind of bad input: how many went in, and what the quarantine says about them."""

    model_config = ConfigDict(extra="forbid")

    expected_reason: str
    injected: int = 0  # acknowledged by the stream
    quarantined: int = 0  # found in the quarantine at their position, with the expected reason
    wrong_reason: dict[str, int] = Field(default_factory=dict)  # found there with another reason
    missing: int = 0  # found nowhere in the quarantine

    @property
    def ok(self) -> bool:
        return self.quarantined == self.injected and not self.wrong_reason and self.missing == 0


class FaultSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: FaultProfile
    attempted: int  # events handed to the producer or put past it, and conflicting copies
    acknowledged: int  # of the run's events, acknowledged by the stream
    counted: int  # distinct good events counted by the speed layer
    expected_counted: int
    archived: int | None  # events the batch snapshot recomputed from the archive
    quarantined: dict[str, int]  # every quarantine item of the run, by reason
    lost: int
    duplicated: int  # counted twice
    bad_counted: int  # malformed events counted (must be 0)
    good_quarantined: int  # good events quarantined (must be 0)
    totals_mismatches: int  # (store, currency) whose totals differ from the producer's tally
    malformed: dict[str, KindCheck]
    conflicting_duplicates: KindCheck
    unexplained_differences: int | None  # None: the reconciliation did not run
    reconciliation: str  # its status, or why it did not run
    faults_injected: dict[str, int]
    card_numbers_found: list[str]  # where (table/key, object, "logs", "spool")
    places_scanned: int
    failures: list[str] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @computed_field  # type: ignore[prop-decorator]  # in report.json too
    @property
    def not_exercised(self) -> list[str]:
        """The profile's faults that this run never injected (too few chances at its size): the
        verdict still stands, but says nothing about those faults."""
        return [
            kind
            for share, kinds in _INJECTED_BY.items()
            if getattr(self.profile, share) and not any(self.faults_injected.get(kind, 0) for kind in kinds)
            for kind in kinds[:1]
        ]

    def judge(self) -> FaultSummary:
        """Fills `failures` (the reasons the run did not pass) and returns itself."""
        failures = []
        if self.lost:
            failures.append(f"{self.lost} events lost")
        if self.duplicated:
            failures.append(f"{self.duplicated} events counted twice")
        if self.bad_counted:
            failures.append(f"{self.bad_counted} malformed events counted")
        if self.good_quarantined:
            failures.append(f"{self.good_quarantined} good events quarantined")
        if self.counted != self.expected_counted:
            failures.append(f"{self.counted} events counted, {self.expected_counted} expected")
        if self.totals_mismatches:
            failures.append(f"{self.totals_mismatches} totals differ from the producer's tally")
        for kind, check in [*self.malformed.items(), ("conflicting_duplicate", self.conflicting_duplicates)]:
            if not check.ok:
                failures.append(
                    f"{kind}: {check.injected} injected, {check.quarantined} quarantined as "
                    f"{check.expected_reason}, {check.missing} missing, other reasons {check.wrong_reason}"
                )
        if self.unexplained_differences is None:
            failures.append(f"no reconciliation: {self.reconciliation}")
        elif self.unexplained_differences:
            failures.append(f"{self.unexplained_differences} unexplained reconciliation differences")
        if self.card_numbers_found:
            failures.append(f"card numbers found in {len(self.card_numbers_found)} places")
        self.failures = failures
        return self

    def table(self) -> Table:
        table = Table(title=f"fault run: profile {self.profile.name}", show_header=True)
        table.add_column("figure")
        table.add_column("value", justify="right")
        malformed = sum(check.injected for check in self.malformed.values())
        malformed_ok = sum(check.quarantined for check in self.malformed.values())
        rows = [
            ("attempted", f"{self.attempted:,}"),
            ("acknowledged", f"{self.acknowledged:,}"),
            ("counted (distinct good events) / expected", f"{self.counted:,} / {self.expected_counted:,}"),
            (
                "archived (recomputed by the batch snapshot)",
                "-" if self.archived is None else f"{self.archived:,}",
            ),
            ("lost", f"{self.lost:,}"),
            ("duplicated (counted twice)", f"{self.duplicated:,}"),
            (
                "malformed: quarantined with the expected reason / injected",
                f"{malformed_ok:,} / {malformed:,}",
            ),
            (
                "conflicting duplicates: quarantined / injected",
                f"{self.conflicting_duplicates.quarantined:,} / {self.conflicting_duplicates.injected:,}",
            ),
            (
                "unexplained reconciliation differences",
                "-" if self.unexplained_differences is None else f"{self.unexplained_differences:,}",
            ),
            ("totals differing from the producer's tally", f"{self.totals_mismatches:,}"),
            (
                "card numbers found (places scanned)",
                f"{len(self.card_numbers_found)} ({self.places_scanned:,})",
            ),
            *((f"quarantined: {reason}", f"{n:,}") for reason, n in self.quarantined.items()),
            *((f"injected: {kind}", f"{n:,}") for kind, n in self.faults_injected.items()),
            ("faults of the profile never injected", ", ".join(self.not_exercised) or "none"),
            ("verdict", "PASS" if self.passed else "FAIL: " + "; ".join(self.failures)),
        ]
        for name, value in rows:
            table.add_row(name, value)
        return table


# a profile's share -> the fault names it injects (the first is the one named when none happened)
_INJECTED_BY: dict[str, tuple[str, ...]] = {
    "put_entry_failure": (Injected.PUT_ENTRY_FAILED,),
    "lost_response": (Injected.PUT_RESPONSE_LOST, Injected.DYNAMODB_RESPONSE_LOST),
    "dynamodb_throttle": (Injected.DYNAMODB_THROTTLED,),
    "transaction_cancel": (Injected.TRANSACTION_CANCELLED,),
    "replay_batch": (Injected.BATCH_REPLAYED,),
    "crash_after_write": (Injected.CRASHED_AFTER_WRITE,),
    "delay_final": (Injected.FINAL_DELAYED,),
    "reshards": (Injected.SHARD_SPLIT, Injected.SHARD_ROLLED),
    "malformed": (Injected.MALFORMED,),
    "conflicting_duplicate": (Injected.CONFLICTING_DUPLICATE,),
    "foreign_mixed_key": (Injected.FOREIGN_MIXED_KEY,),
}
