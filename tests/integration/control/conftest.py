"""Fixtures for control-socket tests: a short socket path (sun_path is 108 bytes)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def sock_path() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="swc-", dir="/tmp"))
    try:
        yield directory / "control.sock"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
