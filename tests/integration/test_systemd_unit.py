"""config/swapd.service passes `systemd-analyze verify` with no warnings."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "config" / "swapd.service"


def unit_text() -> str:
    return UNIT.read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    swapd = Path(sys.executable).with_name("swapd")
    assert swapd.exists(), "swapd console script missing from the environment"
    unit = tmp_path / "swapd.service"
    # verify checks that ExecStart exists: point it at this environment's swapd.
    unit.write_text(unit_text().replace("/usr/local/bin/swapd", str(swapd)))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "swapd.service" not in proc.stderr, proc.stderr


def test_unit_has_the_operational_contract() -> None:
    text = unit_text()
    for line in (
        "Type=notify",
        "ExecStart=/usr/local/bin/swapd serve --config /etc/swapd/config.yaml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RuntimeDirectory=swapd",
        "KillMode=mixed",
        "Restart=on-failure",
    ):
        assert line in text.splitlines(), line
    assert not any(line.startswith("PrivateDevices") for line in text.splitlines())  # GPUs
