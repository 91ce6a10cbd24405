"""Routing layouts, groups, scheduler settings and the matrix block."""

from __future__ import annotations

import pytest

from tests.unit.config.conftest import load, problems

MODELS = """
models:
  a: {cmd: "a ${PORT}"}
  b: {cmd: "b ${PORT}", aliases: [bee]}
  c: {cmd: "c ${PORT}"}
"""


def test_no_groups_gives_default_group_with_every_model_sorted() -> None:
    cfg = load("models:\n  z: {cmd: 'z ${PORT}'}\n  a: {cmd: 'a ${PORT}'}\n")
    assert cfg.router_use == "group" and cfg.matrix is None
    default = cfg.groups["(default)"]
    assert (default.swap, default.exclusive, default.persistent) == (True, True, False)
    assert default.members == ["a", "z"]


@pytest.mark.parametrize("layout", ["legacy", "routing"])
def test_both_group_layouts_give_the_same_groups(layout: str) -> None:
    groups = """
      g1: {swap: false, members: [a, b]}
      (default): {members: [c]}
    """
    if layout == "legacy":
        text = MODELS + "groups:" + groups
    else:
        text = (
            MODELS
            + "routing:\n  router:\n    settings:\n      groups:"
            + groups.replace("\n      ", "\n          ")
        )
    cfg = load(text)
    assert list(cfg.groups) == ["g1", "(default)"]
    assert cfg.groups["g1"].swap is False and cfg.groups["g1"].exclusive is True
    # A user group named "(default)" is replaced by the implicit one.
    assert cfg.groups["(default)"].members == ["c"]


def test_group_member_errors() -> None:
    errs = problems(
        MODELS
        + """
groups:
  g1: {members: [a, a, bee]}
  g2: {members: [a, nope]}
"""
    )
    assert errs == [
        "config.yaml:8:21: groups.g1.members[1]: duplicate model member a found in group: g1",
        'config.yaml:8:24: groups.g1.members[2]: unknown model "bee" (it is an alias of b): '
        "members are model IDs",
        "config.yaml:9:18: groups.g2.members[0]: model member a is used in multiple groups: "
        "g1 and g2",
        'config.yaml:9:21: groups.g2.members[1]: unknown model "nope": members are model IDs',
    ]


def test_mixing_layouts_says_how_to_migrate() -> None:
    errs = problems(MODELS + "groups: {g: {members: [a]}}\nrouting: {router: {use: group}}\n")
    assert errs == [
        "config.yaml:7:11: routing.router: config uses both the legacy top-level "
        "'matrix'/'groups' keys and the new 'routing.router' block; please migrate the "
        "top-level keys into 'routing.router' and remove them"
    ]


def test_scheduler_alone_does_not_count_as_the_routing_layout() -> None:
    cfg = load(
        MODELS
        + "groups: {g: {members: [a]}}\n"
        + "routing: {scheduler: {settings: {fifo: {priority: {bee: 2, a: 1}}}}}\n"
    )
    assert cfg.config.routing.fifo.priority == {"b": 2, "a": 1}
    assert cfg.models["b"].priority == 2 and cfg.models["c"].priority == 0
    fifo = cfg.config.routing.fifo
    assert (fifo.max_wait, fifo.keep_abandoned_loads) == (30, False)


def test_legacy_groups_and_matrix_together() -> None:
    errs = problems(MODELS + "groups: {g: {members: [a]}}\nmatrix: {sets: {s: a}}\n")
    assert errs == ["config.yaml:7:1: matrix: config cannot use both 'groups' and 'matrix'"]


def test_router_and_scheduler_use_errors() -> None:
    errs = problems(
        MODELS
        + """
routing:
  router: {use: Matrix}
  scheduler:
    use: lifo
    settings: {fifo: {priority: {ghost: 1}, maxWait: -1, keepAbandonedLoads: perhaps}}
"""
    )
    assert errs == [
        'config.yaml:8:12: routing.router.use: unknown router "Matrix" '
        "(valid: group, matrix, budget)",
        'config.yaml:10:5: routing.scheduler.use: unknown scheduler "lifo" (valid: fifo)',
        "config.yaml:11:34: routing.scheduler.settings.fifo.priority.ghost: "
        'references unknown model "ghost"',
        "config.yaml:11:45: routing.scheduler.settings.fifo.maxWait: expected int >= 0, got -1",
        "config.yaml:11:58: routing.scheduler.settings.fifo.keepAbandonedLoads: "
        'expected bool, got "perhaps"',
    ]


def test_use_matrix_without_matrix_block() -> None:
    errs = problems(MODELS + "routing: {router: {use: matrix}}\n")
    assert errs == [
        "config.yaml:6:20: routing.router.use: routing.router.use is 'matrix' but "
        "routing.router.settings.matrix is not set"
    ]


def test_settings_matrix_is_ignored_in_group_mode() -> None:
    cfg = load(MODELS + "routing: {router: {settings: {matrix: {sets: {s: 'nonsense &'}}}}}\n")
    assert cfg.router_use == "group" and cfg.matrix is None


@pytest.mark.parametrize("layout", ["legacy", "routing"])
def test_matrix_layouts_compile_in_file_order(layout: str) -> None:
    pytest.importorskip("swapd.matrix")
    block = """
  vars: {x: a, y: b}
  evict_costs: {x: 3}
  sets:
    zeta: x & y
    alpha: x | c
"""
    if layout == "legacy":
        text = MODELS + "matrix:" + block
    else:
        text = (
            MODELS
            + "routing:\n  router:\n    use: matrix\n    settings:\n      matrix:"
            + block.replace("\n  ", "\n        ")
        )
    cfg = load(text)
    assert cfg.router_use == "matrix" and cfg.groups == {}
    assert cfg.matrix is not None
    assert cfg.matrix.set_names == ("zeta", "alpha")  # file order, as v790 and the docs say
    solution = cfg.matrix.solve("c", ["a"])
    assert solution.set == "alpha" and solution.evict == ("a",)


def test_matrix_problems_are_located_and_prefixed() -> None:
    pytest.importorskip("swapd.matrix")
    errs = problems(
        MODELS
        + """
matrix:
  vars: {x: nope}
  evict_costs: {x: 0}
  sets:
    s1: x &
    s2: +missing
"""
    )
    assert errs and all(": matrix: " in e for e in errs)
    by_path = {e.split(": ")[1]: e for e in errs}
    assert by_path["matrix.vars.x"].startswith("config.yaml:8:10: ")
    assert by_path["matrix.sets.s1"].startswith("config.yaml:11:5: ")
    assert by_path["matrix.sets.s2"].startswith("config.yaml:12:5: ")


def test_global_macros_expand_in_the_matrix_block() -> None:
    pytest.importorskip("swapd.matrix")
    cfg = load(MODELS + "macros: {pair: 'a & b'}\nmatrix: {sets: {s: '${pair} | c'}}\n")
    assert cfg.matrix is not None and cfg.config.routing.matrix is not None
    assert cfg.config.routing.matrix.sets == {"s": "a & b | c"}
