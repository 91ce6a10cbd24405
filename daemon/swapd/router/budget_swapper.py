"""The budget strategies behind the `Swapper` interface.

- `BudgetSwapper` (`use: budget`): a model may start when, for every resource,
  its footprint plus those of the models that stay running fit the capacity;
  otherwise the cheapest set of idle running models is evicted
  (`swapd.router.budget.plan`). A plan that needs a model serving requests
  names it in `evict`, and the scheduler queues the request until it is idle,
  as it does for the matrix. A model that cannot fit even alone is refused.
- `GroupBudget` (`use: group` with a capacity): the group rules first; when
  what they leave running would not fit beside the target, the cheapest set
  of other models is evicted too (never a member of a persistent group), and
  the decision says so.
- `MatrixBudget`: the `keep` the matrix solver asks, with a capacity: which
  running models of a combination may stay beside the target.

Footprints come from one `FootprintTable`; costs from `EvictCosts`. Costs are
planned in thousandths (`COST_SCALE`), so measured load times keep their
precision; `Eviction.cost` is the total in whole units, rounded.

Sleep (`BudgetSwapper` only): a model that can sleep may be put to sleep
rather than stopped, when that frees enough and is cheaper; it is then
planned at its asleep footprint (`FootprintTable.asleep_footprint`) until it
wakes. Putting it to sleep costs its wake (`EvictCosts.wake_cost`). The
group and matrix strategies never put a model to sleep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from swapd.router.budget import Plan, Situation, plan
from swapd.router.budget_books import Books
from swapd.router.footprints import FootprintTable
from swapd.router.group_swapper import GroupSwapper
from swapd.router.swapper import NO_USAGE, Eviction, Usage

log = logging.getLogger(__name__)

COST_SCALE = 1000
#: A wake never measured costs this share of its stop cost: a wake skips the spawn and
#: the load of the weights from disk, which is most of a start.
WAKE_SHARE = 0.1
KeepFn = Callable[[tuple[str, ...]], tuple[str, ...]]


@dataclass(frozen=True)
class EvictCosts:
    """What evicting each model costs: `measured` (the median of its recent load
    times in seconds, 1 when it never loaded), `uniform` (1), or a map (1 for a
    model it does not name)."""

    setting: str | Mapping[str, float] = "measured"
    books: Books = field(default_factory=Books)

    def cost(self, model: str) -> float:
        if isinstance(self.setting, Mapping):
            return float(self.setting.get(model, 1.0))
        if self.setting == "uniform":
            return 1.0
        median = self.books.costs.median_load(model)
        return 1.0 if median is None else median

    def wake_cost(self, model: str) -> float:
        """What putting `model` to sleep costs: with `measured`, the median of its recent
        wake times in seconds; else (or when it never woke) `WAKE_SHARE` of its cost."""
        if self.setting == "measured":
            median = self.books.costs.median_wake(model)
            if median is not None:
                return median
        return self.cost(model) * WAKE_SHARE

    def scaled(self, models: Sequence[str]) -> dict[str, int]:
        return {m: max(0, round(self.cost(m) * COST_SCALE)) for m in models}

    def scaled_wakes(self, models: Sequence[str]) -> dict[str, int]:
        return {m: max(0, round(self.wake_cost(m) * COST_SCALE)) for m in models}


def _show_cost(scaled: int) -> str:
    value = scaled / COST_SCALE
    return f"{value:g}" if value == int(value) else f"{value:.3g}"


def describe(
    table: FootprintTable,
    p: Plan,
    running: Sequence[str],
    planned: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """A budget plan in words: needed, free, what each evicted model frees, the cost,
    and the resources the plan is blind to."""
    parts: list[str] = []
    shown = table.shown
    if p.need:
        need = ", ".join(f"{r} {shown(r, a)}" for r, a in p.need.items())
        free = ", ".join(f"{r} {shown(r, a)}" for r, a in p.free.items())
        where = f" on {p.device}" if p.device else ""
        parts.append(f"needs {need}{where}, free {free}")

    def frees(models: Sequence[str]) -> str:
        said = []
        for m in models:
            freed = p.freed.get(m, {})
            what = ", ".join(f"{r} {shown(r, a)}" for r, a in freed.items()) or "nothing short"
            said.append(f"{m} (frees {what})")
        return ", ".join(said)

    touched = []
    if p.evict:
        touched.append("evicts " + frees(p.evict))
    if p.sleep:
        touched.append("sleeps " + frees(p.sleep))
    if touched:
        parts.append("; ".join(touched) + f"; cost {_show_cost(p.cost)}")
    if p.wait_for:
        parts.append("waits for " + ", ".join(p.wait_for) + " to finish their requests")
    blind = blind_note(table, [p.target, *running], planned)
    if blind:
        parts.append(blind)
    if not p.exhaustive:
        parts.append("the search went over its budget: the cheapest set found so far")
    return "; ".join(parts)


def blind_note(
    table: FootprintTable,
    models: Sequence[str],
    planned: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """The resources counted 0 for lack of figures: "the plan is blind to vram for c, d"."""
    by_resource: dict[str, list[str]] = {}
    for m in dict.fromkeys(models):
        for r in table.blind(m, planned.get(m) if planned is not None else None):
            by_resource.setdefault(r, []).append(m)
    if not by_resource:
        return ""
    said = "; ".join(f"{r} for {', '.join(ms)}" for r, ms in by_resource.items())
    return f"the plan is blind to {said} (nothing declared or measured: counted 0)"


def refusal(table: FootprintTable, p: Plan) -> str:
    """The message of a target that can never run."""
    s = p.shortage
    assert s is not None
    shown = table.shown
    where = f" on {s.device}" if s.device else ""
    text = (
        f"{p.target} cannot run: it needs {shown(s.resource, s.needed)} of {s.resource}{where}, "
        f"capacity is {shown(s.resource, s.capacity)}"
    )
    if s.beside:
        text += f", of which {', '.join(s.beside)} (never evicted) hold {shown(s.resource, s.held)}"
    return text


class BudgetSwapper:
    """`use: budget` (see the module docstring)."""

    def __init__(
        self,
        table: FootprintTable,
        costs: EvictCosts,
        order: Sequence[str],
        keep: frozenset[str] = frozenset(),
    ) -> None:
        self.table = table
        self.costs = costs
        self.order = tuple(order)
        self.keep = keep

    def planned(self, target: str, running: Sequence[str]) -> dict[str, dict[str, int]]:
        """Each model's planned footprint, looked up once per decision."""
        models = [*running, target] if target not in running else list(running)
        return {m: self.table.planned(m) for m in models}

    def situation(
        self,
        target: str,
        running: Sequence[str],
        usage: Usage,
        planned: Mapping[str, Mapping[str, int]] | None = None,
        *,
        sleep: bool = True,
    ) -> Situation:
        """`sleep`: the plan may put models to sleep (else asleep ones only count their
        asleep footprint)."""
        planned = self.planned(target, running) if planned is None else planned
        table = self.table
        sleepers = [m for m in planned if table.can_sleep(m) and (sleep or m in usage.asleep)]
        return Situation(
            target=target,
            running=running,
            footprints={m: table.footprint(m, p) for m, p in planned.items()},
            capacity=table.capacity,
            costs=self.costs.scaled(running),
            asleep_footprints={m: table.asleep_footprint(m, planned[m]) for m in sleepers},
            asleep=usage.asleep,
            wake_costs=self.costs.scaled_wakes([m for m in sleepers if m in running]),
            busy=usage.busy(running),
            placed=dict(self.table.learned.placed),
            recency=usage.recency(running),
            order=self.order,
            default_cost=COST_SCALE,
            keep=self.keep,
        )

    def plan(
        self,
        target: str,
        running: Sequence[str],
        usage: Usage = NO_USAGE,
        planned: Mapping[str, Mapping[str, int]] | None = None,
        *,
        sleep: bool = True,
    ) -> Plan:
        """The plan for `target`. Asked again right before `on_swap_start`, in the same
        step of the scheduler, it gives the same answer: nothing it reads changes between.
        `sleep`: as `situation`."""
        return plan(self.situation(target, running, usage, planned, sleep=sleep))

    def eviction_for(
        self, target: str, running: Sequence[str], usage: Usage = NO_USAGE
    ) -> Eviction:
        planned = self.planned(target, running)
        p = self.plan(target, running, usage, planned)
        if p.kind == "never":
            return Eviction(refuse=refusal(self.table, p))
        if target in running and target not in usage.asleep:
            return Eviction()
        return Eviction(
            evict=p.evict,
            sleep=p.sleep,
            cost=round(p.cost / COST_SCALE),
            detail=describe(self.table, p, running, planned),
        )

    def on_swap_start(self, target: str, running: Sequence[str], usage: Usage = NO_USAGE) -> None:
        p = self.plan(target, running, usage)
        if p.device is not None:
            self.table.learned.placed[target] = p.device
        log.info(
            "budget: model=%s evict=%s sleep=%s %s",
            target,
            list(p.evict),
            list(p.sleep),
            describe(self.table, p, running),
        )


