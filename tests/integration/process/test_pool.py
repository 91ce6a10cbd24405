"""The process pool: one supervisor per model, graceful stop on the way out, reloads."""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio

from swapd.events import EventBus
from swapd.process.pool import ProcessPool
from swapd.process.states import ProcessState
from swapd.process.supervisor import ProcessShutdown
from tests.integration.process.harness import WAIT, fake_spec, gone

S = ProcessState


@pytest.mark.trio
async def test_pool_runs_models_and_stops_them_gracefully_on_exit() -> None:
    bus = EventBus()
    specs = [fake_spec(model="a"), fake_spec(model="b"), fake_spec(model="c")]
    with trio.fail_after(WAIT):
        async with ProcessPool(specs, bus) as pool:
            assert list(pool) == ["a", "b", "c"] and len(pool) == 3 and "a" in pool
            assert pool.states() == {"a": S.STOPPED, "b": S.STOPPED, "c": S.STOPPED}
            await pool["a"].ensure_ready()
            await pool["b"].ensure_ready()
            pids = [pool["a"].pid, pool["b"].pid]
            assert pool.states() == {"a": S.READY, "b": S.READY, "c": S.STOPPED}
            assert pool.snapshots()["a"].pid == pids[0]
    for model in ("a", "b"):
        # SIGTERM, not SIGKILL: each fake said goodbye and exited 0
        assert any("received SIGTERM" in line.text for line in pool[model].logs)
        assert pool[model].last_exit_code == 0
    assert all(gone(pid) for pid in pids if pid is not None)
    assert set(pool.states().values()) == {S.SHUTDOWN}
    # every supervisor shares the pool's proxy log
    assert any("[a] health check passed" in line.text for line in pool.proxy_log)


@pytest.mark.trio
async def test_cancelled_scope_still_stops_children_gracefully() -> None:
    with trio.move_on_after(WAIT) as outer:
        async with ProcessPool([fake_spec(model="a")], EventBus()) as pool:
            await pool["a"].ensure_ready()
            pid = pool["a"].pid
            outer.cancel()  # like swapd's main scope on SIGTERM
            await trio.sleep_forever()
    assert outer.cancelled_caught
    assert pool["a"].last_exit_code == 0
    assert pid is not None and gone(pid)


@pytest.mark.trio
async def test_stop_all_and_ensure_after_shutdown() -> None:
    async with ProcessPool([fake_spec(model="a"), fake_spec(model="b")], EventBus()) as pool:
        with trio.fail_after(WAIT):
            await pool["a"].ensure_ready()
            await pool["b"].ensure_ready()
            await pool.stop_all(grace=1.0)
        assert pool.states() == {"a": S.STOPPED, "b": S.STOPPED}
    with pytest.raises(ProcessShutdown):
        await pool["a"].ensure_ready()


@pytest.mark.trio
async def test_update_adds_removes_and_replaces() -> None:
    a, b, c = fake_spec(model="a"), fake_spec(model="b"), fake_spec(model="c")
    async with ProcessPool([a, b], EventBus()) as pool:
        with trio.fail_after(WAIT):
            await pool["a"].ensure_ready()
            await pool["b"].ensure_ready()
            a_pid, old_b = pool["a"].pid, pool["b"]
            changed_b = replace(b, ttl=60.0)
            result = await pool.update([a, changed_b, c])
        assert (result.added, result.removed, result.replaced) == (("c",), (), ("b",))
        assert pool["a"].pid == a_pid  # untouched
        assert old_b.state is S.SHUTDOWN and pool["b"].state is S.STOPPED
        assert pool["b"].spec.ttl == 60.0
        with trio.fail_after(WAIT):
            result = await pool.update([changed_b])
        assert result.removed == ("a", "c")
        assert list(pool) == ["b"]
        assert a_pid is not None and gone(a_pid)


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        ProcessPool([fake_spec(model="a"), fake_spec(model="a")], EventBus())
