"""`${PORT}` assignment: sorted from startPort on a fresh start; kept across a reload."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swapd.config import LoadedConfig, PortsInUse
from swapd.config.diff import changed_settings, key_name
from swapd.config.ports import PortAllocator
from tests.unit.config.conftest import load


def config(*models: str, start: int = 9000, extra: str = "") -> str:
    text = f"startPort: {start}\nmodels:\n"
    for m in models:
        text += f"  {m}: {{cmd: 'serve --port ${{PORT}} --name {m}'{extra}}}\n"
    return text


def in_use(loaded: LoadedConfig, held: frozenset[int] = frozenset()) -> PortsInUse:
    return PortsInUse(
        start_port=loaded.config.start_port,
        assigned={m: c.port for m, c in loaded.models.items() if c.port is not None},
        held=held,
    )


def ports(loaded: LoadedConfig) -> dict[str, int | None]:
    return {m: c.port for m, c in loaded.models.items()}


def test_a_fresh_start_numbers_models_in_sorted_order() -> None:
    loaded = load(config("writer", "chat", "embed"))
    assert ports(loaded) == {"writer": 9002, "chat": 9000, "embed": 9001}


def test_adding_a_model_keeps_every_other_models_port_and_command() -> None:
    before = load(config("chat", "code", "writer"))
    after = load(config("broken", "chat", "code", "writer"), ports=in_use(before))
    assert ports(after) == {"broken": 9003, "chat": 9000, "code": 9001, "writer": 9002}
    for m in ("chat", "code", "writer"):
        assert after.models[m] == before.models[m]
    # What a fresh start would have done, and what llama-swap does on a reload:
    assert ports(load(config("broken", "chat", "code", "writer")))["chat"] == 9001


def test_a_new_model_never_gets_a_port_a_live_process_holds() -> None:
    before = load(config("a", "b", "c"))
    # b is removed but its old process is still draining on 9001; c is gone and stopped.
    after = load(config("a", "n1", "n2"), ports=in_use(before, held=frozenset({9000, 9001})))
    assert ports(after) == {"a": 9000, "n1": 9002, "n2": 9003}


def test_a_model_that_stops_using_port_then_uses_it_again_is_new() -> None:
    before = load(config("a", "b"))
    fixed = before.models["a"].cmd.replace("9000", "7000")
    middle = load(
        f"startPort: 9000\nmodels:\n  a: {{cmd: '{fixed}', proxy: 'http://127.0.0.1:7000'}}\n"
        "  b: {cmd: 'serve --port ${PORT} --name b'}\n",
        ports=in_use(before, held=frozenset({9001})),
    )
    assert ports(middle) == {"a": None, "b": 9001}
    again = load(config("a", "b"), ports=in_use(middle, held=frozenset({7000, 9001})))
    assert ports(again) == {"a": 9000, "b": 9001}


def test_a_changed_start_port_lays_ports_out_afresh_around_held_ones() -> None:
    before = load(config("a", "b", start=9000))
    after = load(config("a", "b", start=9001), ports=in_use(before, held=frozenset({9000, 9001})))
    assert ports(after) == {"a": 9002, "b": 9003}
    quiet = load(config("a", "b", start=9001), ports=in_use(before))
    assert ports(quiet) == {"a": 9001, "b": 9002}


names = st.text(alphabet="abcdefgh", min_size=1, max_size=3)


@given(
    st.integers(1, 60000),
    st.dictionaries(names, st.integers(1, 60100), max_size=6),
    st.lists(names, max_size=10, unique=True),
    st.frozensets(st.integers(1, 60100), max_size=6),
)
def test_kept_ports_stay_and_new_ones_are_the_lowest_free(
    start: int, assigned: dict[str, int], models: list[str], held: frozenset[int]
) -> None:
    if len(set(assigned.values())) != len(assigned):
        return  # a running config never gives two models one port
    allocator = PortAllocator(start, models, PortsInUse(start, assigned, held))
    given_out: dict[str, int] = {}
    for m in sorted(models):
        given_out[m] = allocator.take(m)
    kept = {m: assigned[m] for m in models if m in assigned}
    assert {m: given_out[m] for m in kept} == kept
    fresh = [given_out[m] for m in sorted(models) if m not in kept]
    taken = set(kept.values()) | held
    expected: list[int] = []
    port = start
    for _ in fresh:
        while port in taken:
            port += 1
        expected.append(port)
        taken.add(port)
    assert fresh == expected
    assert len(set(given_out.values())) == len(given_out)


@given(st.integers(1, 60000), st.lists(names, max_size=10, unique=True))
def test_without_ports_in_use_the_layout_is_sequential(start: int, models: list[str]) -> None:
    allocator = PortAllocator(start, models)
    assert [allocator.take(m) for m in sorted(models)] == list(range(start, start + len(models)))


# --- what changed in a model -------------------------------------------------------


def test_changed_settings_are_named_by_config_key() -> None:
    before = load(config("a", "b"))
    after = load(
        "startPort: 9000\nmodels:\n"
        "  a: {cmd: 'serve --port ${PORT} --name a --fast', env: [X=1], checkEndpoint: /ok}\n"
        "  b: {cmd: 'serve --port ${PORT} --name b', ttl: 5, concurrencyLimit: 2}\n",
        ports=in_use(before),
    )
    assert changed_settings(before.models["a"], after.models["a"]) == [
        "cmd",
        "checkEndpoint",
        "env",
    ]
    assert changed_settings(before.models["b"], after.models["b"]) == ["ttl", "concurrencyLimit"]
    assert changed_settings(before.models["a"], before.models["a"]) == []


def test_a_model_that_only_moved_port_reports_port_alone() -> None:
    text = (
        "startPort: {start}\nmodels:\n  a:\n    cmd: serve --port ${{PORT}} --ctx 90000\n"
        "    metadata: {{port: '${{PORT}}', ctx: 4096}}\n"
    )
    before = load(text.format(start=9000))
    after = load(text.format(start=9001))
    assert before.models["a"].cmd != after.models["a"].cmd
    assert changed_settings(before.models["a"], after.models["a"]) == ["port"]


def test_key_names() -> None:
    assert [key_name(f) for f in ("argv", "stop_argv", "check_endpoint", "ttl", "id")] == [
        "cmd",
        "cmdStop",
        "checkEndpoint",
        "ttl",
        "",
    ]
