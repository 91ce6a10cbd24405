"""`resources`, per-model `resources` and `devices`, `use: budget` and its costs, sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.config.sizes import UNITS, SizeError, format_size, parse_size
from tests.unit.config.conftest import load, problems


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("24GiB", 24 << 30),
        ("24 GiB", 24 << 30),
        ("1.5KiB", 1536),
        ("512MiB", 512 << 20),
        ("2TiB", 2 << 40),
        ("100B", 100),
        ("7", 7),
        (".5MiB", 1 << 19),
        (4, 4),
        (2.6, 3),
    ],
)
def test_sizes_parse(text: str | int | float, amount: int) -> None:
    assert parse_size(text) == amount


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("24GB", 'unit "GB" is not accepted: sizes are binary, write GiB'),
        ("1MB", 'unit "MB" is not accepted: sizes are binary, write MiB'),
        ("3 parsecs", 'unknown unit "parsecs" (use B, KiB, MiB, GiB, TiB)'),
        ("lots", 'expected a size such as 24GiB or 512MiB, got "lots"'),
        ("-1GiB", 'expected a size such as 24GiB or 512MiB, got "-1GiB"'),
        (-3, "a size must be a finite number >= 0, got -3"),
        (float("inf"), "a size must be a finite number >= 0, got inf"),
    ],
)
def test_bad_sizes_say_why(text: str | int | float, message: str) -> None:
    with pytest.raises(SizeError) as info:
        parse_size(text)
    assert str(info.value) == message


@given(st.integers(0, 1 << 50), st.sampled_from(list(UNITS)))
def test_a_formatted_size_parses_back_within_its_rounding(amount: int, unit: str) -> None:
    shown = format_size(amount)
    assert abs(parse_size(shown) - amount) <= max(1, amount // 200)
    assert parse_size(f"{amount}{unit}") == amount * UNITS[unit]


BUDGET = """
resources:
  capacity: {ram: 10GiB, gpu0: 24GiB, gpu1: 12GiB, slots: 3}
models:
  a: {cmd: "run ${PORT}", resources: {ram: 4GiB, slots: 1}}
  b:
    cmd: "run ${PORT} --device ${DEVICE}"
    env: ["CUDA_VISIBLE_DEVICES=${DEVICE_INDEX}"]
    resources: {gpu: 18GiB, ram: 1GiB}
    devices: [gpu0, gpu1]
  c: {cmd: "run ${PORT}", aliases: [see]}
routing:
  router:
    use: budget
    settings:
      budget:
        costs: {a: 2, see: 0.5}
