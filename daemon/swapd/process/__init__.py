"""Process supervision: one supervisor task per model owns its server process.

The public surface, re-exported here: `ProcessSpec` (what to run), `Supervisor`
(one model's owner task), `ProcessPool` (all of them), the lifecycle table
(`ProcessState`, `TRANSITIONS`), the events (`StateChanged`, `LogLine`), the
log rings and the start errors.
"""

from swapd.process.events import LogBatch, LogLine, StateChanged
from swapd.process.logs import LogRing, LogSubscription
from swapd.process.pool import PoolUpdate, ProcessPool
from swapd.process.spec import ProcessSpec
from swapd.process.states import (
    TRANSITIONS,
    IllegalTransition,
    ProcessState,
    Trigger,
    render_legend,
    render_table,
)
from swapd.process.supervisor import (
    ProcessShutdown,
    ProcessSnapshot,
    StartAborted,
    StartError,
    Supervisor,
)

__all__ = [
    "TRANSITIONS",
    "IllegalTransition",
    "LogBatch",
    "LogLine",
    "LogRing",
    "LogSubscription",
    "PoolUpdate",
    "ProcessPool",
    "ProcessShutdown",
    "ProcessSnapshot",
    "ProcessSpec",
    "ProcessState",
    "StartAborted",
    "StartError",
    "StateChanged",
    "Supervisor",
    "Trigger",
    "render_legend",
    "render_table",
]
