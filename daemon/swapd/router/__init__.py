"""Routing: the run loop, the pure FIFO scheduler and the swap planners.

HTTP handlers and the control socket talk to a `Router` only: `lease` a
model to relay a request, `unload`, `explain`, `decisions`, `snapshot`.
`router_from_config(loaded, pool, bus)` builds one from a loaded config.
"""

from swapd.router.build import (
    reload_from_config,
    router_from_config,
    router_settings,
    swapper_for,
)
from swapd.router.errors import (
    LoadFailed,
    ModelNotFound,
    RequestAborted,
    RouterError,
    TooManyRequests,
)
from swapd.router.events import Decision, Progress, SwapFinished, SwapStarted
from swapd.router.explain import Explanation
from swapd.router.group_swapper import Group, GroupSwapper
from swapd.router.matrix_swapper import MatrixSwapper
from swapd.router.process_control import PoolControl, ProcessControl
from swapd.router.run_loop import Grant, Router, RouterSettings, RouterSnapshot
from swapd.router.scheduler import Effects, FifoScheduler, ModelPolicy, SchedulerSettings
from swapd.router.swapper import Eviction, Swapper

__all__ = [
    "Decision",
    "Effects",
    "Eviction",
    "Explanation",
    "FifoScheduler",
    "Grant",
    "Group",
    "GroupSwapper",
    "LoadFailed",
    "MatrixSwapper",
    "ModelNotFound",
    "ModelPolicy",
    "PoolControl",
    "ProcessControl",
    "Progress",
    "RequestAborted",
    "Router",
    "RouterError",
    "RouterSettings",
    "RouterSnapshot",
    "SchedulerSettings",
    "SwapFinished",
    "SwapStarted",
    "Swapper",
    "TooManyRequests",
    "reload_from_config",
    "router_from_config",
    "router_settings",
    "swapper_for",
]
