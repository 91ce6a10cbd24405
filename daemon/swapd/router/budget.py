"""The budget planner: which idle models to stop or put to sleep so that a target fits (pure).

`plan(Situation)` answers, for one target:

- **fit**: the device (for a model with `devices`) and the set of idle
  running models to evict (stop) or put to sleep, possibly empty, after
  which the target fits;
- **wait**: no set of idle models is enough, but evicting models that are
  serving requests would be: `evict` is the plan once they are idle and
  `wait_for` names them (the scheduler queues the request, as it does when a
  matrix eviction hits a busy model);
- **never**: the target does not fit even with nothing else running, or
  beside the models that are never evicted (`keep`): which resource, needed
  and capacity (and what the kept models hold of it).

What "fits" means: for every resource the target needs some of, the
target's amount plus what the models that stay running take is within the
capacity. Resources the target takes none of are not its concern: a
resource already over its capacity (a learned footprint grew) is not fixed by
evicting for an unrelated model. A resource that is not in the capacity is
not limited.

Sleep: a model that can sleep (it has an asleep footprint,
`asleep_footprints`) and is awake may instead be put to sleep: that frees
what it takes awake minus what it takes asleep, and costs its wake
(`wake_costs`). A model that is asleep (`asleep`) counts its asleep
footprint, and can only be stopped. Putting a model to sleep and stopping it
are exclusive. A target that is asleep is planned like a start on the device
it is on: it will take its awake footprint again.

Which set: the lowest total cost (stop costs plus wake costs); then the
fewest models touched; then the set that touches the least recently used
model first (`recency`, oldest first; a model it does not name counts as
older than any it does), then the file's order (`order`), then the name;
then the fewest stops (on a full tie a model sleeps rather than stops).
Those rules are one total order: each model gets a rank, and a set's key is
(cost, size, the ranks it contains most significant first, stops), so the
answer is unique and the same for the same inputs. Among devices: the
lowest cost, then the device with the most free before evicting, then the
same set order, then the order of `devices`.

How it stays fast: the set is a minimum-cost multi-dimensional covering
problem. The key above is one integer per choice (`((cost * M1 + M2 -
2^rank) * U) + stop`), so the search minimises a sum of positive integers
over choices of which at most one per model is taken: a depth-first branch and
bound over the models that free something the target is short of, ordered
by efficiency, with a greedy solution as the first bound, the best
fractional cover of each short resource as the lower bound, and, across
devices, bounds that only let a device whose answer could still win be
searched. Thirty models running on four devices take well under a
millisecond (bench/bench_budget.py). The search has a budget of nodes
(`NODE_BUDGET`); past it, the best set found so far is kept (it always fits)
and the plan is marked `exhaustive=False`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

NODE_BUDGET = 20_000  # branch-and-bound nodes per device searched

PlanKind = Literal["fit", "wait", "never"]
STOP = 0
SLEEP = 1
_Choice = tuple[str, int]  # (model, STOP or SLEEP)


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a model takes: `amounts` per resource (devices named directly included),
    plus `on_device` on the one device of `devices` it runs on."""

    amounts: Mapping[str, int] = field(default_factory=dict)
    on_device: int = 0
    devices: tuple[str, ...] = ()


NOTHING = Footprint()


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything one decision depends on.

    `running` may contain the target. `placed` says where each running model
    with devices runs (one it does not name counts on its first device).
    `costs` are whole numbers (a missing model costs `default_cost`).
    `busy` models have requests in flight: they are never evicted, the plan
    waits for them. `keep` models are never evicted at all (persistent ones):
    a target that does not fit beside them can never run.
    """

    target: str
    running: Sequence[str]
    footprints: Mapping[str, Footprint]
    capacity: Mapping[str, int]
    costs: Mapping[str, int] = field(default_factory=dict)
    busy: frozenset[str] = frozenset()
    placed: Mapping[str, str] = field(default_factory=dict)
    recency: Sequence[str] = ()
    order: Sequence[str] = ()
    default_cost: int = 1
    keep: frozenset[str] = frozenset()
    asleep_footprints: Mapping[str, Footprint] = field(default_factory=dict)
    """What each model that can sleep takes asleep (its devices are the awake ones).
    One that takes more of some resource asleep than awake is never put to sleep."""
    asleep: frozenset[str] = frozenset()
    """Running models that are asleep: they take their asleep footprint."""
    wake_costs: Mapping[str, int] = field(default_factory=dict)
    """What putting a model to sleep costs (its wake); a missing one: its stop cost."""


@dataclass(frozen=True, slots=True)
class Shortage:
    """Why a target can never run: `needed` of `resource` against `capacity`
    (for a model with devices: the largest capacity among them, `device`), of
    which models that are never evicted (`beside`) hold `held`."""

    resource: str
    needed: int
    capacity: int
    device: str | None = None
    beside: tuple[str, ...] = ()
    held: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer for one target (see the module docstring).

    `evict` (stopped) and `sleep` (put to sleep) keep the order of
    `running`. `need` is what the target takes, per resource it is short of
    or takes on its device; `free` what is free of it before evicting;
    `freed` what each evicted or slept model frees of it. `cost` is the
    stop costs of `evict` plus the wake costs of `sleep`.
    """

    kind: PlanKind
    target: str
    device: str | None = None
    evict: tuple[str, ...] = ()
    sleep: tuple[str, ...] = ()
    cost: int = 0
    wait_for: tuple[str, ...] = ()
    need: Mapping[str, int] = field(default_factory=dict)
    free: Mapping[str, int] = field(default_factory=dict)
    freed: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    shortage: Shortage | None = None
    exhaustive: bool = True


