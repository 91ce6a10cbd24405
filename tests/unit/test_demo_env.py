"""The demo's binary and model are found from the installed packages."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from swapd_demo import env as demo_env


def test_paths_exist_and_are_usable() -> None:
    env = demo_env.demo_environment()
    assert os.access(env["SWAPD_LLAMA_SERVER"], os.X_OK)
    assert env["SWAPD_SMOLLM2_GGUF"].endswith(".gguf")
    assert os.path.getsize(env["SWAPD_SMOLLM2_GGUF"]) > 10_000_000


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_env, "MODEL_PACKAGE", "no_such_package_xyz")
    with pytest.raises(demo_env.DemoMissing, match="no_such_package_xyz is not installed"):
        demo_env.smollm2_gguf()


def test_command_prints_exports_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_env._run(argparse.Namespace(json=False)) == 0
    out = capsys.readouterr().out
    assert out.startswith("export SWAPD_LLAMA_SERVER=")
    assert demo_env._run(argparse.Namespace(json=True)) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"SWAPD_LLAMA_SERVER", "SWAPD_SMOLLM2_GGUF"}
