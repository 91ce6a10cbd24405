"""The supervisor with real child processes: every row of the lifecycle table, and more.

Each row of `TRANSITIONS` has a scenario below that drives a real fake
upstream through it; `test_every_row_has_a_scenario` keeps the two in step.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import trio

from swapd.process.spec import ProcessSpec, SleepAction, SleepSpec
from swapd.process.states import TRANSITIONS, ProcessState, Trigger
from swapd.process.supervisor import ProcessShutdown, StartAborted, StartError
from tests.integration.process.harness import (
    WAIT,
    Run,
    fake_spec,
    gone,
    http_get,
    port_of,
    read_pids,
    supervised,
)

S, T = ProcessState, Trigger
Scenario = Callable[[Path], Awaitable[None]]

#: `python -c FAIL_ONCE FLAG ARGS...`: exit 3 the first time (removing FLAG), then run ARGS.
FAIL_ONCE = (
    "import os, sys\n"
    "if os.path.exists(sys.argv[1]):\n"
    "    os.remove(sys.argv[1])\n"
    "    sys.exit(3)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)
ROWS: dict[tuple[ProcessState, Trigger], Scenario] = {}


def row(state: ProcessState, trigger: Trigger) -> Callable[[Scenario], Scenario]:
    def register(scenario: Scenario) -> Scenario:
        ROWS[(state, trigger)] = scenario
        return scenario

    return register


async def ready_run(run: Run) -> int:
    with trio.fail_after(WAIT):
        await run.sup.ensure_ready()
    assert run.sup.state is S.READY
    pid = run.sup.pid
    assert pid is not None
    return pid


@row(S.STOPPED, T.START)
@row(S.STARTING, T.HEALTHY)
@row(S.READY, T.STOP)
@row(S.STOPPING, T.STOPPED)
async def normal_start_and_stop(tmp_path: Path) -> None:
    async with supervised(fake_spec()) as run:
        pid = await ready_run(run)
        await run.sup.ensure_ready()  # ready: answered at once, nothing published
        assert run.transitions() == [(S.STOPPED, S.STARTING), (S.STARTING, S.READY)]
        await run.sup.stop()
        assert run.transitions() == [(S.READY, S.STOPPING), (S.STOPPING, S.STOPPED)]
        assert gone(pid)
        assert run.sup.pid is None


@row(S.STOPPED, T.STOP)
async def stop_when_stopped_is_silent(tmp_path: Path) -> None:
    async with supervised(fake_spec()) as run:
        await run.sup.stop()
        await run.sup.stop(timeout=0)
        assert run.transitions() == []
        assert run.sup.state is S.STOPPED


@row(S.STOPPED, T.SHUTDOWN)
async def shutdown_when_stopped(tmp_path: Path) -> None:
    async with supervised(fake_spec()) as run:
        run.scope.cancel()
    assert run.transitions() == [(S.STOPPED, S.SHUTDOWN)]
    with pytest.raises(ProcessShutdown):
        await run.sup.ensure_ready()
    await run.sup.stop()  # a stop after shutdown is a harmless no-op


@row(S.STARTING, T.START_FAILED)
async def exit_during_start(tmp_path: Path) -> None:
    spec = fake_spec("--exit-during-start", "0.05", "--exit-code", "7", "--load-delay", "30")
    async with supervised(spec) as run:
        with trio.fail_after(WAIT), pytest.raises(StartError) as info:
            await run.sup.ensure_ready()
        assert info.value.exit_code == 7
        assert "exited with code 7 while starting" in info.value.reason
        assert any("exiting during start as asked" in line for line in info.value.log_tail)
        assert run.transitions() == [(S.STOPPED, S.STARTING), (S.STARTING, S.FAILED)]
        assert run.sup.state is S.FAILED
        snap = run.sup.snapshot()
        assert (snap.starts, snap.failures) == (1, 1)
        assert snap.last_failure == info.value.reason and snap.last_failure_at is not None


@row(S.STARTING, T.STOP)
async def stop_during_start_aborts_it(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    async with supervised(fake_spec("--load-delay", "60", "--count-starts", str(starts))) as run:
        failures: list[BaseException] = []

        async def start() -> None:
            try:
                await run.sup.ensure_ready()
            except StartError as err:
                failures.append(err)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(start)
            nursery.start_soon(start)  # joins the same start
            await run.wait_state(S.STARTING)
            await run.wait_log(lambda line: "listening on" in line.text)
            with trio.fail_after(WAIT):
                await run.sup.stop(reason="evicted")
            assert run.sup.state is S.STOPPED
        assert len(failures) == 2
        assert all(isinstance(err, StartAborted) for err in failures)
        assert "evicted" in str(failures[0])
        assert failures[0] is not failures[1]
        assert run.transitions() == [(S.STARTING, S.STOPPING), (S.STOPPING, S.STOPPED)]
        assert gone(read_pids(starts)[0])


@row(S.STARTING, T.SHUTDOWN)
async def shutdown_during_start(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    spec = fake_spec("--load-delay", "60", "--count-starts", str(starts))
    errors: list[BaseException] = []
    with trio.fail_after(WAIT):
        async with supervised(spec) as run:

            async def start() -> None:
                # shielded: the waiter outlives the cancellation it observes
                with trio.CancelScope(shield=True), trio.fail_after(WAIT):
                    try:
                        await run.sup.ensure_ready()
                    except ProcessShutdown as err:
                        errors.append(err)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(start)
                await run.wait_state(S.STARTING)
                await run.wait_log(lambda line: "listening on" in line.text)
                run.scope.cancel()
    assert len(errors) == 1
    assert run.transitions() == [(S.STARTING, S.SHUTDOWN)]
    assert gone(read_pids(starts)[0])


@row(S.READY, T.EXITED)
async def crash_while_ready(tmp_path: Path) -> None:
    spec = fake_spec("--crash-after", "1")
    async with supervised(spec) as run:
        pid = await ready_run(run)
        run.transitions()
        await http_get(port_of(spec), "/v1/models")
        event = await run.wait_state(S.FAILED)
        assert event.old is S.READY
        assert "exited with code 70 while serving" in event.reason
        assert gone(pid)
        assert run.sup.last_exit_code == 70
        # no automatic restart, but the next request starts it again
        assert run.sup.state is S.FAILED
        assert run.sup.snapshot().last_failure == "exited with code 70 while serving"
        assert await ready_run(run) != pid
        assert (run.sup.snapshot().starts, run.sup.snapshot().failures) == (2, 1)


@row(S.READY, T.SHUTDOWN)
async def shutdown_while_ready(tmp_path: Path) -> None:
    async with supervised(fake_spec()) as run:
        pid = await ready_run(run)
        run.transitions()
        run.scope.cancel()
    assert run.transitions() == [(S.READY, S.SHUTDOWN)]
    assert gone(pid)


@row(S.STOPPING, T.SHUTDOWN)
async def shutdown_while_stopping(tmp_path: Path) -> None:
    # the child ignores SIGTERM and the grace is long: the shutdown cuts it to about 1 s
    async with supervised(fake_spec("--ignore-sigterm", unload_timeout=60.0)) as run:
        pid = await ready_run(run)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.sup.stop)
            await run.wait_state(S.STOPPING)
            started = trio.current_time()
            run.scope.cancel()
    assert trio.current_time() - started < 10
    assert run.transitions() == [(S.STOPPING, S.SHUTDOWN)]
    assert gone(pid)


async def failed_run(run: Run) -> None:
    """Drive the supervisor into `failed`: its start fails (the child exits at once)."""
    with trio.fail_after(WAIT), pytest.raises(StartError):
        await run.sup.ensure_ready()
    assert run.sup.state is S.FAILED
    run.transitions()


@row(S.FAILED, T.START)
async def start_after_a_failure(tmp_path: Path) -> None:
    flag = tmp_path / "fail-once"
    flag.write_text("")
    base = fake_spec()
    argv = [sys.executable, "-c", FAIL_ONCE, str(flag), *base.argv[1:]]
    async with supervised(replace(base, argv=argv)) as run:
        await failed_run(run)
        pid = await ready_run(run)
        assert run.transitions()[:2] == [(S.FAILED, S.STARTING), (S.STARTING, S.READY)]
        assert not gone(pid)
        assert run.sup.snapshot().failures == 1, "a success does not erase the count"


@row(S.FAILED, T.STOP)
async def stop_when_failed(tmp_path: Path) -> None:
    async with supervised(fake_spec("--exit-during-start", "0", "--load-delay", "30")) as run:
        await failed_run(run)
        await run.sup.stop()
        assert run.transitions() == [] and run.sup.state is S.FAILED


@row(S.FAILED, T.SHUTDOWN)
async def shutdown_when_failed(tmp_path: Path) -> None:
    async with supervised(fake_spec("--exit-during-start", "0", "--load-delay", "30")) as run:
        await failed_run(run)
        run.scope.cancel()
    assert run.transitions() == [(S.FAILED, S.SHUTDOWN)]


# ----- sleep instead of kill (rows into and out of asleep) ------------------------

VLLM_SLEEP = SleepSpec(
    sleep=SleepAction(endpoint="/sleep?level=1"), wake=SleepAction(endpoint="/wake_up")
)


async def asleep_run(run: Run) -> int:
    """Drive the supervisor into `asleep` through vLLM's sleep call; the pid."""
    pid = await ready_run(run)
    with trio.fail_after(WAIT):
        await run.sup.sleep(reason="test")
    assert run.sup.state is S.ASLEEP
    run.transitions()
    return pid


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


