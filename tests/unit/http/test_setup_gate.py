"""The setup gate: a free slot costs no scheduling point; waiters get slots in arrival order."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from swapd.http.setup_gate import NO_SLOT, SetupGate


@pytest.mark.trio
async def test_a_free_slot_is_taken_without_a_checkpoint() -> None:
    gate = SetupGate(2)
    with trio.testing.assert_no_checkpoints():
        first = await gate.enter()
        second = await gate.enter()
    first.release()
    second.release()


@pytest.mark.trio
async def test_waiters_get_their_turn_in_arrival_order() -> None:
    gate = SetupGate(1)
    held = await gate.enter()
    order: list[int] = []

    async def take(i: int) -> None:
        slot = await gate.enter()
        order.append(i)
        await trio.lowlevel.checkpoint()
        slot.release()

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(take, i)
            await trio.testing.wait_all_tasks_blocked()
        assert gate.waiting == 6
        held.release()
    assert order == list(range(6))


@pytest.mark.trio
async def test_a_slot_given_back_twice_counts_once(autojump_clock: MockClock) -> None:
    gate = SetupGate(1)
    slot = await gate.enter()
    slot.release()
    slot.release()
    NO_SLOT.release()
    again = await gate.enter()
    with trio.move_on_after(1) as waited:
        await gate.enter()
    assert waited.cancelled_caught, "one slot, not two"
    again.release()
