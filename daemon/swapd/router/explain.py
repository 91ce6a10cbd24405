"""`explain(model)`: what would happen to a request for `model` right now, and why.

A pure query over the scheduler's state and a snapshot of the process
states; it changes nothing. `swapctl explain` and the TUI show it.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from swapd.router.events import Facts
from swapd.router.scheduler import FifoScheduler

Verdict = Literal["not_found", "too_many", "shutdown", "refuse", "serve", "join", "queue", "swap"]


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict for a request for `model` now.

    `evict`/`set`/`cost`: what the swapper would stop (for "swap", and for
    "queue" when the eviction is what blocks). `blocked_by`: the models whose
    swaps or requests in flight hold it back (for "queue"). `queue_ahead`: how
    many queued requests it would wait behind.
    """

    model: str
    verdict: Verdict
    reason: str
    evict: tuple[str, ...] = ()
    set: str | None = None
    cost: int = 0
    blocked_by: tuple[str, ...] = ()
    queue_ahead: int = 0
    sleep: tuple[str, ...] = ()
    """What the swapper would put to sleep instead of stopping (the budget router)."""
    in_flight: dict[str, int] = {}
    reserved: int = 0
    limit: int = 0
    state: str = "stopped"


def explain(scheduler: FifoScheduler, model: str, facts: Facts) -> Explanation:
    """The scheduler's own admission and plan for a request for `model`, in words.

    It runs the very functions a real request goes through (`admission`, then
    `query`, which is `plan` on these facts), so it cannot disagree with what
    the scheduler would do.
    """
    state = str(facts.running.get(model, "stopped"))
    refused = scheduler.admission(model)
    if refused is not None and refused.kind == "shutdown":
        return Explanation(
            model=model, verdict="shutdown", reason="the router is shutting down", state=state
        )
    if refused is not None and refused.kind == "not_found":
        return Explanation(model=model, verdict="not_found", reason=refused.message)
    policy = scheduler.models[model]
    reserved = scheduler.reserved.get(model, 0)
    limit = policy.effective_limit
    if refused is not None:
        return Explanation(
            model=model,
            verdict="too_many",
            reason=f"{reserved} requests admitted for {model}, concurrencyLimit is {limit}",
            reserved=reserved,
            limit=limit,
            state=state,
        )
    plan = scheduler.query(model, facts)
    touched = (*plan.evict, *plan.sleep)
    busy = {m: scheduler.in_flight[m] for m in touched if scheduler.in_flight.get(m, 0) > 0}
    ahead = scheduler.queue_position_for(policy.priority) if plan.action == "queue" else 0
    return Explanation(
        model=model,
        verdict=plan.action,
        reason=plan.reason,
        evict=plan.evict,
        sleep=plan.sleep,
        set=plan.set,
        cost=plan.cost,
        blocked_by=plan.blocked_by,
        queue_ahead=ahead,
        in_flight=busy,
        reserved=reserved,
        limit=limit,
        state=state,
    )
