"""Cross-key rules and resolved values."""

from __future__ import annotations

import pytest

from tests.unit.config.conftest import load, problems


def test_resolved_model_values() -> None:
    cfg = load(
        """
        healthCheckTimeout: 3
        globalTTL: 60
        unloadTimeout: 0
        sendLoadingState: true
        logRingBytes: 4096
        models:
          a: {cmd: "a ${PORT}", ttl: -1, concurrencyLimit: -3, checkEndpoint: " none "}
          b:
            cmd: b ${PORT}
            ttl: 0
            unloadTimeout: 4
            sendLoadingState: false
            logRingBytes: 2048
          comfyui_auto: {cmd: "c ${PORT}", concurrencyLimit: 5}
        """
    )
    a, b, comfy = cfg.models["a"], cfg.models["b"], cfg.models["comfyui_auto"]
    assert cfg.config.health_check_timeout == 15 and a.health_check_timeout == 15
    assert (a.ttl, b.ttl) == (60, 0)
    assert (a.unload_timeout, b.unload_timeout) == (10, 4)
    assert (a.concurrency_limit, comfy.concurrency_limit) == (10, 50)
    assert comfy.compat.ignore_websockets is True
    assert (a.send_loading_state, b.send_loading_state) == (True, False)
    assert (a.log_ring_bytes, b.log_ring_bytes) == (4096, 2048)
    assert a.check_endpoint == "none"
    assert a.stop_argv is None


def test_model_range_and_url_errors() -> None:
    errs = problems(
        """
        models:
          a: {cmd: "a ${PORT}", ttl: -2, unloadTimeout: -1}
          b: {cmd: b, proxy: "://invalid"}
          c: {cmd: c, proxy: "http://host:port"}
          d: {cmd: "d ${PORT}", capabilities: {in: [smell], context: -1}}
        """
    )
    assert errs == [
        "config.yaml:3:25: models.a.ttl: expected int >= -1, got -2",
        "config.yaml:3:34: models.a.unloadTimeout: expected int >= 0, got -1",
        "config.yaml:4:15: models.b.proxy: invalid proxy URL: missing protocol scheme",
        'config.yaml:5:15: models.c.proxy: invalid proxy URL: invalid port ":port" after host',
        "config.yaml:6:45: models.d.capabilities.in[0]: "
        'must be one of: audio, image, text, got "smell"',
        "config.yaml:6:53: models.d.capabilities.context: expected int >= 0, got -1",
    ]


def test_global_errors() -> None:
    errs = problems(
        """
        apiKeys: ["", "has space", "ok\\tkey"]
        performance: {every: 4s}
        upstream: {ignorePaths: ["(unclosed"]}
        store: {path: "  "}
        control: {group: ""}
        globalTTL: -1
        unloadTimeout: -1
        logToStdout: Proxy
        models: {}
        """
    )
    assert errs == [
        "config.yaml:2:11: apiKeys[0]: empty api key found in apiKeys",
        "config.yaml:2:15: apiKeys[1]: api key cannot contain spaces",
        "config.yaml:3:15: performance.every: every must be at least 5s, got 4s",
        'config.yaml:4:26: upstream.ignorePaths[0]: invalid regular expression "(unclosed": '
        "missing ), unterminated subpattern at position 0",
        "config.yaml:5:1: store: store.path must not be empty",
        "config.yaml:6:11: control.group: must be a Unix group name",
        "config.yaml:7:1: globalTTL: expected int >= 0, got -1",
        "config.yaml:8:1: unloadTimeout: expected int >= 0, got -1",
        'config.yaml:9:1: logToStdout: must be one of: both, none, proxy, upstream, got "Proxy"',
    ]


@pytest.mark.parametrize(("every", "seconds"), [("0s", 5.0), ("1m30s", 90.0), ("5s", 5.0)])
def test_performance_every(every: str, seconds: float) -> None:
    assert load(f"performance: {{every: {every}}}\n").config.performance.every == seconds


def test_performance_every_bare_number_is_an_error() -> None:
    assert problems("performance: {every: 5}\n") == [
        'config.yaml:1:15: performance.every: invalid duration "5"'
    ]


