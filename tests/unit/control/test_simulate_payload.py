"""The `simulate` reply: the keys of `swapd simulate --json`, and a table that survives the wire."""

from __future__ import annotations

import json

import msgspec
import pytest

from swapctl import codec, render
from swapctl import protocol as p
from swapd.config import load_config_text
from swapd.control.convert import simulation
from swapd.simulate.compare import compare, resolve_load_times, resolve_wake_times
from swapd.simulate.report import Report, to_json
from swapd.simulate.report import render as swapd_render
from tests.unit.simulate.test_engine import GROUP, MATRIX_AB, SLEEPY, abcabc, models_yaml, trace


def report(new_text: str, old_text: str | None, *, failing: bool = False) -> Report:
    configs = [("new.yaml", load_config_text(new_text))]
    if old_text is not None:
        configs.append(("old.yaml", load_config_text(old_text)))
    loaded = [c for _, c in configs]
    items = abcabc() + (trace((1.0, "nobody", 1.0)) if failing else [])
    load_times = resolve_load_times(loaded, [("A", 5.0)], {"B": 2.0})
    return compare(configs, items, load_times, resolve_wake_times(loaded, []), None)


CASES = {
    "two configs": report(MATRIX_AB, GROUP),
    "one config, a failure": report(GROUP, None, failing=True),
    "a model that sleeps": report(models_yaml("A", "B", "C", extra=SLEEPY), GROUP),
}


@pytest.mark.parametrize("name", CASES)
def test_swapctl_prints_from_the_wire_the_table_swapd_simulate_prints(name: str) -> None:
    r = CASES[name]
    payload = simulation(r, since=None, truncated=False)
    # Through the wire, as swapctl receives it.
    line = codec.encode(p.SimulateReply(id=1, simulation=payload))
    received = msgspec.json.decode(line, type=p.SimulateReply).simulation
    assert render.simulation(received) == swapd_render(r)


@pytest.mark.parametrize("name", CASES)
def test_the_payload_carries_every_key_of_swapd_simulate_json(name: str) -> None:
    r = CASES[name]
    printed = json.loads(to_json(r))
    sent = json.loads(msgspec.json.encode(simulation(r, since=12.5, truncated=True)))
    assert {k: sent[k] for k in printed} == printed
    assert (sent["since"], sent["truncated"]) == (12.5, True)
    assert [c["config"] for c in sent["configs"]] == [c.config for c in r.configs]


def test_the_table_of_two_configs_names_both_and_their_difference() -> None:
    text = render.simulation(simulation(CASES["two configs"], since=None, truncated=False))
    assert text.startswith("6 requests replayed\n")
    assert "new.yaml (matrix router, maxWait 30s)" in text
    assert "old.yaml (group router, maxWait 30s)" in text
    assert "new.yaml minus old.yaml" in text
    assert text.endswith("load times:\n  A  5s     flag\n  B  2s  history\n  C  1s  default\n")


def test_a_cut_window_says_so() -> None:
    text = render.simulation(simulation(CASES["two configs"], since=None, truncated=True))
    assert text.splitlines()[0] == (
        "6 requests replayed (the latest of the window: more is not replayed)"
    )
