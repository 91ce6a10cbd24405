"""`swapd config check --with-history`: declarations below what was measured."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import pytest

from swapd.config import cli
from swapd.history.paths import database_path
from swapd.history.runs import RunRow, insert_runs
from swapd.history.schema import migrate

CONFIG = """models:
  small:
    cmd: srv ${PORT}
    resources: {ram: 1GiB}
  right:
    cmd: srv ${PORT}
    resources: {ram: 4GiB}
resources:
  capacity: {ram: 10GiB}
"""


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["config", *argv])
    return int(args.func(args))


def test_a_declaration_below_the_measured_peak_is_a_located_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    conn = sqlite3.connect(database_path(tmp_path), isolation_level=None)
    migrate(conn)
    gib = 1 << 30
    insert_runs(
        conn,
        [
            RunRow("small", 1.0, 2.0, 3 * gib // 2, None),
            RunRow("small", 2.0, 2.0, gib, None),
            RunRow("right", 1.0, 2.0, 3 * gib, None),
        ],
    )
    conn.close()
    assert run("check", str(config), "--with-history", "--state-dir", str(tmp_path)) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"warning: {config}:4:17: models.small.resources.ram: declared 1GiB, but its last runs "
        "took up to 1.5GiB (the highest of its last 5 runs)"
    ]


def test_without_a_history_it_says_so_and_still_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    assert run("check", str(config), "--with-history", "--state-dir", str(tmp_path)) == 0
    assert "warning: --with-history: no history at" in capsys.readouterr().err
