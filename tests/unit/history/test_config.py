"""The `history:` section of the config file and what the store makes of it."""

from __future__ import annotations

from pathlib import Path

from swapd.config import load_config
from swapd.config.model import HistoryConfig
from swapd.history.settings import HistorySettings, settings_from_config
from tests.unit.config.conftest import load, problems

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "example.yaml"


def test_defaults_without_a_section() -> None:
    history = load("models: {}\n").config.history
    assert history == HistoryConfig(enabled=True, retention_days=7.0, max_requests=1_000_000)


def test_values_are_read() -> None:
    history = load(
        """
        history:
          enabled: false
          retentionDays: 0.5
          maxRequests: 0
        """
    ).config.history
    assert history == HistoryConfig(enabled=False, retention_days=0.5, max_requests=0)


def test_whole_days_are_accepted_as_numbers() -> None:
    assert load("history: {retentionDays: 30}\n").config.history.retention_days == 30.0


def test_negative_values_and_unknown_keys_are_errors_with_positions() -> None:
    assert problems("history:\n  retentionDays: -1\n  maxRequests: -5\n  maxRequest: 3\n") == [
        "config.yaml:2:3: history.retentionDays: expected number >= 0, got -1",
        "config.yaml:3:3: history.maxRequests: expected int >= 0, got -5",
        'config.yaml:4:3: history.maxRequest: unknown key "maxRequest"; '
        'did you mean "maxRequests"?',
    ]


def test_a_fraction_below_zero_is_refused_too() -> None:
    assert problems("history:\n  retentionDays: -0.5\n") == [
        "config.yaml:2:3: history.retentionDays: expected number >= 0, got -0.5"
    ]


def test_the_example_documents_the_defaults() -> None:
    history = load_config(EXAMPLE, environ={}).config.history
    assert history == HistoryConfig()


def test_settings_take_the_retention_from_the_config() -> None:
    base = HistorySettings(batch_size=7)
    settings = settings_from_config(HistoryConfig(retention_days=2, max_requests=10), base)
    assert (settings.retention_days, settings.max_requests, settings.batch_size) == (2, 10, 7)
