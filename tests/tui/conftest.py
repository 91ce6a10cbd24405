"""TUI test fixtures: a fixed time zone so clock columns render the same everywhere."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def anyio_backend() -> str:
    # Textual runs on asyncio only (pytest-trio's trio_mode would break its tests).
    return "asyncio"
