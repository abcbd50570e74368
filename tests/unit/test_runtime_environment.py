"""The function environment scope: set while held, restored when the last holder leaves."""

from __future__ import annotations

import os
import threading

import pytest

from salesstream.runtime.environment import function_environment_set
from salesstream.runtime.model import RuntimeConfigError

pytestmark = pytest.mark.unit

NAME = "SALESSTREAM_TEST_SCOPED_VARIABLE"


def test_a_variable_is_set_in_the_block_and_removed_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    with function_environment_set({NAME: "inside"}):
        assert os.environ[NAME] == "inside"
    assert NAME not in os.environ


def test_the_process_value_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "the process's own")
    with function_environment_set({NAME: "the function's"}):
        assert os.environ[NAME] == "the function's"
    assert os.environ[NAME] == "the process's own"


def test_overlapping_holders_keep_it_until_the_last_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    first_in, second_out = threading.Event(), threading.Event()
    seen_by_first: list[str | None] = []

    def first() -> None:
        with function_environment_set({NAME: "v"}):
            first_in.set()
            second_out.wait(10)
            seen_by_first.append(os.environ.get(NAME))

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(10)
    with function_environment_set({NAME: "v"}):
        assert os.environ[NAME] == "v"
    second_out.set()
    thread.join(10)
    assert seen_by_first == ["v"]  # the second leaving did not take it from the first
    assert NAME not in os.environ


def test_two_values_at_once_are_an_error_and_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    other = NAME + "_OTHER"
    monkeypatch.delenv(other, raising=False)
    with function_environment_set({NAME: "a"}):
        with pytest.raises(RuntimeConfigError, match=NAME), function_environment_set({other: "x", NAME: "b"}):
            pass
        assert os.environ[NAME] == "a"
        assert other not in os.environ
    assert NAME not in os.environ
