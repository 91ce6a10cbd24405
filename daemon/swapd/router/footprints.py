"""What each model takes for planning: the one place a footprint is looked up.

Every budget decision (the budget router, the matrix and group routers with a
capacity, `swapctl models`, `config check --with-history`) asks a
`FootprintTable`, so a new source of footprints (a sleeping model's smaller
one, say) is added here once.

- **declared**: the model's `resources` (bytes or plain numbers);
- **measured**: the highest peak of its last runs (`Books`) and of the run in
  progress (the meter's live peaks), per measure: `ram` is the resident
  memory of its process tree, `vram` its GPU memory. `ram` counts against
  the resource `ram`; `vram` against the resource `vram`, or, for a model
  with `devices`, against the amount it takes on its device;
- **planned**: with `learn: true`, per resource the larger of declared and
  measured times `LEARN_MARGIN`; with `learn: false`, the declared one.

A resource of the capacity that a model has neither declared nor been
measured for counts 0: the plan is *blind* to it for that model, and says so.

A model that can sleep also has an **asleep** footprint, what it takes while
asleep: per resource of its planned (awake) footprint, the declared
`resources.asleep` amount; with `learn: true`, the larger of that and the
highest peak while asleep (of its last runs that slept, kept across restarts,
and of the run in progress) times `LEARN_MARGIN` (the meter counts a reading
as asleep only when the model was asleep before and after it was taken).
With neither, the conservative reading: a sleeping server releases its
accelerator memory, so `vram` (and what a model with devices takes on its
device) counts 0; every other resource counts what it takes awake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from swapd.config.sizes import format_size
from swapd.router.budget import Footprint
from swapd.router.budget_books import Books

LEARN_MARGIN = (11, 10)  # times 1.1, exactly, rounded up
#: Measures the meter takes, and the resource each counts against by default.
MEASURE_RESOURCE = {"ram": "ram", "vram": "vram"}

LivePeaks = Callable[[str], Mapping[str, int]]


def _no_live(model: str) -> Mapping[str, int]:
    return {}


@dataclass(frozen=True)
class ModelResources:
    """A model's declared footprint: resource -> amount, and its devices in order."""

    declared: Mapping[str, int] = field(default_factory=dict)
    devices: tuple[str, ...] = ()
    sleeps: bool = False
    """It can be put to sleep (sleep/wake or cmdSleep/cmdWake)."""
    asleep: Mapping[str, int] = field(default_factory=dict)
    """Its declared footprint while asleep (`resources.asleep`)."""


@dataclass
class Learned:
    """What swapd has learnt, shared by every table built while the daemon runs:
    the books (persisted) and the meter's peaks of the runs in progress."""

    books: Books = field(default_factory=Books)
    live: LivePeaks = _no_live
    live_asleep: LivePeaks = _no_live
    """The meter's peaks of the run in progress while the model was asleep."""
    placed: dict[str, str] = field(default_factory=dict)
    """model -> the device the budget chose for its current run."""


@dataclass(frozen=True)
class Budgeting:
    """The capacity and how footprints are planned, from `resources:`."""

    capacity: Mapping[str, int]
    learn: bool = True
    devices: tuple[str, ...] = ()
    """Capacity keys that are devices (some model names them in `devices`)."""
    sized: tuple[str, ...] = ()
    """Capacity keys written with a unit (bytes)."""


