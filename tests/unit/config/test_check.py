"""What `swapd config check` catches that llama-swap lets through: unknown keys, an alias
that is another model's name, a matrix model in no set, a model without a command, an
unterminated quote, and every problem of a file in one run."""

from __future__ import annotations

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.config.coerce import unknown_key
from swapd.config.diff import start_only_changes
from swapd.config.schema import ConfigDoc, ModelDoc
from tests.unit.config.conftest import load, problems


def test_unknown_keys_at_any_depth_name_the_nearest_known_key() -> None:
    errs = problems(
        """
        logLevl: debug
        models:
          a:
            cmd: run ${PORT}
            ttll: 30
            checkEndpont: /health
            timeouts: {conect: 5}
        peers:
          p: {proxy: "http://p", models: [x], apikey: k}
        routing:
          router:
            settings:
              matrix: {sets: {s: a}, evictCosts: {a: 2}}
        hooks:
          on_startup: {prelaod: [a]}
        zzz: 1
        """
    )
    assert errs == [
        'config.yaml:2:1: logLevl: unknown key "logLevl"; did you mean "logLevel"?',
        'config.yaml:6:5: models.a.ttll: unknown key "ttll"; did you mean "ttl"?',
        'config.yaml:7:5: models.a.checkEndpont: unknown key "checkEndpont"; '
        'did you mean "checkEndpoint"?',
        'config.yaml:8:16: models.a.timeouts.conect: unknown key "conect"; did you mean "connect"?',
        'config.yaml:10:39: peers.p.apikey: unknown key "apikey"; did you mean "apiKey"?',
        "config.yaml:14:30: routing.router.settings.matrix.evictCosts: "
        'unknown key "evictCosts"; did you mean "evict_costs"?',
        'config.yaml:16:16: hooks.on_startup.prelaod: unknown key "prelaod"; '
        'did you mean "preload"?',
        'config.yaml:17:1: zzz: unknown key "zzz"',
    ]


def test_an_unknown_key_from_a_yaml_merge_is_located_where_it_is_written() -> None:
    errs = problems(
        """
        defs:
          base: &base {cmd: "run ${PORT}", tll: 5}
        models:
          a: {<<: *base}
        """
    )
    assert errs == ['config.yaml:3:36: models.a.tll: unknown key "tll"; did you mean "ttl"?']


LLAMA_SWAP_CONFIG = """
healthCheckTimeout: 60
logLevel: info
logTimeFormat: rfc3339
logToStdout: proxy
logRequests: false
metricsMaxInMemory: 1000
captureBuffer: 5
performance: {disabled: false, every: 5s, enable: true, maxAge: 1h, gc: 5m}
globalTTL: 0
unloadTimeout: 10
startPort: 9000
sendLoadingState: false
includeAliasesInList: false
apiKeys: []
macros: {m: 1}
defs: {anything: goes}
hooks: {on_startup: {preload: [a]}}
peers:
  p:
    proxy: http://peer
    models: [x]
    apiKey: k
    filters: {stripParams: "a", setParams: {b: 1}, setParamsByID: {x: {c: 2}}}
    timeouts: {connect: 1, keepalive: 1, responseHeader: 1, tlsHandshake: 1,
               expectContinue: 1, idleConn: 1}
models:
  a:
    cmd: run ${PORT}
    cmdStop: kill ${PID}
    proxy: http://localhost:${PORT}
    checkEndpoint: /health
    ttl: -1
    unloadTimeout: 0
    aliases: [alias-a]
    env: [A=1]
    name: A
    description: the A
    unlisted: false
    useModelName: real-a
    concurrencyLimit: 2
    sendLoadingState: true
    metadata: {k: v}
    filters: {stripParams: "x", strip_params: "y", setParams: {t: 1},
              setParamsByID: {"${MODEL_ID}:hot": {t: 2}}}
    macros: {n: 2}
    timeouts: {connect: 1, keepalive: 1, responseHeader: 1, tlsHandshake: 1,
               expectContinue: 1, idleConn: 1}
    compat: {ignoreWebsockets: false}
    capabilities: {in: [text], out: [text], tools: true, reranker: false, context: 8}
    healthCheckTimeout: 30
  b: {cmd: "run ${PORT}"}
routing:
  router:
    use: group
    settings:
      groups:
        g: {swap: true, exclusive: true, persistent: false, members: [a]}
      matrix: {vars: {v: a}, evict_costs: {v: 2}, sets: {s: v}}
  scheduler: {use: fifo, settings: {fifo: {priority: {a: 1}}}}
profiles:
  pr: {description: d, pins: {x: a}}
selectors:
  sel: {strategy: warm, targets: [a, b], settings: {spillover: 1}, name: n,
        description: d, unlisted: false, metadata: {}}
store: {path: /tmp/swapd-check-test.db}
ui: {activity: {session_id: [X-Session-ID]}}
upstream: {ignorePaths: ['\\.png$']}
"""


