"""Building the router's swapper and settings from a loaded config."""

from __future__ import annotations

from swapd.config import load_config_text
from swapd.router.build import router_settings, scheduler_from_config, swapper_for
from swapd.router.group_swapper import GroupSwapper
from swapd.router.matrix_swapper import MatrixSwapper
from swapd.router.scheduler import Effects, ModelPolicy

GROUPS = """
healthCheckTimeout: 45
models:
  a: {cmd: "fake --port ${PORT}", concurrencyLimit: 3}
  b: {cmd: "fake --port ${PORT}"}
  c: {cmd: "fake --port ${PORT}"}
routing:
  router:
    settings:
      groups:
        pair: {swap: false, exclusive: false, members: [a, b]}
  scheduler:
    settings:
      fifo:
        priority: {b: 5}
        maxWait: 12
        keepAbandonedLoads: true
"""

MATRIX = """
models:
  a: {cmd: "fake --port ${PORT}"}
  b: {cmd: "fake --port ${PORT}"}
  c: {cmd: "fake --port ${PORT}"}
routing:
  router:
    use: matrix
    settings:
      matrix:
        sets:
          pair: "a & b"
          solo: "c"
"""


def test_group_config():
    loaded = load_config_text(GROUPS)
    settings = router_settings(loaded)
    assert settings.models == {
        "a": ModelPolicy(limit=3, priority=0),
        "b": ModelPolicy(limit=10, priority=5),
        "c": ModelPolicy(limit=10, priority=0),
    }
    assert settings.max_wait == 12 and settings.keep_abandoned_loads
    assert settings.name == "group"
    swapper = swapper_for(loaded)
    assert isinstance(swapper, GroupSwapper)
    assert swapper.eviction_for("b", ["a"]).evict == ()
    assert swapper.eviction_for("c", ["a", "b"]).evict == ("a", "b")


def test_matrix_config():
    loaded = load_config_text(MATRIX)
    swapper = swapper_for(loaded)
    assert isinstance(swapper, MatrixSwapper)
    assert swapper.eviction_for("b", ["a"]).evict == ()
    assert swapper.eviction_for("c", ["a", "b"]).evict == ("a", "b")
    assert router_settings(loaded).name == "matrix"


class NoEffects:
    """Effects that must not be called: building a scheduler does nothing yet."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"building called effects.{name}")


def test_the_pure_scheduler_is_the_one_a_router_runs() -> None:
    effects: Effects = NoEffects()  # type: ignore[assignment]
    for text, kind in ((GROUPS, GroupSwapper), (MATRIX, MatrixSwapper)):
        loaded = load_config_text(text)
        sched = scheduler_from_config(loaded, effects)
        settings = router_settings(loaded)
        assert isinstance(sched.swapper, kind)
        assert sched.models == dict(settings.models)
        assert sched.settings == settings.scheduler_settings()
        assert sched.effects is effects
    sched = scheduler_from_config(load_config_text(GROUPS), effects)
    assert (sched.settings.max_wait, sched.settings.keep_abandoned_loads) == (12.0, True)
    assert sched.models["b"].priority == 5
