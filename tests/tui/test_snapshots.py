"""Every view pinned as a picture at 80x24 and 120x40, on fixed data and a fixed clock.

Regenerate after an intended change with
`pytest tests/tui/test_snapshots.py --snapshot-update`, look at the SVGs, commit them.
"""

from __future__ import annotations

import asyncio

import pytest
from textual.pilot import Pilot

from swapctl import protocol as p
from swaptui.state import Verdict
from tests.tui.fakes import T0, FakeSource, make_app, settle

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def prepared(source: FakeSource, *then: str):  # type: ignore[no-untyped-def]
    """A run_before that waits for the fake daemon's data, then presses `then`."""

    async def run_before(pilot: Pilot[object]) -> None:
        await asyncio.wait_for(source.ready.wait(), 10)
        await settle(pilot)
        if then:
            await pilot.press(*then)
        await settle(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "keys",
    [
        pytest.param((), id="models"),
        pytest.param(("2",), id="logs"),
        pytest.param(("3",), id="swaps"),
        pytest.param(("down", "down", "down", "4"), id="matrix"),
        pytest.param(("question_mark",), id="help"),
        pytest.param(("3", "j", "j", "enter"), id="swap-detail"),
        pytest.param(("o", "o", "slash", "q", "w", "e", "n", "enter"), id="sorted-filtered"),
        pytest.param(("slash", "z", "enter"), id="no-match"),
        pytest.param(("j", "d"), id="model-detail"),
        pytest.param(("5",), id="activity"),
        pytest.param(("5", "G", "enter"), id="request-detail"),
    ],
)
def test_view(snap_compare, size: tuple[int, int], keys: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    source = FakeSource()
    assert snap_compare(make_app(source), terminal_size=size, run_before=prepared(source, *keys))


@pytest.mark.parametrize("size", SIZES)
def test_groups(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    source = FakeSource(router="group")
    assert snap_compare(make_app(source), terminal_size=size, run_before=prepared(source, "4"))


@pytest.mark.parametrize("size", SIZES)
def test_reload_verdict_with_config_errors(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    verdict = Verdict(
        "reload",
        False,
        "config_invalid: /etc/swapd/config.yaml: invalid, the old config keeps running",
        (
            'config.yaml:12:5: models.llama.ttl: expected int >= -1, got "soon"',
            "config.yaml:30:3: matrix.sets.big: unknown model 'nope'",
        ),
    )
    source = FakeSource(verdicts={"reload": verdict})
    app = make_app(source)

    async def run_before(pilot: Pilot[object]) -> None:
        await prepared(source, "r")(pilot)
        await asyncio.wait_for(source.acted.wait(), 10)
        for _ in range(50):
            if app.screen.id != "_default":
                break
            await pilot.pause()
        # The toast announcing the reload is not part of the verdict.
        app.clear_notifications()
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_disconnected_with_filtered_logs(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    source = FakeSource()
    app = make_app(source)

    async def run_before(pilot: Pilot[object]) -> None:
        await prepared(source, "2", "slash", "l", "o", "a", "d", "enter")(pilot)
        source.emit(p.SwapStarted(time=T0, target="qwen-coder", evict=["llama-8b"], why="queue"))
        app.state.set_connection("disconnected", "no daemon at /run/swapd/control.sock", 2.0)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