def test_every_key_llama_swap_accepts_is_accepted() -> None:
    loaded = load(LLAMA_SWAP_CONFIG)
    assert set(loaded.models) == {"a", "b"} and loaded.warnings == ()


def test_the_legacy_routing_layout_is_accepted() -> None:
    loaded = load(
        """
        models: {a: {cmd: "run ${PORT}"}}
        matrix: {vars: {v: a}, evict_costs: {v: 1}, sets: {s: v}}
        """
    )
    assert loaded.router_use == "matrix"


def _fields(cls: type[msgspec.Struct]) -> list[str]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return [f.encode_name for f in info.fields]


MODEL_KEYS = _fields(ModelDoc)


def check_model_key(key: str) -> None:
    """A model key loads when it is a field (null leaves it at its default), else is an
    error at its position naming it."""
    text = f'models:\n  a:\n    cmd: "run ${{PORT}}"\n    {key}: ~\n'
    if key in MODEL_KEYS:
        load(text)
    else:
        errs = problems(text)
        assert errs[0].startswith(f'config.yaml:4:5: models.a.{key}: unknown key "{key}"')


@pytest.mark.parametrize("key", [k for k in MODEL_KEYS if k != "cmd"])  # cmd is written above
def test_every_model_field_is_accepted(key: str) -> None:
    check_model_key(key)


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1).filter(
        lambda k: k.lower() != "null" and k != "cmd"  # a null key is ""; cmd is written above
    )
)
def test_a_model_key_is_accepted_exactly_when_it_is_a_field(key: str) -> None:
    check_model_key(key)


@given(st.sampled_from(_fields(ConfigDoc)), st.integers(0, 10**6))
def test_a_misspelt_top_level_key_suggests_the_key(key: str, seed: int) -> None:
    """Dropping one letter of a key (a common slip) names that key again."""
    if len(key) < 5:
        return
    i = 1 + seed % (len(key) - 1)
    typo = key[:i] + key[i + 1 :]
    if typo in _fields(ConfigDoc):
        return
    assert unknown_key(typo, _fields(ConfigDoc)).endswith(f'did you mean "{key}"?')


def test_an_alias_that_is_another_models_id_or_alias_names_both() -> None:
    errs = problems(
        """
        models:
          chat: {cmd: "run ${PORT}", aliases: [code, shared, chat]}
          code: {cmd: "run ${PORT}", aliases: [shared]}
        """
    )
    assert errs == [
        'config.yaml:3:40: models.chat.aliases[0]: alias "code" of model chat is the ID of '
        "model code (a request for code always reaches model code)",
        "config.yaml:4:40: models.code.aliases[0]: duplicate alias shared found in model: "
        "code (already used by model chat)",
    ]


MATRIX = """
models:
  a: {cmd: "run ${PORT}"}
  b: {cmd: "run ${PORT}"}
  lone: {cmd: "run ${PORT}"}
routing:
  router:
    use: matrix
    settings:
      matrix:
        sets: {s: a & b}
"""


