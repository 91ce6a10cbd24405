"""The lifecycle table: every row, every illegal pair, and what is rendered from it."""

from __future__ import annotations

import itertools

import pytest

from swapd.process.states import (
    LEGEND,
    NOTES,
    TRANSITIONS,
    IllegalTransition,
    ProcessState,
    Trigger,
    next_state,
    render_legend,
    render_table,
    triggers_from,
)

S, T = ProcessState, Trigger


@pytest.mark.parametrize(("pair", "target"), list(TRANSITIONS.items()), ids=str)
def test_every_row_is_followed(pair: tuple[ProcessState, Trigger], target: ProcessState) -> None:
    assert next_state(*pair) is target


@pytest.mark.parametrize(
    "pair",
    [p for p in itertools.product(ProcessState, Trigger) if p not in TRANSITIONS],
    ids=str,
)
def test_pairs_outside_the_table_raise(pair: tuple[ProcessState, Trigger]) -> None:
    with pytest.raises(IllegalTransition) as info:
        next_state(*pair)
    assert (info.value.state, info.value.trigger) == pair


def test_shape_of_the_lifecycle() -> None:
    # shutdown is terminal and reachable from everywhere else
    assert triggers_from(S.SHUTDOWN) == ()
    for state in ProcessState:
        if state is not S.SHUTDOWN:
            assert next_state(state, T.SHUTDOWN) is S.SHUTDOWN
    # a stopping model accepts nothing but the end of the stop (requests wait for it)
    assert set(triggers_from(S.STOPPING)) == {T.STOPPED, T.SHUTDOWN}
    # the only way into starting is a start of a stopped or failed model, or a wake
    assert [p for p, t in TRANSITIONS.items() if t is S.STARTING] == [
        (S.STOPPED, T.START),
        (S.FAILED, T.START),
        (S.ASLEEP, T.START),
    ]
    # only a ready model goes to sleep; asleep, it wakes (start), stops, crashes or ends
    assert [p for p, t in TRANSITIONS.items() if t is S.ASLEEP] == [(S.READY, T.SLEEP)]
    assert set(triggers_from(S.ASLEEP)) == {T.START, T.STOP, T.EXITED, T.SHUTDOWN}
    # a stop of a stopped or failed model is a no-op
    assert next_state(S.STOPPED, T.STOP) is S.STOPPED
    assert next_state(S.FAILED, T.STOP) is S.FAILED
    # a model only fails on its own: a failed start or a crash, never a stop it was asked for
    assert {p for p, t in TRANSITIONS.items() if t is S.FAILED} == {
        (S.STARTING, T.START_FAILED),
        (S.READY, T.EXITED),
        (S.ASLEEP, T.EXITED),
        (S.FAILED, T.STOP),
    }


def test_every_state_is_reachable_from_stopped() -> None:
    seen, frontier = {S.STOPPED}, [S.STOPPED]
    while frontier:
        state = frontier.pop()
        for trigger in triggers_from(state):
            target = next_state(state, trigger)
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(ProcessState)


def test_docs_and_legend_come_from_the_table() -> None:
    assert set(NOTES) == set(TRANSITIONS)
    assert set(LEGEND) == set(ProcessState)
    table = render_table().splitlines()
    assert len(table) == 2 + len(TRANSITIONS)
    assert "| ready | exited | failed |" in render_table()
    legend = render_legend().splitlines()
    assert [line.split()[0] for line in legend] == [s.value for s in ProcessState]
