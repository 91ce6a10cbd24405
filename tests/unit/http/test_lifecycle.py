"""The connection lifecycle table: every row reachable, documented, and nothing else legal."""

from __future__ import annotations

import itertools

import pytest

from swapd.http.lifecycle import (
    LEGEND,
    NOTES,
    TRANSITIONS,
    ConnState,
    IllegalTransition,
    Trigger,
    next_state,
    render_table,
)


def test_every_row_is_documented_and_every_state_has_a_legend() -> None:
    assert set(NOTES) == set(TRANSITIONS)
    assert set(LEGEND) == set(ConnState)
    assert render_table().count("\n") == len(TRANSITIONS) + 1


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(ConnState, Trigger)))
def test_only_the_rows_of_the_table_are_legal(state: ConnState, trigger: Trigger) -> None:
    if (state, trigger) in TRANSITIONS:
        assert next_state(state, trigger) is TRANSITIONS[(state, trigger)]
    else:
        with pytest.raises(IllegalTransition):
            next_state(state, trigger)


def test_every_state_is_reachable_from_idle_and_every_state_can_close() -> None:
    seen = {ConnState.IDLE}
    frontier = [ConnState.IDLE]
    while frontier:
        state = frontier.pop()
        for (source, _), target in TRANSITIONS.items():
            if source is state and target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(ConnState)
    for state in set(ConnState) - {ConnState.CLOSED}:
        assert any(s is state for s, _ in TRANSITIONS), f"{state} is a dead end"


def test_an_unread_body_cannot_go_back_to_idle() -> None:
    with pytest.raises(IllegalTransition):
        next_state(ConnState.BODY, Trigger.RESPONSE_DONE)
    closing = next_state(ConnState.BODY, Trigger.CLOSE)
    assert next_state(closing, Trigger.RESPONSE_DONE) is ConnState.CLOSED