"""


def test_a_budget_config_loads_with_sizes_devices_and_costs() -> None:
    loaded = load(BUDGET)
    assert loaded.router_use == "budget" and loaded.groups == {}
    res = loaded.config.resources
    assert res is not None
    assert res.capacity == {"ram": 10 << 30, "gpu0": 24 << 30, "gpu1": 12 << 30, "slots": 3}
    assert res.learn is True and res.devices == ["gpu0", "gpu1"]
    assert res.sized == ["ram", "gpu0", "gpu1"]
    assert loaded.models["a"].resources == {"ram": 4 << 30, "slots": 1}
    b = loaded.models["b"]
    assert b.devices == ["gpu0", "gpu1"] and b.resources == {"gpu": 18 << 30, "ram": 1 << 30}
    # the device macros are left for the start that chooses the device
    assert b.argv == ["run", str(b.port), "--device", "${DEVICE}"]
    assert b.env == {"CUDA_VISIBLE_DEVICES": "${DEVICE_INDEX}"}
    assert loaded.config.routing.budget.costs == {"a": 2.0, "c": 0.5}  # aliases resolved
    assert [str(w) for w in loaded.warnings] == [
        "config.yaml:9:17: models.b.resources.gpu: needs 18GiB of gpu: it does not fit on "
        "gpu1 (12GiB), so it only runs on gpu0"
    ]


def test_costs_default_to_measured_and_take_the_two_words() -> None:
    text = BUDGET.replace("costs: {a: 2, see: 0.5}", "costs: uniform")
    assert load(text).config.routing.budget.costs == "uniform"
    text = BUDGET.replace("costs: {a: 2, see: 0.5}", "{}")
    assert load(text).config.routing.budget.costs == "measured"


def test_budget_problems_are_all_reported_with_their_positions() -> None:
    errs = problems(
        """
        resources:
          capacity: {vram: 24GB, ram: 64GiB, gpu0: 24GiB, gpu1: 12GiB}
          learn: sometimes
        models:
          a:
            cmd: run ${PORT} --dev ${DEVICE}
            resources: {vram: 30GiB, rm: 2GiB}
          b:
            cmd: run ${PORT}
            resources: {gpu: 18GiB, extra: 1}
            devices: [gpu0, gpu2, gpu0]
          c:
            cmd: run ${PORT}
            resources: {gpu: 30GiB}
            devices: [gpu0, gpu1]
          d: {cmd: "run ${PORT}", resources: {ram: 65GiB}}
        routing:
          router:
            use: budget
            settings:
              budget:
                costs: {a: 1, zz: 2, b: -1}
        """
    )
    assert errs == [
        'config.yaml:3:14: resources.capacity.vram: unit "GB" is not accepted: sizes are '
        "binary, write GiB",
        'config.yaml:4:3: resources.learn: expected bool, got "sometimes"',
        "config.yaml:7:5: models.a.cmd: macro '${DEVICE}' is only available in a model with "
        "devices",
        'config.yaml:8:30: models.a.resources.rm: unknown resource "rm": not in '
        "resources.capacity (vram, ram, gpu0, gpu1), and the model names no devices; "
        'did you mean "ram"?',
        "config.yaml:11:5: models.b.resources: a model takes one resource on its device; "
        "gpu, extra are not in resources.capacity",
        'config.yaml:12:21: models.b.devices[1]: unknown device "gpu2": devices are keys of '
        'resources.capacity (vram, ram, gpu0, gpu1); did you mean "gpu1"?',
        'config.yaml:12:27: models.b.devices[2]: device "gpu0" is named twice',
        "config.yaml:15:17: models.c.resources.gpu: cannot fit even alone: needs 30GiB of gpu "
        "on one of its devices, capacity is gpu0 (24GiB), gpu1 (12GiB)",
        "config.yaml:17:39: models.d.resources.ram: cannot fit even alone: needs 65GiB of ram, "
        "capacity is 64GiB",
        'config.yaml:23:23: routing.router.settings.budget.costs.zz: references unknown model "zz"',
        "config.yaml:23:30: routing.router.settings.budget.costs.b: a cost is a number >= 0, "
        "got -1",
    ]


def test_budget_without_capacity_and_bad_costs_words() -> None:
    errs = problems(
        """
        models:
          a: {cmd: "run ${PORT}"}
        routing:
          router: {use: budget, settings: {budget: {costs: cheap}}}
        """
    )
    assert errs == [
        "config.yaml:5:12: routing.router.use: the budget router needs resources.capacity "
        "(what this machine has)",
        "config.yaml:5:45: routing.router.settings.budget.costs: must be one of: measured, "
        'uniform or a mapping, got "cheap"',
    ]


def test_devices_need_a_capacity_and_footprints_without_one_are_unused() -> None:
    errs = problems('models:\n  a: {cmd: "run ${PORT}", devices: [gpu0]}\n')
    assert errs == [
        "config.yaml:2:27: models.a.devices: devices need resources.capacity with an entry "
        "for each device"
    ]
    loaded = load('models:\n  a: {cmd: "run ${PORT}", resources: {ram: 1GiB}}\n')
    assert [str(w) for w in loaded.warnings] == [
        "config.yaml:2:27: models.a.resources: unused: resources.capacity is not set, "
        "so nothing is budgeted"
    ]
    assert loaded.config.resources is None


def test_device_macros_are_reserved_and_only_in_cmd_cmd_stop_and_env() -> None:
    errs = problems(
        """
        resources: {capacity: {gpu0: 1}}
        macros: {DEVICE: x}
        models:
          a:
            cmd: run ${PORT}
            name: ${DEVICE_INDEX}
            devices: [gpu0]
        """
    )
    assert errs == [
        "config.yaml:3:10: macros.DEVICE: macro name 'DEVICE' is reserved",
        "config.yaml:7:5: models.a.name: macro '${DEVICE_INDEX}' is only available in cmd, "
        "cmdStop and env",
    ]


def test_a_model_with_devices_may_declare_nothing_and_learn_its_footprint() -> None:
    loaded = load(
        """
        resources: {capacity: {gpu0: 8GiB, gpu1: 8GiB}, learn: false}
        models:
          a: {cmd: "run ${PORT}", devices: [gpu1, gpu0]}
        """
    )
    assert loaded.models["a"].resources == {} and loaded.models["a"].devices == ["gpu1", "gpu0"]
    res = loaded.config.resources
    assert res is not None and res.learn is False and res.devices == ["gpu0", "gpu1"]


SLEEPY = """
resources:
  capacity: {vram: 10GiB, ram: 32GiB, gpu0: 24GiB}