def test_ui_and_upstream_defaults_and_normalisation() -> None:
    cfg = load(
        "ui: {activity: {session_id: [' X-A ', '', 'x-a', X-B]}}\nupstream: {ignorePaths: []}\n"
    )
    assert cfg.config.session_id_headers == ["X-A", "X-B"]
    assert cfg.config.upstream_ignore_paths == [r".*\.(js|json|css|png|gif|jpg|jpeg|ico|txt)$"]
    default = load("models: {}\n").config
    assert default.session_id_headers == ["X-Session-ID", "X-Litellm-Session-Id"]
    assert default.store_path is None and default.control.group is None


def test_control_group() -> None:
    assert load("control: {group: swapd}\n").config.control.group == "swapd"


def test_hooks_preload_resolves_aliases_and_drops_unknown() -> None:
    cfg = load(
        """
        models:
          a: {cmd: "a ${PORT}", aliases: [alpha]}
        hooks: {on_startup: {preload: [" alpha ", "", ghost, a]}}
        """
    )
    assert cfg.config.preload == ["a", "a"]


def test_peers() -> None:
    cfg = load(
        """
        peers:
          cloud: {proxy: "https://api.example.com", models: [m1, m1, m2], apiKey: k}
        """
    )
    peer = cfg.config.peers["cloud"]
    assert peer.timeouts.response_header == 60 and peer.api_key == "k"
    errs = problems(
        """
        models:
          "p/m1": {cmd: "x ${PORT}"}
        peers:
          p: {proxy: "", models: [m1]}
          q: {proxy: "://bad", models: []}
        """
    )
    assert errs == [
        "config.yaml:5:3: peers.p: proxy is required",
        'config.yaml:5:27: peers.p.models[0]: model ID "p/m1" conflicts with fully '
        "qualified peer model name",
        "config.yaml:6:3: peers.q: peer models can not be empty",
        "config.yaml:6:7: peers.q.proxy: invalid peer proxy URL (://bad): missing protocol scheme",
    ]


def test_profiles_and_selectors() -> None:
    cfg = load(
        """
        models:
          a: {cmd: "a ${PORT}", aliases: [alpha]}
          b: {cmd: "b ${PORT}"}
        groups:
          pair: {swap: false, members: [a, b]}
        profiles:
          p1: {description: d, pins: {x: alpha, gone: ~}}
        selectors:
          s1: {strategy: spillover, targets: [a, b], settings: {spillover: 2}}
        """
    )
    assert cfg.config.profiles["p1"].pins == {"x": "alpha", "gone": None}
    assert cfg.config.selectors["s1"].settings.spillover == 2
    errs = problems(
        """
        models:
          a: {cmd: "a ${PORT}"}
          b: {cmd: "b ${PORT}"}
          c: {cmd: "c ${PORT}"}
        profiles:
          old: [a, b]
          empty: {pins: {}}
          bad: {pins: {x: ghost}}
        selectors:
          c: {strategy: pin, targets: [a]}
          s2: {strategy: fast, targets: []}
          s3: {strategy: spillover, targets: [a, b, s4]}
          s4: {strategy: warm, targets: [ghost]}
        """
    )
    assert errs == [
        "config.yaml:7:3: profiles.old: profile must be a mapping with description and pins; "
        "the legacy list syntax is no longer supported",
        "config.yaml:8:3: profiles.empty: pins must contain at least one entry",
        'config.yaml:9:16: profiles.bad.pins.x: references unknown model "ghost"',
        'config.yaml:11:3: selectors.c: name conflicts with model ID "c"',
        "config.yaml:12:3: selectors.s2: targets must contain at least one entry",
        'config.yaml:12:8: selectors.s2.strategy: must be one of: pin, spillover, warm, got "fast"',
        "config.yaml:13:3: selectors.s3: spillover targets must share a group with swap: false",
        'config.yaml:13:45: selectors.s3.targets[2]: references selector "s4"; '
        "selector chaining is not supported",
        'config.yaml:14:34: selectors.s4.targets[0]: references unknown model "ghost"',
    ]


def test_spillover_targets_must_fit_one_matrix_set() -> None:
    pytest.importorskip("swapd.matrix")
    text = """
        models:
          a: {cmd: "a ${PORT}"}
          b: {cmd: "b ${PORT}"}
          c: {cmd: "c ${PORT}"}
        matrix: {sets: {s: "a & b | c"}}
        selectors:
          ok: {strategy: spillover, targets: [a, b]}
          no: {strategy: spillover, targets: [a, c]}
        """
    assert problems(text) == [
        "config.yaml:9:29: selectors.no.targets: "
        "targets must all appear together in one expanded matrix set"
    ]