def ranks(situation: Situation) -> dict[str, int]:
    """Each running model's rank: 0 is evicted first when costs tie."""
    recency = {m: i for i, m in enumerate(situation.recency)}
    order = {m: i for i, m in enumerate(situation.order)}
    others = [m for m in dict.fromkeys(situation.running) if m != situation.target]
    others.sort(key=lambda m: (recency.get(m, -1), order.get(m, len(order)), m))
    return {m: i for i, m in enumerate(others)}


def plan(situation: Situation) -> Plan:
    """The cheapest way to make `situation.target` fit (see the module docstring)."""
    s = situation
    target = s.target
    running = list(dict.fromkeys(s.running))
    foot = s.footprints.get(target, NOTHING)
    if target in running:
        if target not in s.asleep:
            return Plan("fit", target, device=_where(s, target, foot))
        device = _where(s, target, foot)
        if device is not None:  # waking, it stays on its device
            foot = Footprint(foot.amounts, foot.on_device, (device,))
    devices: tuple[str | None, ...] = foot.devices or (None,)
    shortage = _shortage(s, foot)
    if shortage is not None:
        return Plan("never", target, shortage=shortage)

    rank = ranks(s)
    n = len(rank)
    unit = n + 1
    m2 = (1 << n) * unit
    m1 = (n + 1) * m2
    usage, used = _usage(s, running)
    weight: dict[_Choice, int] = {}
    for m, r in rank.items():
        tie = m2 - (1 << (n - 1 - r)) * unit
        weight[(m, STOP)] = _cost(s, m) * m1 + tie + 1
        if _may_sleep(s, m):
            weight[(m, SLEEP)] = _wake_cost(s, m) * m1 + tie
    slept = _asleep_usage(s, running)

    options: list[_Option] = []
    for pos, device in enumerate(devices):
        need = _need(s, foot, device)
        if any(amount > s.capacity[r] for r, amount in need.items()):
            continue  # this device is too small for it
        free_device = 0 if device is None else s.capacity[device] - used.get(device, 0)
        options.append(_Option(pos, device, need, free_device))
    # The device with most free first: it wins ties, and is often the cheapest, so the
    # bounds it sets keep the search of the others short.
    options.sort(key=lambda o: (-o.free_device, o.pos))

    for allow_busy in (False, True):
        search = _Search(s, usage, slept, used, weight, m1, allow_busy)
        best: _Solved | None = None
        for option in options:
            solved = search.solve(option, best)
            if solved is not None:
                best = solved
        if best is not None:
            return _plan(s, best, usage, used, running, kind="wait" if allow_busy else "fit")
    return Plan("never", target, shortage=_beside_kept(s, options, usage))


# ----------------------------------------------------------------- internals


@dataclass(slots=True)
class _Option:
    pos: int
    device: str | None
    need: dict[str, int]  # resource -> amount, resources in the capacity only
    free_device: int


@dataclass(slots=True)
class _Solved:
    option: _Option
    chosen: tuple[_Choice, ...]
    value: int  # the summed weights of `chosen`
    exhaustive: bool


def _cost(s: Situation, model: str) -> int:
    return max(0, s.costs.get(model, s.default_cost))


def _wake_cost(s: Situation, model: str) -> int:
    cost = s.wake_costs.get(model)
    return _cost(s, model) if cost is None else max(0, cost)