models:
  a:
    cmd: "run ${PORT}"
    sleep: {endpoint: /sleep?level=1}
    wake: {endpoint: /wake_up}
    resources: {vram: 8GiB, ram: 2GiB, asleep: {vram: 1GiB, ram: 2GiB}}
  b:
    cmd: "run ${PORT}"
    cmdSleep: "kill -STOP ${PID}"
    cmdWake: "kill -CONT ${PID}"
    devices: [gpu0]
    resources: {gpu: 6GiB, asleep: {gpu: 512MiB}}
"""


def test_asleep_footprints_load_as_maps_of_the_same_resources() -> None:
    loaded = load(SLEEPY)
    assert not loaded.warnings
    a, b = loaded.models["a"], loaded.models["b"]
    assert a.resources == {"vram": 8 << 30, "ram": 2 << 30}, "asleep is not a resource"
    assert a.resources_asleep == {"vram": 1 << 30, "ram": 2 << 30}
    assert b.resources == {"gpu": 6 << 30} and b.resources_asleep == {"gpu": 512 << 20}


def test_asleep_problems_have_positions_and_unused_or_larger_ones_are_warnings() -> None:
    errs = problems(
        """
        resources:
          capacity: {vram: 10GiB}
        models:
          a:
            cmd: "run ${PORT}"
            resources: {vram: 8GiB, asleep: {vrm: 1GiB, vram: 2GB}}
          b:
            cmd: "run ${PORT}"
            resources: {vram: {x: 1}, asleep: 3GiB}
        """
    )
    assert errs == [
        'config.yaml:7:38: models.a.resources.asleep.vrm: unknown resource "vrm": not in '
        'resources.capacity (vram); did you mean "vram"?',
        'config.yaml:7:49: models.a.resources.asleep.vram: unit "GB" is not accepted: sizes '
        "are binary, write GiB",
        "config.yaml:10:17: models.b.resources.vram: a size, got a map (only asleep is one)",
        "config.yaml:10:31: models.b.resources.asleep: a map of resource -> size, what the "
        "model takes asleep",
    ]
    loaded = load(
        """
        resources:
          capacity: {vram: 10GiB}
        models:
          a:
            cmd: "run ${PORT}"
            resources: {vram: 8GiB, asleep: {vram: 9GiB}}
        """
    )
    assert [str(w) for w in loaded.warnings] == [
        "config.yaml:7:29: models.a.resources.asleep: unused: the model has no sleep/wake nor "
        "cmdSleep/cmdWake",
        "config.yaml:7:38: models.a.resources.asleep.vram: more than it takes awake (9GiB > "
        "8GiB): sleeping it frees nothing of it",
    ]
