"""`swapd config check|show|schema`, config/example.yaml and config/schema.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from swapd.config import cli, load_config, load_config_text

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "example.yaml"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["config", *argv])
    return int(args.func(args))


def test_schema_file_is_the_generated_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("schema") == 0
    out = capsys.readouterr().out
    assert out == (REPO / "config" / "schema.json").read_text(), (
        "config/schema.json is stale: run `swapd config schema > config/schema.json`"
    )
    schema = json.loads(out)
    props = schema["$defs"]["ConfigDoc"]["properties"]
    assert {"models", "globalTTL", "routing", "control", "logRingBytes"} <= set(props)
    fifo = schema["$defs"]["FifoDoc"]["properties"]
    assert fifo["maxWait"]["default"] == 30 and fifo["maxWait"]["minimum"] == 0


def test_example_passes_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("check", str(EXAMPLE)) == 0
    out = capsys.readouterr().out
    assert "routing: group" in out and "small" in out


def test_the_budget_sleep_example_passes_check_without_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("check", str(REPO / "config" / "examples" / "budget-sleep.yaml")) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "  v  vram 8GiB, asleep vram 1GiB" in captured.out.splitlines()


def test_example_covers_every_schema_key() -> None:
    text = EXAMPLE.read_text()
    schema = json.loads((REPO / "config" / "schema.json").read_text())
    missing = {
        f"{name}.{key}"
        for name, definition in schema["$defs"].items()
        for key in definition.get("properties", {})
        if f"{key}:" not in text and key != "strip_params"  # legacy spelling, not taught
    }
    assert missing == set()


def test_example_matrix_block_is_valid_too() -> None:
    pytest.importorskip("swapd.matrix")
    text = EXAMPLE.read_text().replace("    use: group", "    use: matrix")
    loaded = load_config_text(text, file="example.yaml", environ={})
    assert loaded.router_use == "matrix" and loaded.matrix is not None
    assert loaded.groups == {}


def test_check_reports_every_problem_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  a:\n    cmd: run ${PORT}\n    ttl: soon\nstartPort: 0\n")
    assert run("check", str(bad)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f'{bad}:4:5: models.a.ttl: expected int >= -1, got "soon"',
        f"{bad}:5:1: startPort: expected int >= 1, got 0",
    ]


def test_check_prints_warnings_and_exits_0_when_there_are_only_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "matrix.yaml"
    path.write_text(
        "models:\n  a: {cmd: 'run ${PORT}'}\n  lone: {cmd: 'run ${PORT}'}\n"
        "matrix:\n  sets: {s: a}\n"
    )
    assert run("check", str(path)) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"warning: {path}:3:3: models.lone: in no matrix set: it runs alone, "
        "and loading it stops every running model"
    ]
    assert captured.out.startswith(f"{path}: ok\n")


def test_file_defaults_to_swapd_config_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "c.yaml"
    good.write_text("models:\n  a: {cmd: 'run --port ${PORT}'}\n")
    monkeypatch.setenv("SWAPD_CONFIG", str(good))
    assert run("check") == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        f"{good}: ok",
        "models: 1",
        "  a  port 5800",
    ]


def test_show_json_has_argv_ports_and_expanded_macros(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "c.yaml"
    good.write_text(
        "macros: {m: --ctx 8}\nmodels:\n  a:\n    cmd: |\n      run ${m}\n      --port ${PORT}\n"
    )
    assert run("show", str(good), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    model = shown["models"]["a"]
    assert model["argv"] == ["run", "--ctx", "8", "--port", "5800"]
    assert model["port"] == 5800 and model["proxy"] == "http://localhost:5800"
    assert shown["routing"]["groups"]["(default)"]["members"] == ["a"]
    assert run("show", str(good)) == 0
    assert "  argv: run --ctx 8 --port 5800" in capsys.readouterr().out


def test_load_config_reads_the_example() -> None:
    loaded = load_config(EXAMPLE, environ={})
    small = loaded.models["small"]
    assert small.argv[:3] == ["python", "-m", "swapd.testing.fake_upstream"]
    assert small.capabilities.context == 8192  # the model macro overrides the global one
    assert loaded.resolve("small:creative") == "small"
    assert loaded.config.routing.fifo.priority == {"small": 10}
