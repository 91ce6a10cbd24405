"""YAML decoding conventions (docs/compat.md, Config keys and decoding) and error reporting."""

from __future__ import annotations

import pytest

from swapd.config import ConfigError, load_config, load_config_text
from swapd.config.loader import parse_text
from tests.unit.config.conftest import load, problems


def test_yaml_12_words_are_strings_in_untyped_positions_bools_in_bool_fields() -> None:
    cfg = load(
        """
        macros: {flag: yes}
        models:
          a:
            cmd: run ${PORT} --flag ${flag}
            unlisted: yes
            metadata: {answer: no, real: true, up: TRUE}
            filters: {setParams: {x: on}}
        """
    )
    m = cfg.models["a"]
    assert m.argv[-1] == "yes"
    assert m.unlisted is True
    assert m.metadata == {"answer": "no", "real": True, "up": True}
    assert m.filters.set_params == {"x": "on"}


def test_scalars_into_string_fields_keep_their_text() -> None:
    cfg = load(
        """
        models:
          123:
            cmd: 4.50
            proxy: http://h:1
            name: 42
            description: true
            useModelName: 0x1F
        """
    )
    m = cfg.models["123"]
    assert (m.cmd, m.name, m.description, m.use_model_name) == ("4.50", "42", "true", "0x1F")


def test_int_fields_truncate_floats_and_reject_strings_and_bools() -> None:
    errs = problems(
        """
        startPort: 0.5
        healthCheckTimeout: "42"
        globalTTL: true
        models:
          a:
            cmd: run ${PORT}
            ttl: 1.9
        """
    )
    assert errs == [
        "config.yaml:2:1: startPort: expected int >= 1, got 0",
        'config.yaml:3:1: healthCheckTimeout: expected int, got "42"',
        "config.yaml:4:1: globalTTL: expected int >= 0, got true",
    ]
    assert load("models:\n  a: {cmd: 'r ${PORT}', ttl: 1.9}\n").models["a"].ttl == 1


def test_null_leaves_defaults_and_empties_lists() -> None:
    cfg = load(
        """
        healthCheckTimeout: ~
        sendLoadingState: true
        ui: {activity: {session_id: ~}}
        models:
          a:
            cmd: run ${PORT}
            timeouts: ~
            sendLoadingState: ~
            aliases:
        """
    )
    assert cfg.config.health_check_timeout == 120
    assert cfg.config.session_id_headers == []
    m = cfg.models["a"]
    assert m.timeouts.connect == 30 and m.send_loading_state is True and m.aliases == []


def test_null_model_entry_gets_defaults() -> None:
    errs = problems("models:\n  b: ~\n")
    assert errs == [
        "config.yaml:2:3: models.b: cmd is missing: "
        "a model needs the command that starts its server"
    ]


def test_keys_llama_swap_accepts_and_swapd_ignores_still_load() -> None:
    cfg = load(
        """
        performance: {enable: true, maxAge: 12h, gc: 10m}
        logRequests: true
        defs: {anything: [1, 2], base: &base {cmd: "run ${PORT}"}}
        models:
          a: {<<: *base, healthCheckTimeout: 3}
        """
    )
    assert cfg.models["a"].argv == ["run", "5800"]
    assert cfg.models["a"].health_check_timeout == 120


def test_map_keys_are_strings_and_order_is_kept() -> None:
    doc, issues = parse_text("models:\n  123: {}\n  true: {}\n  ~: {}\n  b: {}\n  a: {}\n", {})
    assert issues == []
    assert list(doc.tree["models"]) == ["123", "true", "", "b", "a"]


def test_merge_keys_explicit_wins_and_copies_are_independent() -> None:
    doc, _ = parse_text(
        "base: &b {x: 1, y: [1]}\nother: &o {y: [2], z: 3}\nm:\n  <<: [*b, *o]\n  x: 9\n", {}
    )
    assert doc.tree["m"] == {"x": 9, "y": [1], "z": 3}
    assert doc.tree["m"]["y"] is not doc.tree["base"]["y"]


def test_positions_are_one_based_key_positions() -> None:
    doc, _ = parse_text("a:\n  b:\n    - x\n    - {c: 1}\n", {})
    assert doc.positions[("a",)] == (1, 1)
    assert doc.positions[("a", "b")] == (2, 3)
    assert doc.positions[("a", "b", 1)] == (4, 7)
    assert doc.positions[("a", "b", 1, "c")] == (4, 8)
    assert doc.locate(("a", "b", 1, "c", "missing")) == (4, 8)


def test_duplicate_keys_and_bad_yaml_are_reported_with_position() -> None:
    assert problems("startPort: 1\nstartPort: 2\n") == [
        'config.yaml:2:1: startPort: mapping key "startPort" already defined at line 1'
    ]
    errs = problems("models: [1\n")
    assert len(errs) == 1 and errs[0].startswith("config.yaml:2:1: invalid YAML:")
    assert problems("- 1\n") == ["config.yaml:1:1: top-level YAML must be a mapping"]


def test_empty_file_is_a_default_config() -> None:
    cfg = load("# nothing\n")
    assert cfg.models == {} and cfg.router_use == "group"
    assert cfg.groups["(default)"].members == []


def test_contract_error_format_and_all_problems_at_once() -> None:
    text = "\n".join(
        [
            "models:",
            "  llama:",
            "    cmd: run ${PORT}",
            "    ttl: soon",
            "    unlisted: maybe",
            "    concurrencyLimit: [1]",
            "  other:",
            "    cmd: [not, a, string]",
            "logToStdout: nowhere",
            "",
        ]
    )
    with pytest.raises(ConfigError) as info:
        load_config_text(text, file="config.yaml", environ={})
    err = info.value
    assert [(p.line, p.column, p.path) for p in err.problems] == [
        (4, 5, "models.llama.ttl"),
        (5, 5, "models.llama.unlisted"),
        (6, 5, "models.llama.concurrencyLimit"),
        (8, 5, "models.other.cmd"),
        (9, 1, "logToStdout"),
    ]
    assert str(err).splitlines()[0] == (
        'config.yaml:4:5: models.llama.ttl: expected int >= -1, got "soon"'
    )
    assert str(err).splitlines()[4] == (
        'config.yaml:9:1: logToStdout: must be one of: both, none, proxy, upstream, got "nowhere"'
    )
    assert len(str(err).splitlines()) == 5


def test_unreadable_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'missing.yaml'}: cannot read config:")


def test_folded_and_literal_block_scalars_read_as_plain_text() -> None:
    cfg = load(
        """
        macros:
          base: >-
            run ${PORT}
            --flag x
        models:
          a:
            cmd: ${base} --more
            description: |
              two
              lines
        """
    )
    m = cfg.models["a"]
    assert m.argv == ["run", str(m.port), "--flag", "x", "--more"]
    assert m.description.rstrip("\n") == "two\nlines"
