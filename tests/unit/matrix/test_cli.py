"""`swapd matrix expand|solve`: through load_config on real files, and the pure renderers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swapd.cli import main
from swapd.matrix import compile_matrix
from swapd.matrix.cli import (
    expansion_json,
    render_expansion,
    render_solution,
    resolve_model,
    solution_json,
    split_running,
)

MATRIX_CONFIG = """\
models:
  gemma:
    cmd: server --port ${PORT}
    aliases: [g-alias]
  qwen: {cmd: "server --port ${PORT}"}
  voxtral: {cmd: "server --port ${PORT}"}
  llama70B: {cmd: "server --port ${PORT}"}
  loner: {cmd: "server --port ${PORT}"}
routing:
  router:
    use: matrix
    settings:
      matrix:
        vars: {g: gemma, q: qwen, v: voxtral, L: llama70B}
        evict_costs: {v: 50, L: 30}
        sets:
          standard: (g | q) & v
          full: L
"""

GROUP_CONFIG = """\
models:
  a: {cmd: "server --port ${PORT}"}
"""

BROKEN_MATRIX = MATRIX_CONFIG.replace("full: L", "full: L & +nowhere")


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_expand_json(tmp_path, capsys):
    code, out, err = run(capsys, "matrix", "expand", write(tmp_path, MATRIX_CONFIG), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "sets": {"standard": [["gemma", "voxtral"], ["qwen", "voxtral"]], "full": [["llama70B"]]},
        "truncated": False,
    }


def test_expand_json_limit(tmp_path, capsys):
    path = write(tmp_path, MATRIX_CONFIG)
    code, out, _ = run(capsys, "matrix", "expand", path, "--json", "--limit", "1")
    assert code == 0
    assert json.loads(out) == {
        "sets": {"standard": [["gemma", "voxtral"]], "full": [["llama70B"]]},
        "truncated": True,
    }


def test_expand_text(tmp_path, capsys):
    code, out, _ = run(capsys, "matrix", "expand", write(tmp_path, MATRIX_CONFIG))
    assert code == 0
    assert out == (
        "standard: (g | q) & v\n  gemma, voxtral\n  qwen, voxtral\nfull: L\n  llama70B\n"
    )


def test_expand_default_file_from_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SWAPD_CONFIG", write(tmp_path, MATRIX_CONFIG))
    code, out, _ = run(capsys, "matrix", "expand", "--json")
    assert code == 0
    assert list(json.loads(out)["sets"]) == ["standard", "full"]


@pytest.mark.parametrize("limit", ["-1", "many"])
def test_expand_bad_limit(tmp_path, capsys, limit):
    code, out, err = run(
        capsys, "matrix", "expand", write(tmp_path, MATRIX_CONFIG), "--limit", limit
    )
    assert code == 2
    assert out == ""
    assert "--limit: expected an integer >= 0" in err


def test_solve_json(tmp_path, capsys):
    path = write(tmp_path, MATRIX_CONFIG)
    code, out, err = run(
        capsys, "matrix", "solve", path, "--want", "qwen", "--running", "gemma,voxtral", "--json"
    )
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "target": "qwen",
        "set": "standard",
        "combination": ["qwen", "voxtral"],
        "evict": ["gemma"],
        "cost": 1,
    }


def test_solve_resolves_aliases(tmp_path, capsys):
    path = write(tmp_path, MATRIX_CONFIG)
    code, out, _ = run(
        capsys,
        "matrix",
        "solve",
        path,
        "--want",
        "llama70B",
        "--running",
        "g-alias, voxtral",
        "--json",
    )
    assert code == 0
    assert json.loads(out) == {
        "target": "llama70B",
        "set": "full",
        "combination": ["llama70B"],
        "evict": ["gemma", "voxtral"],
        "cost": 51,
    }


def test_solve_target_in_no_set(tmp_path, capsys):
    path = write(tmp_path, MATRIX_CONFIG)
    code, out, _ = run(
        capsys, "matrix", "solve", path, "--want", "loner", "--running", "gemma,voxtral", "--json"
    )
    assert code == 0
    assert json.loads(out) == {
        "target": "loner",
        "set": None,
        "combination": ["loner"],
        "evict": ["gemma", "voxtral"],
        "cost": 51,
    }


def test_solve_nothing_running_and_text_output(tmp_path, capsys):
    code, out, _ = run(
        capsys, "matrix", "solve", write(tmp_path, MATRIX_CONFIG), "--want", "voxtral"
    )
    assert code == 0
    assert out == (
        "target:      voxtral\n"
        "set:         standard\n"
        "combination: gemma, voxtral\n"
        "evict:       nothing\n"
        "cost:        0\n"
    )


@pytest.mark.parametrize(
    ("want", "running", "message"),
    [("nope", "", 'unknown model "nope"'), ("qwen", "gemma,ghost", 'unknown model "ghost"')],
)
def test_solve_unknown_model(tmp_path, capsys, want, running, message):
    path = write(tmp_path, MATRIX_CONFIG)
    code, out, err = run(capsys, "matrix", "solve", path, "--want", want, "--running", running)
    assert (code, out) == (2, "")
    assert err == f"swapd matrix solve: {message}\n"


def test_solve_requires_want(tmp_path, capsys):
    code, _, err = run(capsys, "matrix", "solve", write(tmp_path, MATRIX_CONFIG))
    assert code == 2
    assert "--want" in err


@pytest.mark.parametrize("action", [["expand"], ["solve", "--want", "a"]])
def test_group_mode_config_is_refused(tmp_path, capsys, action):
    path = write(tmp_path, GROUP_CONFIG)
    code, out, err = run(capsys, "matrix", action[0], path, *action[1:])
    assert (code, out) == (2, "")
    assert err == (
        f"{path}: this config uses the group router, not a swap matrix "
        "(set routing.router.use: matrix and routing.router.settings.matrix)\n"
    )


@pytest.mark.parametrize("action", [["expand"], ["solve", "--want", "gemma"]])
def test_invalid_matrix_reports_located_problems(tmp_path, capsys, action):
    path = write(tmp_path, BROKEN_MATRIX)
    code, out, err = run(capsys, "matrix", action[0], path, *action[1:])
    assert (code, out) == (2, "")
    assert 'set "full" references undefined set "nowhere"' in err
    assert err.startswith(f"{path}:")
    assert "routing.router.settings.matrix.sets.full" in err


def test_missing_file(tmp_path, capsys):
    code, out, err = run(capsys, "matrix", "expand", str(tmp_path / "absent.yaml"))
    assert (code, out) == (2, "")
    assert "absent.yaml" in err


def test_pure_renderers():
    matrix = compile_matrix([("s", " a & (b | c) "), ("t", "c")], {}, {}, ["a", "b", "c"])
    expansion = matrix.expand(1)
    assert render_expansion(matrix, expansion, 1) == (
        "s: a & (b | c)\n  a, b\nt: c\n  c\n"
        "(some sets have more than 1 combinations; raise --limit to see them)"
    )
    assert json.loads(expansion_json(expansion)) == {
        "sets": {"s": [["a", "b"]], "t": [["c"]]},
        "truncated": True,
    }
    solution = matrix.solve("c", ["b", "a"])
    assert json.loads(solution_json(solution)) == solution.as_dict()
    assert render_solution(solution).splitlines() == [
        "target:      c",
        "set:         s",
        "combination: a, c",
        "evict:       b",
        "cost:        1",
    ]
    assert render_solution(matrix.solve("z", ["a"])).splitlines()[1] == "set:         (none)"


def test_running_list_parsing_and_resolution():
    assert split_running("") == []
    assert split_running(" a, b,,c ,") == ["a", "b", "c"]
    aliases = {"alias": "a"}
    resolve = lambda name: name if name in {"a", "b"} else aliases.get(name)  # noqa: E731
    assert resolve_model(resolve, "alias") == "a"
    assert resolve_model(resolve, "b") == "b"
    with pytest.raises(ValueError, match='unknown model "x"'):
        resolve_model(resolve, "x")
