"""Shared pytest configuration."""

from __future__ import annotations

import os

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
