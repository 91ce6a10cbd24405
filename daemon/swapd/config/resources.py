"""`resources`, each model's `resources` and `devices`, and the budget router's costs.

Rules checked here (all problems are collected, none stops the others):
- every size parses (`swapd.config.sizes`);
- a model's resource is a key of `resources.capacity`, except, for a model
  with `devices`, at most one resource that is not: the amount it takes on
  the device it is given;
- a device is a key of `resources.capacity`, named once;
- a model that cannot fit even alone (a resource it declares above the
  capacity, or a per-device amount above every device it may use) is an
  error naming the resource, needed and capacity; one that fits on some of
  its devices only is a warning;
- `use: budget` needs a capacity; footprints without a capacity are unused (a
  warning);
- `costs` as a map: keys are model IDs or aliases, values numbers >= 0;
- `resources.asleep` (a map of the same resources, what the model takes
  asleep) follows the rules of `resources`; an amount above the awake one is
  a warning, and so is `asleep` on a model that cannot sleep (unused).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

from swapd.config.errors import Issue, Path
from swapd.config.model import BudgetConfig, ResourcesConfig
from swapd.config.schema import ConfigDoc, ModelDoc
from swapd.config.sizes import SizeError, format_size, has_unit, parse_size

CAPACITY: Path = ("resources", "capacity")
ASLEEP = "asleep"


@dataclass
class Checked:
    """The effective `resources` block, each model's declared footprint, the costs."""

    resources: ResourcesConfig | None
    declared: dict[str, dict[str, int]]
    budget: BudgetConfig
    issues: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    asleep: dict[str, dict[str, int]] = field(default_factory=dict)
    """model -> its declared footprint while asleep (`resources.asleep`)."""


def check(doc: ConfigDoc, aliases: dict[str, str], use: str | None) -> Checked:
    """Check and resolve the resource keys of `doc`; `use` is the router in use."""
    issues: list[Issue] = []
    warnings: list[Issue] = []
    capacity: dict[str, int] = {}
    sized: set[str] = set()
    block = doc.resources
    if block is not None:
        for name, value in block.capacity.items():
            amount = _size(value, (*CAPACITY, name), issues)
            if amount is not None:
                capacity[name] = amount
                if has_unit(value):
                    sized.add(name)
    has_capacity = block is not None and bool(block.capacity)
    # A capacity that does not parse is reported once; its name still counts as known.
    known = dict.fromkeys(block.capacity if block is not None else (), 0) | capacity

    declared: dict[str, dict[str, int]] = {}
    asleep: dict[str, dict[str, int]] = {}
    used_devices: set[str] = set()
    for model_id, m in doc.models.items():
        base: Path = ("models", model_id)
        amounts: dict[str, int] = {}
        named: dict[str, str | int | float] = {}
        for name, given in m.resources.items():
            if name == ASLEEP:
                continue
            if isinstance(given, dict):
                issues.append(
                    Issue((*base, "resources", name), f"a size, got a map (only {ASLEEP} is one)")
                )
                continue
            named[name] = given
            amount = _size(given, (*base, "resources", name), issues)
            if amount is not None:
                amounts[name] = amount
        declared[model_id] = amounts
        slept = _asleep(model_id, m, amounts, known, issues, warnings)
        if slept:
            asleep[model_id] = slept
        devices = _devices(m.devices, base, known, has_capacity, issues)
        used_devices.update(devices)
        if not has_capacity:
            if m.resources:
                warnings.append(
                    Issue(
                        (*base, "resources"),
                        "unused: resources.capacity is not set, so nothing is budgeted",
                    )
                )
            continue
        per_device = [k for k in named if k not in known]
        if m.devices and len(per_device) > 1:
            issues.append(
                Issue(
                    (*base, "resources"),
                    "a model takes one resource on its device; "
                    f"{', '.join(per_device)} are not in resources.capacity",
                )
            )
        elif not m.devices:
            for name in per_device:
                issues.append(
                    Issue(
                        (*base, "resources", name),
                        f'unknown resource "{name}": not in resources.capacity '
                        f"({', '.join(known)}), and the model names no devices"
                        + _nearest(name, known),
                    )
                )
        _fits_alone(model_id, amounts, devices, per_device, capacity, sized, issues, warnings)

    if use == "budget" and not has_capacity:
        issues.append(
            Issue(
                ("routing", "router", "use"),
                "the budget router needs resources.capacity (what this machine has)",
            )
        )
    budget = _budget(doc, aliases, issues)
    resources = None
    if has_capacity and block is not None:
        resources = ResourcesConfig(
            capacity=capacity,
            learn=block.learn,
            devices=[name for name in capacity if name in used_devices],
            sized=[name for name in capacity if name in sized],
        )
    return Checked(resources, declared, budget, issues, warnings, asleep)