def _where(s: Situation, model: str, foot: Footprint) -> str | None:
    """The device a running model occupies: where it was placed, else its first device."""
    if not foot.devices:
        return None
    device = s.placed.get(model)
    return device if device in foot.devices else foot.devices[0]


def _need(s: Situation, foot: Footprint, device: str | None) -> dict[str, int]:
    need = {r: a for r, a in foot.amounts.items() if a > 0 and r in s.capacity}
    if device is not None and foot.on_device > 0:
        need[device] = need.get(device, 0) + foot.on_device
    return need


def _shortage(s: Situation, foot: Footprint) -> Shortage | None:
    """The first reason the target cannot fit even alone, on any of its devices."""
    for resource, amount in foot.amounts.items():
        if resource in s.capacity and resource not in foot.devices:
            if amount > s.capacity[resource]:
                return Shortage(resource, amount, s.capacity[resource])
    if not foot.devices:
        return None
    best: Shortage | None = None
    for device in foot.devices:
        need = _need(s, foot, device)
        over = [(r, a) for r, a in need.items() if a > s.capacity[r]]
        if not over:
            return None
        resource, amount = over[0]
        if best is None or s.capacity[resource] > best.capacity:
            best = Shortage(resource, amount, s.capacity[resource], device)
    return best


def _beside_kept(
    s: Situation, options: list[_Option], usage: dict[str, dict[str, int]]
) -> Shortage:
    """Why the target does not fit even with every evictable model gone: on its
    first device (most free first), the first resource that the models never
    evicted hold too much of."""
    for option in options:
        for resource, amount in option.need.items():
            per = usage.get(resource, {})
            beside = tuple(m for m in per if m in s.keep and per[m] > 0)
            held = sum(per[m] for m in beside)
            if amount + held > s.capacity[resource]:
                return Shortage(resource, amount, s.capacity[resource], option.device, beside, held)
    raise AssertionError("only models never evicted can keep a target that fits alone out")


def _takes(s: Situation, model: str, asleep: bool) -> dict[str, int]:
    """resource -> what `model` takes of the capacity, awake or asleep (asleep without
    an asleep footprint: as awake). Asleep it stays on the device it was on."""
    awake = s.footprints.get(model, NOTHING)
    foot = s.asleep_footprints.get(model, awake) if asleep else awake
    out: dict[str, int] = {}
    for r, a in foot.amounts.items():
        if a > 0 and r in s.capacity:
            out[r] = out.get(r, 0) + a
    device = _where(s, model, awake)
    if device is not None and foot.on_device > 0 and device in s.capacity:
        out[device] = out.get(device, 0) + foot.on_device
    return out


def _usage(s: Situation, running: list[str]) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """resource -> model -> amount for the running models other than the target (an
    asleep one at its asleep footprint), and resource -> their total."""
    usage: dict[str, dict[str, int]] = {}
    for m in running:
        if m == s.target:
            continue
        for r, a in _takes(s, m, m in s.asleep).items():
            usage.setdefault(r, {})[m] = a
    return usage, {r: sum(per.values()) for r, per in usage.items()}


def _may_sleep(s: Situation, model: str) -> bool:
    """An awake model that can sleep, and takes no more of any resource asleep than
    awake (a sleep that takes more of something is never a way to make room)."""
    if model not in s.asleep_footprints or model in s.asleep:
        return False
    awake = _takes(s, model, False)
    return all(a <= awake.get(r, 0) for r, a in _takes(s, model, True).items())


def _asleep_usage(s: Situation, running: list[str]) -> dict[str, dict[str, int]]:
    """resource -> model -> amount it would take asleep, for the awake models that can
    sleep (the target aside)."""
    out: dict[str, dict[str, int]] = {}
    for m in running:
        if m != s.target and _may_sleep(s, m):
            for r, a in _takes(s, m, True).items():
                out.setdefault(r, {})[m] = a
    return out