class FootprintTable:
    """Declared, measured and planned footprints of every configured model."""

    def __init__(
        self,
        budgeting: Budgeting,
        models: Mapping[str, ModelResources],
        learned: Learned | None = None,
    ) -> None:
        self.budgeting = budgeting
        self.capacity = budgeting.capacity
        self.models = models
        self.learned = learned or Learned()

    def device_resource(self, model: str) -> str | None:
        """The resource a model with devices takes on its device (the key of its
        `resources` that is not in the capacity), or None."""
        m = self.models.get(model)
        if m is None or not m.devices:
            return None
        for name in m.declared:
            if name not in self.capacity:
                return name
        return "vram"

    def declared(self, model: str) -> dict[str, int]:
        m = self.models.get(model)
        return dict(m.declared) if m is not None else {}

    def measured(self, model: str) -> dict[str, int]:
        """resource -> the highest measured peak (past runs and the one in progress)."""
        peaks = dict(self.learned.books.footprints.measured(model))
        for measure, value in self.learned.live(model).items():
            peaks[measure] = max(peaks.get(measure, 0), value)
        return self._by_resource(model, peaks)

    def _by_resource(self, model: str, peaks: Mapping[str, int]) -> dict[str, int]:
        """measure -> value, as resource -> value (`vram` on a device for a model with one)."""
        out: dict[str, int] = {}
        on_device = self.device_resource(model)
        for measure, value in peaks.items():
            resource = MEASURE_RESOURCE.get(measure, measure)
            if measure == "vram" and on_device is not None:
                resource = on_device
            out[resource] = max(out.get(resource, 0), value)
        return out

    def planned(self, model: str) -> dict[str, int]:
        """resource -> what the plan counts (see the module docstring)."""
        planned = {r: a for r, a in self.declared(model).items() if a > 0}
        if not self.budgeting.learn:
            return planned
        for resource, value in self.measured(model).items():
            if value > 0:
                num, den = LEARN_MARGIN
                margin = -(-value * num // den)
                planned[resource] = max(planned.get(resource, 0), margin)
        return planned

    def can_sleep(self, model: str) -> bool:
        m = self.models.get(model)
        return m is not None and m.sleeps

    def asleep_measured(self, model: str) -> dict[str, int]:
        """resource -> the highest peak while asleep (past runs and the one in progress)."""
        peaks = dict(self.learned.books.asleep.measured(model))
        for measure, value in self.learned.live_asleep(model).items():
            peaks[measure] = max(peaks.get(measure, 0), value)
        return self._by_resource(model, peaks)

    def asleep_planned(
        self, model: str, planned: Mapping[str, int] | None = None
    ) -> dict[str, int]:
        """resource -> what the plan counts for `model` asleep (see the module docstring);
        `planned`: its planned awake footprint, when already at hand."""
        awake = self.planned(model) if planned is None else planned
        m = self.models.get(model)
        declared = dict(m.asleep) if m is not None else {}
        measured = self.asleep_measured(model) if self.budgeting.learn else {}
        released = {"vram", self.device_resource(model)}
        out: dict[str, int] = {}
        for resource, amount in awake.items():
            known = [declared[resource]] if resource in declared else []
            value = measured.get(resource, 0)
            if value > 0:
                num, den = LEARN_MARGIN
                known.append(-(-value * num // den))
            if known:
                out[resource] = max(known)
            elif resource not in released:
                out[resource] = amount
        return out

    def asleep_footprint(self, model: str, planned: Mapping[str, int] | None = None) -> Footprint:
        """The planner's view of `model` asleep (`planned`: its awake one, as `blind`)."""
        return self._footprint(model, self.asleep_planned(model, planned))

    def relevant(self, model: str) -> list[str]:
        """The resources the plan should know for `model`: the capacity's non-device
        resources, and for a model with devices the amount it takes on one."""
        out = [r for r in self.capacity if r not in self.budgeting.devices]
        on_device = self.device_resource(model)
        if on_device is not None:
            out.append(on_device)
        return out

    def blind(self, model: str, planned: Mapping[str, int] | None = None) -> list[str]:
        """Resources the plan counts as 0 for `model` because nothing is known
        (`planned`: its planned footprint, when already at hand)."""
        known = self.planned(model) if planned is None else planned
        return [r for r in self.relevant(model) if known.get(r, 0) <= 0]

    def footprint(self, model: str, planned: Mapping[str, int] | None = None) -> Footprint:
        """The planner's view of `model` (`planned`: as `blind`)."""
        return self._footprint(model, self.planned(model) if planned is None else planned)

    def _footprint(self, model: str, planned: Mapping[str, int]) -> Footprint:
        m = self.models.get(model)
        devices = m.devices if m is not None else ()
        on_device = self.device_resource(model)
        amounts = {r: a for r, a in planned.items() if r != on_device}
        return Footprint(
            amounts=amounts,
            on_device=planned.get(on_device, 0) if on_device is not None else 0,
            devices=devices,
        )

    def footprints(self, models: Sequence[str]) -> dict[str, Footprint]:
        return {m: self.footprint(m) for m in models}

    def device_of(self, model: str) -> str | None:
        """The device a model with devices runs on: where it was placed, else its first."""
        m = self.models.get(model)
        if m is None or not m.devices:
            return None
        placed = self.learned.placed.get(model)
        return placed if placed in m.devices else m.devices[0]

    def in_use(
        self, running: Sequence[str], asleep: frozenset[str] = frozenset()
    ) -> dict[str, int]:
        """resource -> what the running models take of it (those `asleep` at their asleep
        footprint), for every resource of the capacity."""
        used = dict.fromkeys(self.capacity, 0)
        for model in dict.fromkeys(running):
            sleeping = model in asleep and self.can_sleep(model)
            foot = self.asleep_footprint(model) if sleeping else self.footprint(model)
            for resource, amount in foot.amounts.items():
                if resource in used:
                    used[resource] += amount
            device = self.device_of(model)
            if device is not None and device in used:
                used[device] += foot.on_device
        return used

    def shown(self, resource: str, amount: int) -> str:
        """An amount for people: a size for a resource written with a unit."""
        return format_size(amount, unit=resource in self.budgeting.sized or _bytes(resource))


def _bytes(resource: str) -> bool:
    return resource in MEASURE_RESOURCE
