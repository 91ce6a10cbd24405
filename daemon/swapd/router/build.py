"""Build a `Router` from a loaded config: swapper, per-model policies, fifo settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from swapd.config import LoadedConfig
from swapd.events import EventBus
from swapd.process.pool import ProcessPool
from swapd.router.budget_swapper import BudgetSwapper, EvictCosts, GroupBudget, MatrixBudget
from swapd.router.footprints import Budgeting, FootprintTable, Learned, ModelResources
from swapd.router.group_swapper import GroupSwapper
from swapd.router.matrix_swapper import MatrixSwapper
from swapd.router.process_control import PoolControl
from swapd.router.run_loop import Router, RouterSettings
from swapd.router.scheduler import Effects, FifoScheduler, ModelPolicy
from swapd.router.swapper import Swapper


def footprint_table(loaded: LoadedConfig, learned: Learned | None = None) -> FootprintTable | None:
    """The footprints of `loaded`'s models against its capacity; None without a capacity."""
    resources = loaded.config.resources
    if resources is None:
        return None
    models = {
        model_id: ModelResources(
            dict(m.resources), tuple(m.devices), m.sleep is not None, dict(m.resources_asleep)
        )
        for model_id, m in loaded.models.items()
    }
    budgeting = Budgeting(
        capacity=dict(resources.capacity),
        learn=resources.learn,
        devices=tuple(resources.devices),
        sized=tuple(resources.sized),
    )
    return FootprintTable(budgeting, models, learned)


def swapper_for(loaded: LoadedConfig, learned: Learned | None = None) -> Swapper:
    """The swapper `routing.router.use` names; with a capacity, the matrix and group
    swappers also keep to it. `learned`: the measured footprints and load times."""
    table = footprint_table(loaded, learned)
    order = list(loaded.models)
    if loaded.router_use == "matrix":
        matrix = loaded.matrix
        if matrix is None:
            raise ValueError("the matrix router is in use but no matrix was compiled")
        if table is None:
            return MatrixSwapper(matrix)
        matrix_costs = {m: matrix.cost_of(m) for m in order}
        return MatrixSwapper(matrix, MatrixBudget(table, matrix_costs, order))
    groups = GroupSwapper.with_default(loaded.groups, loaded.models)
    if table is None:
        return groups
    setting = loaded.config.routing.budget.costs
    costs = EvictCosts(setting, table.learned.books)
    if loaded.router_use == "budget":
        return BudgetSwapper(table, costs, order)
    persistent = frozenset(m for g in loaded.groups.values() if g.persistent for m in g.members)
    return GroupBudget(groups, BudgetSwapper(table, costs, order, keep=persistent))


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


def scheduler_from_config(
    loaded: LoadedConfig, effects: Effects, learned: Learned | None = None
) -> FifoScheduler:
    """The scheduler a router built from `loaded` runs, with its swapper, over
    `effects`: pure, for running the daemon's decisions elsewhere (the simulator)."""
    settings = router_settings(loaded)
    return FifoScheduler(
        settings.models, swapper_for(loaded, learned), effects, settings.scheduler_settings()
    )


def router_from_config(
    loaded: LoadedConfig,
    pool: ProcessPool,
    bus: EventBus,
    learned: Learned | None = None,
    request_ids: Callable[[], int] | None = None,
) -> Router:
    """A router for `loaded` over the processes of `pool` (`request_ids`: see `Router`)."""
    placement = learned.placed.get if learned is not None else None
    control = PoolControl(pool, placement)
    router = Router(
        control, swapper_for(loaded, learned), bus, router_settings(loaded), request_ids
    )
    router.learned = learned
    return router


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
    await router.reload(swapper_for(loaded, router.learned), settings, drain, after)