class GroupBudget:
    """`use: group` with a capacity (see the module docstring)."""

    def __init__(self, groups: GroupSwapper, budget: BudgetSwapper) -> None:
        self.groups = groups
        self.budget = budget

    def _decide(
        self, target: str, running: Sequence[str], usage: Usage
    ) -> tuple[Eviction, Plan | None]:
        by_group = self.groups.eviction_for(target, running)
        if target in running:
            return by_group, None
        staying = [m for m in running if m not in by_group.evict]
        p = self.budget.plan(target, staying, usage, sleep=False)
        if p.kind == "never":
            return Eviction(refuse=refusal(self.budget.table, p)), p
        if not p.evict:
            return by_group, p
        extra = set(p.evict)
        evict = tuple(m for m in running if m in extra or m in by_group.evict)
        detail = (
            f"the group's choice would not fit: also evicts {', '.join(p.evict)} outside "
            f"the group; " + describe(self.budget.table, p, staying)
        )
        return (
            Eviction(
                evict=evict,
                set=by_group.set,
                cost=by_group.cost + len(p.evict),
                detail=detail,
            ),
            p,
        )

    def eviction_for(
        self, target: str, running: Sequence[str], usage: Usage = NO_USAGE
    ) -> Eviction:
        return self._decide(target, running, usage)[0]

    def on_swap_start(self, target: str, running: Sequence[str], usage: Usage = NO_USAGE) -> None:
        eviction, p = self._decide(target, running, usage)
        if p is not None and p.device is not None:
            self.budget.table.learned.placed[target] = p.device
        if eviction.detail:
            log.info("group: model=%s evict=%s %s", target, list(eviction.evict), eviction.detail)
        else:
            self.groups.on_swap_start(target, running)


class MatrixBudget:
    """With a capacity, the matrix solver's `keep` for one target, and its refusal."""

    def __init__(self, table: FootprintTable, costs: Mapping[str, int], order: Sequence[str]):
        self.table = table
        self.costs = costs
        self.order = tuple(order)

    def _situation(self, target: str, running: Sequence[str]) -> Situation:
        return Situation(
            target=target,
            running=running,
            footprints=self.table.footprints([*running, target]),
            capacity=self.table.capacity,
            costs=self.costs,
            placed=dict(self.table.learned.placed),
            order=self.order,
        )

    def refusal(self, target: str) -> str:
        """Not empty when `target` cannot fit even alone."""
        p = plan(self._situation(target, ()))
        return refusal(self.table, p) if p.kind == "never" else ""

    def keep_for(self, target: str) -> KeepFn:
        def keep(combination: tuple[str, ...]) -> tuple[str, ...]:
            p = plan(self._situation(target, combination))
            gone = set(p.evict)
            return tuple(m for m in combination if m not in gone)

        return keep