def test_a_matrix_model_in_no_set_is_a_warning_not_an_error() -> None:
    loaded = load(MATRIX)
    assert [str(w) for w in loaded.warnings] == [
        "config.yaml:5:3: models.lone: in no matrix set: it runs alone, "
        "and loading it stops every running model"
    ]
    assert load(MATRIX.replace("a & b", "a & b | lone")).warnings == ()


def test_group_configs_have_no_such_warning() -> None:
    assert load("models: {a: {cmd: 'run ${PORT}'}}\n").warnings == ()


def test_a_missing_or_empty_cmd_has_its_own_message() -> None:
    errs = problems(
        """
        models:
          none: {ttl: 5}
          fixed: {proxy: "http://127.0.0.1:9"}
          comments: {cmd: "# run ${PORT}\\n  # nothing"}
          ok: {cmd: "run ${PORT}"}
          nul: {cmd: ~}
        """
    )
    assert errs == [
        "config.yaml:3:3: models.none: cmd is missing: "
        "a model needs the command that starts its server",
        "config.yaml:4:3: models.fixed: cmd is missing: "
        "a model needs the command that starts its server",
        "config.yaml:5:14: models.comments.cmd: cmd is empty: "
        "it has no command, only comments or blanks",
        "config.yaml:7:9: models.nul.cmd: cmd is missing: "
        "a model needs the command that starts its server",
    ]


def test_an_unterminated_quote_in_cmd_has_its_own_message() -> None:
    errs = problems(
        """
        models:
          a: {cmd: "llama-server -m 'x.gguf --port ${PORT}"}
          b:
            cmd: |
              llama-server --port ${PORT}
              --alias "chat
            cmdStop: kill "${PID}
        """
    )
    assert errs == [
        "config.yaml:3:7: models.a.cmd: unterminated ' quote in `'x.gguf --port 5800`: "
        "everything after it would be one argument",
        'config.yaml:5:5: models.b.cmd: unterminated " quote in `"chat`: '
        "everything after it would be one argument",
        'config.yaml:8:5: models.b.cmdStop: unterminated " quote in `"${PID}`: '
        "everything after it would be one argument",
    ]


def test_a_duplicate_key_is_reported_with_every_other_problem() -> None:
    errs = problems(
        """
        models:
          a:
            cmd: run ${PORT}
            ttl: soon
          a:
            cmd: other
        startPort: 1
        startPort: 2
        logLevl: x
        """
    )
    assert errs == [
        'config.yaml:5:5: models.a.ttl: expected int >= -1, got "soon"',
        'config.yaml:6:3: models.a: mapping key "a" already defined at line 3',
        'config.yaml:9:1: startPort: mapping key "startPort" already defined at line 8',
        'config.yaml:10:1: logLevl: unknown key "logLevl"; did you mean "logLevel"?',
    ]


@pytest.mark.parametrize(
    "text",
    [
        "models: [1\n",  # invalid YAML: no tree to check further
        "- 1\n",
    ],
)
def test_a_text_without_a_tree_stops_at_its_one_problem(text: str) -> None:
    assert len(problems(text)) == 1


START = """
models:
  m:
    cmd: server --port ${PORT}
"""


@pytest.mark.parametrize(
    ("extra", "changed"),
    [
        ("", []),
        ("history:\n  retentionDays: 3\n", []),  # applied by a reload
        ("history:\n  enabled: false\n", ["history.enabled"]),
        ("logToStdout: none\n", ["logToStdout"]),
        (
            "http:\n  maxConnections: 10\n  keepAliveTimeout: 5\n",
            [
                "http.maxConnections",
                "http.keepAliveTimeout",
            ],
        ),
        ("http:\n  headTimeout: 3\n", ["http.headTimeout"]),
        ("control:\n  group: adm\n", ["control.group"]),
    ],
)
def test_a_reload_names_the_settings_read_at_start_that_changed(
    extra: str, changed: list[str]
) -> None:
    old = load(START).config
    assert start_only_changes(old, load(START + extra).config) == changed
    assert start_only_changes(old, old) == []
