"""Build a `Router` from a loaded config: swapper, per-model policies, fifo settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from swapd.events import EventBus
from swapd.process.pool import ProcessPool
from swapd.router.group_swapper import GroupSwapper
from swapd.router.matrix_swapper import MatrixSwapper
from swapd.router.process_control import PoolControl
from swapd.router.run_loop import Router, RouterSettings
from swapd.router.scheduler import ModelPolicy
from swapd.router.swapper import Swapper


def swapper_for(loaded: Any) -> Swapper:
    """The matrix swapper when `routing.router.use: matrix`, else the group swapper."""
    if loaded.router_use == "matrix":
        if loaded.matrix is None:
            raise ValueError("the matrix router is in use but no matrix was compiled")
        return MatrixSwapper(loaded.matrix)
    return GroupSwapper.with_default(loaded.groups, loaded.models)


def router_settings(loaded: Any, *, record_inputs: bool = False) -> RouterSettings:
    cfg = loaded.config
    fifo = cfg.routing.fifo
    models = {
        model_id: ModelPolicy(
            limit=m.concurrency_limit,
            priority=fifo.priority.get(model_id, m.priority),
            unload_timeout=float(m.unload_timeout),
        )
        for model_id, m in loaded.models.items()
    }
    return RouterSettings(
        models=models,
        max_wait=float(fifo.max_wait),
        keep_abandoned_loads=bool(fifo.keep_abandoned_loads),
        name=loaded.router_use,
        record_inputs=record_inputs,
    )


def router_from_config(loaded: Any, pool: ProcessPool, bus: EventBus) -> Router:
    """A router for `loaded` over the processes of `pool`."""
    return Router(PoolControl(pool), swapper_for(loaded), bus, router_settings(loaded))


async def reload_from_config(
    router: Router,
    loaded: Any,
    *,
    drain: Mapping[str, float] | None = None,
    after: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Hand a reloaded config to a running router.

    With `drain` (model -> seconds; the pool has staged the new processes with
    `ProcessPool.stage`), those models are retired by the router once idle.
    Without it, update the pool afterwards (`ProcessPool.update`). `after`: see
    `Router.reload`.
    """
    settings = router_settings(loaded, record_inputs=router.settings.record_inputs)
    await router.reload(swapper_for(loaded), settings, drain, after)
