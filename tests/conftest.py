"""Shared pytest configuration."""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings

# Deterministic, CI-friendly property tests: fixed derandomised runs, no deadline
# (2 shared cores make per-example timing meaningless).
settings.register_profile(
    "swapd",
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("SWAPD_HYPOTHESIS_PROFILE", "swapd"))


def pytest_configure(config: pytest.Config) -> None:
    """Every swapd the tests start (in process or as `swapd serve`) keeps its state
    (history, KV slots) in a directory of this run, never in the user's
    ~/.local/state: tests must not share or leave files there. A test that
    names its own state directory still wins."""
    if "STATE_DIRECTORY" not in os.environ:
        os.environ["STATE_DIRECTORY"] = tempfile.mkdtemp(prefix="swapd-tests-state-")
