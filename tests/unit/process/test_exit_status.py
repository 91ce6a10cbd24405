"""Exits in words: codes as codes, deaths by signal by name and with their usual meaning."""

from __future__ import annotations

import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.process.exit_status import SIGNAL_MEANINGS, describe_exit, signal_name


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0, "exited with code 0"),
        (3, "exited with code 3"),
        (255, "exited with code 255"),
        (
            -signal.SIGILL,
            "killed by SIGILL (illegal instruction: the binary needs CPU features "
            "this machine lacks)",
        ),
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGTERM, "killed by SIGTERM"),
        (
            -signal.SIGSEGV,
            "killed by SIGSEGV (segmentation fault: the program touched memory it does not own)",
        ),
        (None, "still running"),
    ],
)
def test_describe_exit(code: int | None, text: str) -> None:
    assert describe_exit(code) == text


def test_a_signal_without_a_name_is_numbered() -> None:
    assert signal_name(77) == "signal 77"
    assert describe_exit(-77) == "killed by signal 77"


@given(st.sampled_from(sorted(signal.Signals, key=int)))
def test_every_named_signal_reads_as_its_name(sig: signal.Signals) -> None:
    text = describe_exit(-int(sig))
    assert text.startswith(f"killed by {sig.name}")
    assert ("(" in text) == (int(sig) in SIGNAL_MEANINGS)
    assert "code -" not in text


@given(st.integers(min_value=0, max_value=255))
def test_every_exit_code_is_said_as_such(code: int) -> None:
    assert describe_exit(code) == f"exited with code {code}"
