"""The supervisor's TTL timer on a mock clock: hours of idleness pass in an instant.

The child is a real sleeper (ready at spawn, no health check), so only the
TTL bookkeeping runs on mock time. pytest-trio's `autojump_clock` jumps
whenever every task waits. Waiting on mock time for the end of a real
process's stop would race the jumps, so these tests stop at `stopping`.
"""

from __future__ import annotations

import sys

import pytest
import trio

from swapd.process.spec import ProcessSpec
from swapd.process.states import ProcessState
from tests.integration.process.harness import supervised

HOUR = 3600.0
S = ProcessState


def sleeper_spec(ttl: float) -> ProcessSpec:
    return ProcessSpec(
        model_id="m",
        argv=[sys.executable, "-c", "import time; time.sleep(600)"],
        proxy_url="http://127.0.0.1:1",
        check_endpoint="none",
        ttl=ttl,
        unload_timeout=1.0,
    )


@pytest.mark.trio
async def test_idle_model_unloads_exactly_one_ttl_after_ready(autojump_clock: object) -> None:
    async with supervised(sleeper_spec(HOUR)) as run:
        await run.sup.ensure_ready()
        ready_at = trio.current_time()
        assert run.sup.snapshot().ttl_left == HOUR
        event = await run.wait_state(S.STOPPING, 2 * HOUR)
        assert trio.current_time() - ready_at == pytest.approx(HOUR)
        assert "TTL of 3600s reached" in event.reason


@pytest.mark.trio
async def test_in_flight_requests_hold_and_the_clock_restarts_at_the_last_end(
    autojump_clock: object,
) -> None:
    async with supervised(sleeper_spec(HOUR)) as run:
        await run.sup.ensure_ready()
        run.sup.hold()
        run.sup.hold()
        await trio.sleep(10 * HOUR)
        assert run.sup.state is S.READY
        run.sup.release()
        await trio.sleep(10 * HOUR)
        assert run.sup.state is S.READY  # one request is still in flight
        run.sup.release()
        released = trio.current_time()
        await run.wait_state(S.STOPPING, 2 * HOUR)
        assert trio.current_time() - released == pytest.approx(HOUR)


@pytest.mark.trio
async def test_ttl_zero_never_unloads(autojump_clock: object) -> None:
    async with supervised(sleeper_spec(0.0)) as run:
        await run.sup.ensure_ready()
        await trio.sleep(1000 * HOUR)
        assert run.sup.state is S.READY
        assert run.sup.snapshot().ttl_left is None