class _Search:
    """One decision's searches, one per device; what they share is worked out once."""

    def __init__(
        self,
        s: Situation,
        usage: dict[str, dict[str, int]],
        slept: dict[str, dict[str, int]],
        used: dict[str, int],
        weight: dict[_Choice, int],
        m1: int,
        allow_busy: bool,
    ) -> None:
        self.s = s
        self.usage = usage
        self.slept = slept
        self.used = used
        self.weight = weight
        self.m1 = m1
        self.allow_busy = allow_busy
        self._by_ratio: dict[str, list[tuple[_Choice, int, int]]] = {}

    def by_ratio(self, resource: str) -> list[tuple[_Choice, int, int]]:
        """(choice, weight, amount freed) of the choices (stop or sleep an evictable
        model) that free some `resource`, by weight per unit freed."""
        found = self._by_ratio.get(resource)
        if found is None:
            busy = () if self.allow_busy else self.s.busy
            keep = self.s.keep
            asleep = self.slept.get(resource, {})
            found = []
            for m, a in self.usage.get(resource, {}).items():
                if a <= 0 or m in busy or m in keep:
                    continue
                found.append(((m, STOP), self.weight[(m, STOP)], a))
                sleeping = (m, SLEEP)
                if sleeping in self.weight and a > asleep.get(m, 0):
                    found.append((sleeping, self.weight[sleeping], a - asleep.get(m, 0)))
            found.sort(key=lambda x: (x[1] / x[2], x[0]))
            self._by_ratio[resource] = found
        return found

    def solve(self, option: _Option, best: _Solved | None) -> _Solved | None:
        """The best eviction set on `option`'s device that beats `best`, or None."""
        s = self.s
        tight: list[str] = []
        deficits: list[int] = []
        for r, amount in option.need.items():
            over = self.used.get(r, 0) + amount - s.capacity[r]
            if over > 0:
                tight.append(r)
                deficits.append(over)
        bound = _bound(option, best, self.m1)
        if not tight:
            return _Solved(option, (), 0, True) if 0 < bound else None
        lists = [self.by_ratio(r) for r in tight]
        # The root's lower bound before any setup: the best fractional cover of each
        # short resource. A device that cannot beat `best` is not searched.
        for d, listed in enumerate(lists):
            need = deficits[d]
            total = 0
            for _, w, a in listed:
                if a >= need:
                    total += w * need // a
                    need = 0
                    break
                total += w
                need -= a
            if need > 0 or total >= bound:
                return None
        found = _cover(lists, tuple(deficits), bound)
        if found is None:
            return None
        chosen, value, exhaustive = found
        return _Solved(option, chosen, value, exhaustive)


def _bound(option: _Option, best: _Solved | None, m1: int) -> int:
    """Solutions on `option` must weigh less than this to beat `best` (see the docstring)."""
    if best is None:
        return 1 << 4096
    cost = best.value // m1
    if option.free_device > best.option.free_device:
        return (cost + 1) * m1
    if option.free_device == best.option.free_device:
        # Equal keys go to the earlier device in `devices`.
        return best.value + 1 if option.pos < best.option.pos else best.value
    return cost * m1


def _cover(
    lists: list[list[tuple[_Choice, int, int]]], deficits: tuple[int, ...], bound: int
) -> tuple[tuple[_Choice, ...], int, bool] | None:
    """The lightest set of choices, at most one per model, whose frees reach every
    deficit and that weighs less than `bound`: (choices, weight, exhaustive), or None.

    `lists[d]`: (choice, weight, amount freed of resource d), by weight per unit.
    """
    dims = range(len(deficits))
    # Branch first on the models of the resource the fewest models free: once they are
    # decided, that resource's feasibility cut settles most of the tree at once.
    index: dict[_Choice, int] = {}
    names: list[_Choice] = []
    weights: list[int] = []
    for d in sorted(dims, key=lambda d: (len(lists[d]), d)):
        for name, w, _ in lists[d]:
            if name not in index:
                index[name] = len(names)
                names.append(name)
                weights.append(w)
    count = len(names)
    # The choices of one model are exclusive: `group[k]` names it, `taken` marks it.
    groups: dict[str, int] = {}
    group = [groups.setdefault(name[0], len(groups)) for name in names]
    taken = [False] * len(groups)
    frees = [[0] * len(deficits) for _ in range(count)]
    by_ratio: list[list[int]] = []
    for d in dims:
        order = []
        for name, _, amount in lists[d]:
            k = index[name]
            frees[k][d] = amount
            order.append(k)
        by_ratio.append(order)
    # suffix[k][d]: what models k.. free of resource d together (the feasibility cut)
    suffix = [[0] * len(deficits) for _ in range(count + 1)]
    for k in range(count - 1, -1, -1):
        for d in dims:
            suffix[k][d] = suffix[k + 1][d] + frees[k][d]

    best_value = bound
    best_set: tuple[int, ...] | None = None
    greedy = _greedy(weights, frees, deficits, group)
    if greedy is not None:
        value = sum(weights[k] for k in greedy)
        if value < best_value:
            best_value, best_set = value, greedy

    def lower(k: int, left: list[int]) -> float:
        """The best fractional cover of each remaining deficit by models k..: a bound."""
        most = 0.0
        for d in dims:
            need = left[d]
            if need <= 0:
                continue
            total = 0.0
            for j in by_ratio[d]:
                if j < k or taken[group[j]]:
                    continue
                f = frees[j][d]
                if f >= need:
                    total += weights[j] * need / f
                    need = 0
                    break
                total += weights[j]
                need -= f
            if need > 0:
                return math.inf
            if total > most:
                most = total
        return most

    nodes = 0
    exhaustive = True
    chosen: list[int] = []

    def search(k: int, value: int, left: list[int]) -> None:
        nonlocal best_value, best_set, nodes, exhaustive
        nodes += 1
        if nodes > NODE_BUDGET:
            exhaustive = False
            return
        if all(x <= 0 for x in left):
            if value < best_value:
                best_value, best_set = value, tuple(chosen)
            return
        if k == count:
            return
        for d in dims:
            if left[d] > suffix[k][d]:
                return
        g = group[k]
        if taken[g]:  # the other choice of this model is taken
            search(k + 1, value, left)
            return
        if value + lower(k, left) >= best_value:
            return
        chosen.append(k)  # take choice k
        taken[g] = True
        f = frees[k]
        search(k + 1, value + weights[k], [left[d] - f[d] for d in dims])
        taken[g] = False
        chosen.pop()
        if exhaustive:  # leave it
            search(k + 1, value, left)

    search(0, 0, list(deficits))
    if best_set is None:
        return None
    return tuple(names[k] for k in best_set), best_value, exhaustive


