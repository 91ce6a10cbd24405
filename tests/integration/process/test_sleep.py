"""Sleep instead of kill with real processes: sleepAfter then ttl, a wake that fails, a sleep
that fails, and cmdSleep/cmdWake with the process's PID."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from swapd.process.spec import SleepAction, SleepSpec
from swapd.process.states import ProcessState
from swapd.process.supervisor import StartError
from tests.integration.process.harness import WAIT, fake_spec, gone, http_get, port_of, supervised

pytestmark = pytest.mark.trio

S = ProcessState
VLLM = SleepSpec(
    sleep=SleepAction(endpoint="/sleep?level=1"), wake=SleepAction(endpoint="/wake_up")
)


async def test_sleep_after_then_ttl_stops_it() -> None:
    spec = fake_spec(sleep=SleepSpec(VLLM.sleep, VLLM.wake, after=0.3), ttl=1.2)
    async with supervised(spec) as run:
        with trio.fail_after(WAIT):
            await run.sup.ensure_ready()
        pid = run.sup.pid
        assert pid is not None
        ready_at = trio.current_time()
        asleep = await run.wait_state(S.ASLEEP)
        assert "idle for sleepAfter 0.3s" in asleep.reason
        assert trio.current_time() - ready_at >= 0.3
        stopping = await run.wait_state(S.STOPPING)
        assert "TTL of 1.2s reached" in stopping.reason and stopping.old is S.ASLEEP
        assert trio.current_time() - ready_at >= 1.2
        await run.wait_state(S.STOPPED)
        assert gone(pid)


async def test_a_request_in_flight_keeps_it_awake() -> None:
    spec = fake_spec(sleep=SleepSpec(VLLM.sleep, VLLM.wake, after=0.2))
    async with supervised(spec) as run:
        with trio.fail_after(WAIT):
            await run.sup.ensure_ready()
        run.sup.hold()
        with trio.move_on_after(0.6):  # three sleepAfter periods: no sleep meanwhile
            await run.wait_state(S.ASLEEP)
        assert run.sup.state is S.READY
        run.sup.release()
        await run.wait_state(S.ASLEEP)


async def test_a_failed_wake_fails_the_waiters_and_stops_the_process() -> None:
    spec = fake_spec("--wake-fail", sleep=VLLM)
    async with supervised(spec) as run:
        with trio.fail_after(WAIT):
            await run.sup.ensure_ready()
            await run.sup.sleep()
        pid = run.sup.pid
        assert run.sup.state is S.ASLEEP and pid is not None
        with trio.fail_after(WAIT), pytest.raises(StartError) as info:
            await run.sup.ensure_ready()
        assert info.value.reason.startswith("wake failed: POST /wake_up: HTTP 500")
        assert run.sup.state is S.FAILED and gone(pid)
        # the next request starts it afresh
        with trio.fail_after(WAIT):
            await run.sup.ensure_ready()
        assert run.sup.pid != pid and run.sup.state is S.READY


async def test_a_failed_sleep_leaves_it_ready_and_is_not_retried_by_sleep_after() -> None:
    spec = fake_spec("--sleep-fail", sleep=SleepSpec(VLLM.sleep, VLLM.wake, after=0.1))
    async with supervised(spec) as run:
        with trio.fail_after(WAIT):
            await run.sup.ensure_ready()
        with run.sup.proxy_log.subscribe(history=True, maxlen=1000) as lines:
            with trio.fail_after(WAIT):
                async for line in lines:
                    if "sleep failed" in line.text:
                        assert "HTTP 500" in line.text
                        break
            with trio.move_on_after(0.5):  # five sleepAfter periods: no second attempt
                async for line in lines:
                    assert "sleep failed" not in line.text
        assert run.sup.state is S.READY
        status, _ = await http_get(port_of(spec), "/v1/models")
        assert status == 200


async def test_cmd_sleep_and_cmd_wake_get_the_pid(tmp_path: Path) -> None:
    record = tmp_path / "calls"
    writer = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + ' ' + sys.argv[3] + '\\n')"
    sleep = SleepSpec(
        sleep=SleepAction(argv=(sys.executable, "-c", writer, str(record), "sleep", "${PID}")),
        wake=SleepAction(argv=(sys.executable, "-c", writer, str(record), "wake", "${PID}")),
    )
    async with supervised(fake_spec(sleep=sleep)) as run:
        with trio.fail_after(WAIT):
            await run.sup.ensure_ready()
            pid = run.sup.pid
            await run.sup.sleep()
            assert run.sup.state is S.ASLEEP
            await run.sup.ensure_ready()
        assert record.read_text() == f"sleep {pid}\nwake {pid}\n"


async def test_a_failing_cmd_wake_says_how() -> None:
    sleep = SleepSpec(
        sleep=SleepAction(argv=(sys.executable, "-c", "pass")),
        wake=SleepAction(argv=(sys.executable, "-c", "import sys; sys.exit('no GPU left')")),
    )
    async with supervised(fake_spec(sleep=sleep)) as run:
        with trio.fail_after(WAIT):
            await run.sup.ensure_ready()
            await run.sup.sleep()
            with pytest.raises(StartError) as info:
                await run.sup.ensure_ready()
        assert "exited with 1: no GPU left" in info.value.reason