def _asleep(
    model_id: str,
    m: ModelDoc,
    awake: dict[str, int],
    known: dict[str, int],
    issues: list[Issue],
    warnings: list[Issue],
) -> dict[str, int]:
    """`resources.asleep`: the same resources as awake, each at most the awake amount
    (else a warning); unused (a warning) on a model that cannot sleep."""
    block = m.resources.get(ASLEEP)
    if block is None:
        return {}
    where: Path = ("models", model_id, "resources", ASLEEP)
    if not isinstance(block, dict):
        issues.append(Issue(where, "a map of resource -> size, what the model takes asleep"))
        return {}
    out: dict[str, int] = {}
    # With devices, the resource it takes on its device is not in the capacity.
    device_resource = {k for k in awake if k not in known} if m.devices else set()
    for name, value in block.items():
        at: Path = (*where, name)
        if known and name not in known and name not in device_resource:
            issues.append(
                Issue(
                    at,
                    f'unknown resource "{name}": not in resources.capacity ({", ".join(known)})'
                    + (" nor what the model takes on its device" if m.devices else "")
                    + _nearest(name, known),
                )
            )
            continue
        amount = _size(value, at, issues)
        if amount is None:
            continue
        out[name] = amount
        if name in awake and amount > awake[name]:
            warnings.append(
                Issue(
                    at,
                    f"more than it takes awake ({format_size(amount, unit=has_unit(value))} > "
                    f"{format_size(awake[name], unit=has_unit(value))}): sleeping it frees "
                    "nothing of it",
                )
            )
    can_sleep = m.sleep is not None or m.wake is not None
    if not can_sleep and not (m.cmd_sleep.strip() or m.cmd_wake.strip()):
        warnings.append(Issue(where, "unused: the model has no sleep/wake nor cmdSleep/cmdWake"))
    return out


def _size(value: str | int | float, where: Path, issues: list[Issue]) -> int | None:
    try:
        return parse_size(value)
    except SizeError as exc:
        issues.append(Issue(where, str(exc)))
        return None


def _nearest(name: str, known: dict[str, int]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def _devices(
    devices: list[str],
    base: Path,
    capacity: dict[str, int],
    has_capacity: bool,
    issues: list[Issue],
) -> list[str]:
    """The model's valid devices, in order; problems appended to `issues`."""
    out: list[str] = []
    if devices and not has_capacity:
        issues.append(
            Issue(
                (*base, "devices"),
                "devices need resources.capacity with an entry for each device",
            )
        )
        return out
    for i, device in enumerate(devices):
        where = (*base, "devices", i)
        if device in out:
            issues.append(Issue(where, f'device "{device}" is named twice'))
        elif device not in capacity:
            issues.append(
                Issue(
                    where,
                    f'unknown device "{device}": devices are keys of resources.capacity '
                    f"({', '.join(capacity)})" + _nearest(device, capacity),
                )
            )
        else:
            out.append(device)
    return out


def _fits_alone(
    model_id: str,
    amounts: dict[str, int],
    devices: list[str],
    per_device: list[str],
    capacity: dict[str, int],
    sized: set[str],
    issues: list[Issue],
    warnings: list[Issue],
) -> None:
    """A declared footprint above the capacity can never run: say which and by how much."""
    base: Path = ("models", model_id)

    def show(resource: str, amount: int) -> str:
        return format_size(amount, unit=resource in sized)

    for name, amount in amounts.items():
        if name in capacity and amount > capacity[name] and name not in devices:
            issues.append(
                Issue(
                    (*base, "resources", name),
                    f"cannot fit even alone: needs {show(name, amount)} of {name}, "
                    f"capacity is {show(name, capacity[name])}",
                )
            )
    if len(per_device) != 1 or not devices:
        return
    name = per_device[0]
    need = amounts.get(name, 0)
    devices = [d for d in devices if d in capacity]
    if not devices:
        return
    fits = [d for d in devices if need + amounts.get(d, 0) <= capacity[d]]
    listed = ", ".join(f"{d} ({show(d, capacity[d])})" for d in devices)
    if not fits:
        issues.append(
            Issue(
                (*base, "resources", name),
                f"cannot fit even alone: needs {show(devices[0], need)} of {name} on one of "
                f"its devices, capacity is {listed}",
            )
        )
    elif len(fits) < len(devices):
        short = ", ".join(f"{d} ({show(d, capacity[d])})" for d in devices if d not in fits)
        warnings.append(
            Issue(
                (*base, "resources", name),
                f"needs {show(devices[0], need)} of {name}: it does not fit on {short}, "
                f"so it only runs on {', '.join(fits)}",
            )
        )


def _budget(doc: ConfigDoc, aliases: dict[str, str], issues: list[Issue]) -> BudgetConfig:
    costs = doc.routing.router.settings.budget.costs
    if isinstance(costs, str):
        return BudgetConfig(costs=costs)
    resolved: dict[str, float] = {}
    for key, value in costs.items():
        where: Path = ("routing", "router", "settings", "budget", "costs", key)
        target = key if key in doc.models else aliases.get(key)
        if target is None:
            issues.append(Issue(where, f'references unknown model "{key}"'))
        elif not math.isfinite(value) or value < 0:
            issues.append(Issue(where, f"a cost is a number >= 0, got {value:g}"))
        else:
            resolved[target] = float(value)
    return BudgetConfig(costs=resolved)