def _greedy(
    weights: list[int], frees: list[list[int]], deficits: tuple[int, ...], group: list[int]
) -> tuple[int, ...] | None:
    """Take items in order until every deficit is met, then drop the ones not needed.

    One item per group: a later item of a taken group replaces it when it frees more of
    a deficit still open (a stop after a sleep of the same model), so the greedy finds a
    set whenever stopping models can."""
    dims = range(len(deficits))
    left = list(deficits)
    taken: list[int] = []
    groups: dict[int, int] = {}
    for k, f in enumerate(frees):
        if all(x <= 0 for x in left):
            break
        old = groups.get(group[k])
        if old is not None:
            if any(left[d] > 0 and f[d] > frees[old][d] for d in dims):
                taken.remove(old)
                left = [left[d] + frees[old][d] for d in dims]
            else:
                continue
        if any(f[d] > 0 and left[d] > 0 for d in dims):
            taken.append(k)
            groups[group[k]] = k
            left = [left[d] - f[d] for d in dims]
    if any(x > 0 for x in left):
        return None
    for k in sorted(taken, key=lambda k: -weights[k]):
        if all(left[d] + frees[k][d] <= 0 for d in range(len(left))):
            taken.remove(k)
            left = [left[d] + frees[k][d] for d in range(len(left))]
    return tuple(sorted(taken))


def _plan(
    s: Situation,
    solved: _Solved,
    usage: dict[str, dict[str, int]],
    used: dict[str, int],
    running: list[str],
    kind: PlanKind,
) -> Plan:
    option = solved.option
    stops = {m for m, how in solved.chosen if how == STOP}
    sleeps = {m for m, how in solved.chosen if how == SLEEP}
    evict = tuple(m for m in running if m in stops)
    sleep = tuple(m for m in running if m in sleeps)
    need = dict(option.need)
    free = {r: s.capacity[r] - used.get(r, 0) for r in need}
    freed: dict[str, dict[str, int]] = {}
    for m in running:
        if m in stops or m in sleeps:
            left = _takes(s, m, True) if m in sleeps else {}
            gone = {r: usage.get(r, {}).get(m, 0) - left.get(r, 0) for r in need}
            freed[m] = {r: a for r, a in gone.items() if a > 0}
    return Plan(
        kind,
        s.target,
        device=option.device,
        evict=evict,
        sleep=sleep,
        cost=sum(_cost(s, m) for m in evict) + sum(_wake_cost(s, m) for m in sleep),
        wait_for=tuple(m for m in running if m in s.busy and (m in stops or m in sleeps)),
        need=need,
        free=free,
        freed=freed,
        exhaustive=solved.exhaustive,
    )
