"""Macros and ports (docs/compat.md, Macros and ports): worked examples and the rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.config.macros import go_format, merge_macros, substitute
from tests.unit.config.conftest import load, problems


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.7, "0.7"),
        (1.0, "1"),
        (16384.0, "16384"),
        (999999.5, "999999.5"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5, "-2.5"),
        (1.5e300, "1.5e+300"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        ("s", "s"),
    ],
)
def test_go_format(value: object, text: str) -> None:
    assert go_format(value) == text


def test_exact_reference_keeps_type_interpolation_makes_text() -> None:
    tree = {"a": "${x}", "b": "n=${x}", "c": ["${x}"], "d": 1}
    assert substitute(tree, "x", 5) == {"a": 5, "b": "n=5", "c": [5], "d": 1}
    assert substitute("${b}", "b", True) is True


def test_substitute_never_mutates() -> None:
    shared = {"k": "${x}"}
    tree = {"a": shared, "b": shared}
    out = substitute(tree, "x", 1)
    assert shared == {"k": "${x}"} and out == {"a": {"k": 1}, "b": {"k": 1}}


def test_model_macro_replaces_global_in_place() -> None:
    merged = merge_macros("m", [("a", 1), ("b", 2)], [("b", 3), ("c", 4)])
    assert merged == [("MODEL_ID", "m"), ("a", 1), ("b", 3), ("c", 4)]


@given(
    st.text(alphabet="abc ${}xy", max_size=20),
    st.one_of(st.integers(), st.booleans(), st.text(alphabet="pq", max_size=3)),
)
def test_substitution_leaves_no_reference_and_only_touches_references(
    text: str, value: object
) -> None:
    out = substitute(text, "x", value)
    if text == "${x}":
        assert out == value
    else:
        assert isinstance(out, str) and "${x}" not in out.replace(go_format(value), "")
        assert out == text.replace("${x}", go_format(value))


def test_global_and_model_macros_macro_in_macro_and_model_id() -> None:
    cfg = load(
        """
        macros:
          tag: global
          msg: value-${tag}
          base: /bin/server --name ${MODEL_ID}
        models:
          m1:
            macros:
              tag: model-level
            cmd: ${base} --msg ${msg} --port ${PORT}
          m2:
            cmd: ${base} --msg ${msg} --port ${PORT}
        """
    )
    assert cfg.models["m1"].argv == [
        "/bin/server", "--name", "m1", "--msg", "value-model-level", "--port", "5800",
    ]  # fmt: skip
    assert cfg.models["m2"].argv[-3:] == ["value-global", "--port", "5801"]


def test_forward_reference_is_unknown() -> None:
    errs = problems(
        """
        macros:
          a: x ${b}
          b: y
        models:
          m: {cmd: "run ${a} ${PORT}"}
        """
    )
    assert errs == ["config.yaml:6:7: models.m.cmd: unknown macro '${b}'"]


def test_global_macro_cannot_use_model_only_macro() -> None:
    errs = problems(
        """
        macros:
          g: ${own}
        models:
          m:
            macros: {own: 1}
            cmd: run ${g} ${PORT}
        """
    )
    assert any("unknown macro '${own}'" in e for e in errs)


def test_ports_in_sorted_model_order_from_start_port() -> None:
    cfg = load(
        """
        startPort: 9000
        models:
          zeta: {cmd: "z --port ${PORT}"}
          alpha: {cmd: "a --port ${PORT}"}
          fixed: {cmd: "f", proxy: "http://127.0.0.1:7000"}
          beta: {cmd: "b", proxy: "http://h:1", name: "x"}
          mid: {cmd: "m ${PORT}", proxy: "http://localhost:${PORT}/v", checkEndpoint: "/h${PORT}"}
        """
    )
    ports = {m: c.port for m, c in cfg.models.items()}
    assert ports == {"zeta": 9002, "alpha": 9000, "fixed": None, "beta": None, "mid": 9001}
    assert list(cfg.models) == ["zeta", "alpha", "fixed", "beta", "mid"]  # file order kept
    assert cfg.models["mid"].proxy == "http://localhost:9001/v"
    assert cfg.models["mid"].check_endpoint == "/h9001"
    assert cfg.models["fixed"].argv == ["f"]


def test_start_port_from_macro() -> None:
    cfg = load(
        """
        macros: {p: 7000}
        startPort: ${p}
        models:
          a: {cmd: "a ${PORT}"}
        """
    )
    assert cfg.models["a"].port == 7000 and cfg.config.start_port == 7000


def test_proxy_port_without_cmd_port_is_an_error() -> None:
    errs = problems(
        """
        models:
          a:
            cmd: a --port 8000
        """
    )
    assert errs == [
        "config.yaml:3:3: models.a: proxy uses ${PORT} but cmd does not - "
        "${PORT} is only available when used in cmd"
    ]


def test_pid_only_in_cmd_stop() -> None:
    cfg = load(
        """
        models:
          a:
            cmd: a ${PORT}
            cmdStop: kill -TERM ${PID}
        """
    )
    assert cfg.models["a"].stop_argv == ["kill", "-TERM", "${PID}"]
    errs = problems(
        """
        models:
          a:
            cmd: a ${PORT} ${PID}
        """
    )
    assert errs == ["config.yaml:4:5: models.a.cmd: macro '${PID}' is only available in cmdStop"]


def test_macro_in_comment_line_is_not_expanded_or_checked() -> None:
    cfg = load(
        """
        models:
          a:
            cmd: |
              run ${PORT}
              # --flag ${undefined}
              --x
        """
    )
    assert cfg.models["a"].argv == ["run", "5800", "--x"]


def test_type_preserving_metadata_and_typed_fields() -> None:
    cfg = load(
        """
        macros:
          ctx: 16384
          temp: 0.7
          on: true
          t: 30
        globalTTL: "${t}"
        models:
          a:
            cmd: run ${PORT}
            ttl: ${t}
            timeouts: {connect: "${t}"}
            capabilities: {tools: "${on}", context: "${ctx}"}
            metadata:
              ctx: ${ctx}
              temp: ${temp}
              label: "ctx=${ctx} t=${temp} on=${on}"
              port: ${PORT}
              nested: ["${MODEL_ID}", {x: "${on}"}]
        """
    )
    m = cfg.models["a"]
    assert m.metadata == {
        "ctx": 16384,
        "temp": 0.7,
        "label": "ctx=16384 t=0.7 on=true",
        "port": 5800,
        "nested": ["a", {"x": True}],
    }
    assert (m.ttl, m.timeouts.connect, m.capabilities.tools, m.capabilities.context) == (
        30, 30, True, 16384,
    )  # fmt: skip
    assert cfg.config.global_ttl == 30


def test_macros_in_yaml_anchors_stay_independent() -> None:
    cfg = load(
        """
        defs:
          base: &base
            cmd: run --id ${MODEL_ID} --port ${PORT}
            metadata: {id: "${MODEL_ID}", port: "${PORT}"}
            capabilities: &caps {in: [text], context: 8}
        models:
          one: *base
          two:
            <<: *base
            aliases: [second]
        """
    )
    assert cfg.models["one"].argv == ["run", "--id", "one", "--port", "5800"]
    assert cfg.models["two"].argv == ["run", "--id", "two", "--port", "5801"]
    assert cfg.models["one"].metadata == {"id": "one", "port": 5800}
    assert cfg.models["two"].metadata == {"id": "two", "port": 5801}


def test_macro_declaration_errors() -> None:
    errs = problems(
        """
        macros:
          bad name: 1
          ok: [1]
          self: a${self}
          PORT: 1
          PID: 2
          MODEL_ID: 3
          %s: 1
          nul: ~
        models: {}
        """
        % ("x" * 64)
    )
    assert errs == [
        "config.yaml:3:3: macros.bad name: macro name 'bad name' contains invalid characters, "
        "must match pattern ^[a-zA-Z0-9_-]+$",
        "config.yaml:4:3: macros.ok: macro 'ok' has invalid type list, "
        "must be a scalar type (string, int, float, or bool)",
        "config.yaml:5:3: macros.self: macro 'self' contains self-reference",
        "config.yaml:6:3: macros.PORT: macro name 'PORT' is reserved",
        "config.yaml:7:3: macros.PID: macro name 'PID' is reserved",
        "config.yaml:8:3: macros.MODEL_ID: macro name 'MODEL_ID' is reserved",
        f"config.yaml:9:3: macros.{'x' * 64}: macro name '{'x' * 64}' exceeds maximum length "
        "of 63 characters",
        "config.yaml:10:3: macros.nul: macro 'nul' has invalid type null, "
        "must be a scalar type (string, int, float, or bool)",
    ]


def test_unknown_macro_in_top_level_value_but_not_in_unknown_keys() -> None:
    errs = problems(
        """
        defs: {x: "${nope}"}
        apiKeys: ["${missing}"]
        peers:
          p: {proxy: "http://p", models: [a], apiKey: "${k}"}
        models: {}
        """
    )
    assert errs == [
        "config.yaml:3:11: apiKeys[0]: unknown macro '${missing}'",
        "config.yaml:5:39: peers.p.apiKey: unknown macro '${k}'",
    ]


def test_set_params_by_id_keys_expand_and_become_aliases() -> None:
    cfg = load(
        """
        models:
          qwen:
            cmd: run ${PORT}
            filters:
              setParamsByID:
                "${MODEL_ID}": {temperature: 0.7}
                "${MODEL_ID}:high": {temperature: 1.0}
                "${MODEL_ID}:p${PORT}": {x: 1}
        """
    )
    m = cfg.models["qwen"]
    assert m.aliases == ["qwen:high", "qwen:p5800"]
    assert cfg.aliases == {"qwen:high": "qwen", "qwen:p5800": "qwen"}
    assert set(m.filters.set_params_by_id) == {"qwen", "qwen:high", "qwen:p5800"}


def test_set_params_by_id_key_conflicts() -> None:
    errs = problems(
        """
        macros: {a: same}
        models:
          one:
            cmd: run ${PORT}
            aliases: [taken]
            filters:
              setParamsByID:
                two: {}
                taken: {}
          two:
            cmd: run ${PORT}
            filters:
              setParamsByID:
                taken: {}
                same: {}
                "${a}": {}
                "${nope}": {}
        """
    )
    assert errs == [
        "config.yaml:9:9: models.one.filters.setParamsByID.two: "
        "key 'two' conflicts with an existing model ID",
        "config.yaml:15:9: models.two.filters.setParamsByID.taken: "
        "duplicate alias 'taken', already used by model one",
        'config.yaml:17:9: models.two.filters.setParamsByID.${a}: keys "same" and "${a}" '
        "resolve to the same value",
        "config.yaml:18:9: models.two.filters.setParamsByID.${nope}: "
        "unknown macro '${nope}' in this key",
    ]


def test_env_macros_anywhere_and_errors() -> None:
    cfg = load(
        """
        startPort: ${env.START}
        apiKeys: [${env.KEY}]
        models:
          ${env.NAME}:
            cmd: run ${PORT} --home "${env.HOME_DIR}"
        """,
        env={"START": "6000", "KEY": "k1", "NAME": "llm", "HOME_DIR": 'C:\\a"b'},
    )
    assert cfg.config.start_port == 6000
    assert cfg.config.api_keys == ["k1"]
    assert cfg.models["llm"].argv == ["run", "6000", "--home", 'C:\\a"b']
    # In a file that parses before substitution, a reference in a comment is ignored.
    assert load("models: {}\n# ${env.ONLY_IN_COMMENT}\n").models == {}
    # One that does not parse is scanned raw, comments included (as llama-swap does).
    errs = problems("apiKeys: [${env.K}]\n# ${env.ONLY_IN_COMMENT}\n", env={"K": "k"})
    assert errs == ["config.yaml:2:3: environment variable 'ONLY_IN_COMMENT' is not set"]
    errs = problems(
        """
        models:
          a: {cmd: "run ${env.UNSET} ${PORT}", name: "${env.NL}"}
        """,
        env={"NL": "a\nb"},
    )
    assert errs == [
        "config.yaml:3:17: environment variable 'UNSET' is not set",
        "config.yaml:3:47: environment variable 'NL' contains newlines or null bytes "
        "which are not allowed in YAML substitution",
    ]