@row(S.READY, T.SLEEP)
async def sleep_when_ready(tmp_path: Path) -> None:
    spec = fake_spec("--hold-mib", "64", sleep=VLLM_SLEEP)
    async with supervised(spec) as run:
        pid = await ready_run(run)
        awake = rss(pid)
        run.transitions()
        await run.sup.sleep(reason="making room")
        assert run.transitions() == [(S.READY, S.ASLEEP)]
        assert (await http_get(port_of(spec), "/is_sleeping"))[1] == b'{"is_sleeping": true}'
        assert run.sup.pid == pid and not gone(pid)
        assert rss(pid) < awake - (48 << 20)  # the memory it held is released


@row(S.ASLEEP, T.START)
async def wake_when_asleep(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    spec = fake_spec("--hold-mib", "32", "--count-starts", str(starts), sleep=VLLM_SLEEP)
    async with supervised(spec) as run:
        pid = await asleep_run(run)
        await ready_run(run)
        assert run.transitions() == [(S.ASLEEP, S.STARTING), (S.STARTING, S.READY)]
        assert run.sup.pid == pid and read_pids(starts) == [pid]  # woken, not started again
        assert (await http_get(port_of(spec), "/is_sleeping"))[1] == b'{"is_sleeping": false}'
        assert run.sup.last_wake_seconds is not None
        assert any("awake: health check passed" in line.text for line in run.sup.proxy_log)


@row(S.ASLEEP, T.STOP)
async def stop_when_asleep(tmp_path: Path) -> None:
    async with supervised(fake_spec(sleep=VLLM_SLEEP)) as run:
        pid = await asleep_run(run)
        await run.sup.stop(reason="evicted")
        assert run.transitions() == [(S.ASLEEP, S.STOPPING), (S.STOPPING, S.STOPPED)]
        assert gone(pid)


@row(S.ASLEEP, T.EXITED)
async def crash_when_asleep(tmp_path: Path) -> None:
    async with supervised(fake_spec(sleep=VLLM_SLEEP)) as run:
        pid = await asleep_run(run)
        os.kill(pid, signal.SIGKILL)
        event = await run.wait_state(S.FAILED)
        assert event.old is S.ASLEEP and "killed by SIGKILL" in event.reason


@row(S.ASLEEP, T.SHUTDOWN)
async def shutdown_when_asleep(tmp_path: Path) -> None:
    async with supervised(fake_spec(sleep=VLLM_SLEEP)) as run:
        pid = await asleep_run(run)
        run.scope.cancel()
    assert run.transitions() == [(S.ASLEEP, S.SHUTDOWN)]
    assert gone(pid)


def test_every_row_has_a_scenario() -> None:
    assert set(ROWS) == set(TRANSITIONS)


@pytest.mark.trio
@pytest.mark.parametrize("pair", list(TRANSITIONS), ids=lambda p: f"{p[0]}-{p[1]}")
async def test_row(pair: tuple[ProcessState, Trigger], tmp_path: Path) -> None:
    await ROWS[pair](tmp_path)


# ----- starting ---------------------------------------------------------------


@pytest.mark.trio
async def test_concurrent_requests_join_one_start(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    async with supervised(fake_spec("--load-delay", "0.3", "--count-starts", str(starts))) as run:
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(run.sup.ensure_ready)
        assert len(read_pids(starts)) == 1
        assert run.sup.last_load_seconds is not None


@pytest.mark.trio
async def test_health_timeout_kills_the_child() -> None:
    spec = fake_spec("--never-healthy", health_check_timeout=0.5)
    async with supervised(spec) as run:
        with trio.fail_after(WAIT), pytest.raises(StartError) as info:
            await run.sup.ensure_ready()
        assert info.value.reason == "health check timed out after 0.5s"
        assert run.sup.state is S.FAILED
        pid = int((await run.wait_log(lambda line: "pid" in line.text)).text.split()[3])
        assert gone(pid)


@pytest.mark.trio
async def test_spawn_error_and_bad_spec_fail_cleanly() -> None:
    async with supervised(fake_spec(argv=["/nonexistent/server", "--flag"])) as run:
        with pytest.raises(StartError, match="failed to start command '/nonexistent/server"):
            await run.sup.ensure_ready()
        assert run.transitions() == [(S.STOPPED, S.STARTING), (S.STARTING, S.FAILED)]
    async with supervised(fake_spec(proxy_url="")) as run:
        with pytest.raises(StartError, match="upstream proxy missing"):
            await run.sup.ensure_ready()


@pytest.mark.trio
async def test_check_endpoint_none_is_ready_at_spawn() -> None:
    # never healthy, but nobody asks it
    async with supervised(fake_spec("--never-healthy", check_endpoint="none")) as run:
        await ready_run(run)


@pytest.mark.trio
async def test_env_and_output_reach_the_child_and_the_log() -> None:
    spec = ProcessSpec(
        "m",
        [
            sys.executable,
            "-c",
            "import os; print('hello', os.environ['SWAPD_T']); import time; time.sleep(60)",
        ],
        "http://127.0.0.1:1",
        env={"SWAPD_T": "from-env"},
        check_endpoint="none",
    )
    async with supervised(spec) as run:
        await ready_run(run)
        line = await run.wait_log(lambda line: line.stream == "stdout")
        assert line.text == "hello from-env"
        assert any("started pid" in line.text for line in run.sup.proxy_log)


# ----- stopping ---------------------------------------------------------------


@pytest.mark.trio
async def test_cmd_stop_gets_the_pid(tmp_path: Path) -> None:
    record = tmp_path / "stopped-pid"
    killer = (
        "import os, signal, sys; open(sys.argv[2], 'w').write(sys.argv[1]); "
        "os.kill(int(sys.argv[1]), signal.SIGKILL)"
    )
    spec = fake_spec(
        "--ignore-sigterm",
        stop_argv=[sys.executable, "-c", killer, "${PID}", str(record)],
        unload_timeout=30.0,
    )
    async with supervised(spec) as run:
        pid = await ready_run(run)
        with trio.fail_after(WAIT):
            await run.sup.stop()
        assert record.read_text() == str(pid)
        assert gone(pid)
        assert run.sup.last_exit_code == -signal.SIGKILL
        await run.wait_log(lambda line: line.text == "cmdStop exited with status 0")
        assert not any("SIGTERM" in line.text for line in run.sup.logs)


@pytest.mark.trio
async def test_sigterm_ignored_means_sigkill_after_unload_timeout() -> None:
    async with supervised(fake_spec("--ignore-sigterm", unload_timeout=0.3)) as run:
        pid = await ready_run(run)
        started = trio.current_time()
        with trio.fail_after(WAIT):
            await run.sup.stop()
        assert trio.current_time() - started >= 0.3
        assert gone(pid)
        assert run.sup.last_exit_code == -signal.SIGKILL
        assert any("SIGKILL" in line.text for line in run.sup.logs)


@pytest.mark.trio
@pytest.mark.parametrize("option", ["--grandchild", "--grandchild-ignore-sigterm"])
async def test_a_grandchild_dies_with_its_parent(option: str) -> None:
    async with supervised(fake_spec(option, unload_timeout=0.3)) as run:
        pid = await ready_run(run)
        line = await run.wait_log(lambda line: line.text.startswith("grandchild pid"))
        grandchild = int(line.text.split()[-1])
        assert not gone(grandchild)
        with trio.fail_after(WAIT):
            await run.sup.stop()
        assert gone(pid)
        assert gone(grandchild)


@pytest.mark.trio
async def test_a_crash_leaves_no_grandchild() -> None:
    spec = fake_spec("--grandchild-ignore-sigterm", "--crash-after", "1", unload_timeout=0.2)
    async with supervised(spec) as run:
        await ready_run(run)
        line = await run.wait_log(lambda line: line.text.startswith("grandchild pid"))
        grandchild = int(line.text.split()[-1])
        await http_get(port_of(spec), "/")
        await run.wait_state(S.FAILED)
        with trio.fail_after(WAIT):
            await run.sup.ensure_ready()  # waits for the clean-up, then starts again
        assert gone(grandchild)


# ----- TTL ----------------------------------------------------------------------


@pytest.mark.trio
async def test_ttl_unloads_an_idle_model() -> None:
    async with supervised(fake_spec(ttl=0.3)) as run:
        pid = await ready_run(run)
        ready_at = trio.current_time()
        event = await run.wait_state(S.STOPPED)
        assert "TTL" in event.reason
        assert trio.current_time() - ready_at >= 0.3
        assert gone(pid)
        assert any("TTL of 0.3s reached" in line.text for line in run.sup.proxy_log)


@pytest.mark.trio
async def test_ttl_waits_for_requests_in_flight() -> None:
    async with supervised(fake_spec(ttl=0.2)) as run:
        await ready_run(run)
        run.sup.hold()
        assert run.sup.snapshot().ttl_left is None
        await trio.sleep(0.6)  # three TTLs with a request in flight
        assert run.sup.state is S.READY
        run.sup.release()
        released = trio.current_time()
        ttl_left = run.sup.snapshot().ttl_left
        assert ttl_left is not None and ttl_left > 0.1
        await run.wait_state(S.STOPPED)
        assert trio.current_time() - released >= 0.2


@pytest.mark.trio
async def test_request_during_ttl_unload_starts_the_model_again(tmp_path: Path) -> None:
    """llama-swap issue #946: a request that arrives while a TTL unload runs must not hang."""
    starts = tmp_path / "starts"
    spec = fake_spec("--term-delay", "1.0", "--count-starts", str(starts), ttl=0.2)
    async with supervised(spec) as run:
        await ready_run(run)
        await run.wait_state(S.STOPPING)  # the TTL unload is under way (for 1 s)
        assert run.sup.state is S.STOPPING
        with trio.fail_after(WAIT):
            await run.sup.ensure_ready()
        assert run.sup.state is S.READY
        assert run.transitions() == [
            (S.STOPPING, S.STOPPED),
            (S.STOPPED, S.STARTING),
            (S.STARTING, S.READY),
        ]
        first, second = read_pids(starts)
        assert gone(first)
        assert run.sup.pid == second
