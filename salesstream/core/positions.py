"""Where a user record sits in a shard: (sequence number, sub-sequence number).

Kinesis sequence numbers are decimal strings of up to 56 digits, more than a DynamoDB Number
holds (38), and moto uses small integers, so they are compared as integers and stored as
zero-padded strings, which sort the same way as the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

_SEQUENCE_DIGITS: Final = 60
_SUBSEQUENCE_DIGITS: Final = 6


def sequence_key(sequence_number: str) -> str:
    """A sequence number as a fixed-width string: sorts like the number, fits any store."""
    if not sequence_number.isdigit():
        raise ValueError(f"not a Kinesis sequence number: {sequence_number!r}")
    return sequence_number.zfill(_SEQUENCE_DIGITS)


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A user record's place in its shard; de-aggregated records share the parent's
    sequence number and differ by sub-sequence number (0 for a non-aggregated record)."""

    sequence: int
    subsequence: int = 0

    @classmethod
    def of(cls, sequence_number: str, subsequence: int = 0) -> Position:
        return cls(int(sequence_number), subsequence)

    @property
    def sequence_number(self) -> str:
        return str(self.sequence)

    @property
    def key(self) -> str:
        return f"{self.sequence:0{_SEQUENCE_DIGITS}d}.{self.subsequence:0{_SUBSEQUENCE_DIGITS}d}"
