"""Config reload: invalid files change nothing, valid ones apply, the watcher notices edits."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing

from swapctl import protocol as p
from swapctl import render
from swapd.config import LoadedConfig, load_config
from swapd.control import ControlError, serve_control
from swapd.control.backend import DaemonBackend, DaemonParts
from swapd.control.reload import (
    ConfigReloader,
    Running,
    daemon_apply,
    held_ports,
    summarize,
    watch_config,
)
from swapd.events import EventBus
from swapd.http.logs_hub import LogHub
from swapd.process.pool import PoolUpdate, ProcessPool
from swapd.process.states import ProcessState
from swapd.process.supervisor import ProcessSnapshot
from swapd.router.build import router_from_config
from swapd.testing.ports import free_port_run
from tests.integration.control.stand_in import StandInRouter, specs
from tests.integration.control.wire import WireClient

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"


def free_ports(count: int) -> int:
    """A first port such that it and the next count-1 are free right now."""
    return free_port_run(count)


@pytest.fixture
def port() -> int:
    """The first ${PORT} of a test's configs (models a, b, c take three)."""
    return free_ports(3)


def config(port: int, b_extra: str = "", with_c: bool = False) -> str:
    text = f"""
startPort: {port}
models:
  a:
    cmd: {FAKE}
  b:
    cmd: {FAKE} {b_extra}
"""
    if with_c:
        text += f"""  c:
    cmd: {FAKE}
"""
    return text


@dataclass
class Recorder:
    """An `apply` that records what it got and answers like a pool update."""

    added: Sequence[str] = ()
    removed: Sequence[str] = ()
    replaced: Sequence[str] = ()
    applied: list[LoadedConfig] = field(default_factory=list)
    gate: trio.Event | None = None
    entered: trio.Event = field(default_factory=trio.Event)

    @property
    def changed(self) -> Sequence[str]:
        return self.replaced

    async def __call__(self, loaded: LoadedConfig) -> Recorder:
        self.applied.append(loaded)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return self


def write(path: Path, text: str) -> None:
    path.write_text(text)


@pytest.mark.trio
async def test_valid_reload_is_applied_and_announced(tmp_path: Path, port: int) -> None:
    path = tmp_path / "config.yaml"
    write(path, config(port, with_c=True))
    bus = EventBus()
    apply = Recorder(added=["c"], replaced=["b"])
    reloader = ConfigReloader(path, apply, bus)
    with bus.subscribe(topics=["config"]) as events:
        result = await reloader.reload()
        assert result == p.ReloadResult(
            path=str(path), added=["c"], removed=[], changed=["b"], unchanged=["a"]
        )
        assert [list(loaded.models) for loaded in apply.applied] == [["a", "b", "c"]]
        event = events.receive_nowait()
        assert isinstance(event, p.ConfigReloaded) and event.ok and event.changed == ["b"]
    assert reloader.reloads == 1


@pytest.mark.trio
async def test_invalid_reload_changes_nothing_and_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    write(path, "models:\n  a:\n    cmd: x\n    ttl: soon\n  b:\n    cmdd: y\n")
    bus = EventBus()
    apply = Recorder()
    reloader = ConfigReloader(path, apply, bus)
    with bus.subscribe(topics=["config"]) as events:
        with pytest.raises(ControlError) as info:
            await reloader.reload()
        error = info.value
        assert error.code == "config_invalid" and "the running config is unchanged" in error.message
        assert len(error.problems) >= 2
        ttl = next(x for x in error.problems if x.path == "models.a.ttl")
        assert (ttl.file, ttl.line, ttl.column) == (str(path), 4, 5)
        assert ttl.format().startswith(f"{path}:4:5: models.a.ttl: ")
        event = events.receive_nowait()
        assert isinstance(event, p.ConfigReloaded) and not event.ok
        assert event.problems == error.problems
    assert apply.applied == [] and reloader.reloads == 0
    await reloader.reload_logged()  # the SIGHUP path: logged, never raised


@pytest.mark.trio
async def test_missing_file_is_a_config_problem(tmp_path: Path) -> None:
    reloader = ConfigReloader(tmp_path / "gone.yaml", Recorder(), EventBus())
    with pytest.raises(ControlError) as info:
        await reloader.reload()
    assert info.value.code == "config_invalid" and "cannot read" in info.value.problems[0].message


@pytest.mark.trio
async def test_reloads_are_serialised(tmp_path: Path, port: int) -> None:
    path = tmp_path / "config.yaml"
    write(path, config(port))
    apply = Recorder(gate=trio.Event())
    reloader = ConfigReloader(path, apply, EventBus())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reloader.reload)
        nursery.start_soon(reloader.reload)
        with trio.fail_after(10):
            await apply.entered.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert len(apply.applied) == 1  # the second waits for the first
        apply.gate.set()
    assert len(apply.applied) == 2 and reloader.reloads == 2


MATRIX = """
startPort: {port}
models:
  b:
    cmd: {fake}
  c:
    cmd: {fake} {c_extra}
  lone:
    cmd: {fake}
matrix:
  sets:
    s: b & c
"""


@pytest.mark.trio
async def test_reload_keeps_ports_says_what_changed_and_reports_warnings(
    tmp_path: Path, port: int
) -> None:
    path = tmp_path / "config.yaml"
    write(path, MATRIX.format(port=port, fake=FAKE, c_extra=""))
    before = load_config(path)
    assert [before.models[m].port for m in ("b", "c", "lone")] == [port, port + 1, port + 2]
    # "a" sorts first: numbered afresh, it would shift every other model's port.
    text = MATRIX.format(port=port, fake=FAKE, c_extra="--echo").replace("b & c", "a & b & c")
    write(path, text.replace("models:\n", f"models:\n  a:\n    cmd: {FAKE}\n", 1))
    apply = Recorder(added=["a"], replaced=["c"])
    held = frozenset({port + 3})  # a draining process of some removed model
    reloader = ConfigReloader(path, apply, EventBus(), running=lambda: Running(before, held))
    result = await reloader.reload()
    after = apply.applied[0]
    assert [after.models[m].port for m in ("b", "c", "lone")] == [port, port + 1, port + 2]
    assert after.models["a"].port == port + 4
    assert after.models["b"] == before.models["b"]
    assert result.changed == ["c"] and result.changes == {"c": ["cmd"]}
    assert [(w.line, w.column, w.path) for w in result.warnings] == [(10, 3, "models.lone")]
    assert render.reload(result).splitlines() == [
        f"reloaded {path}",
        "  added: a",
        "  changed: c (cmd)",
        "  unchanged: b, lone",
        f"  warning: {path}:10:3: models.lone: in no matrix set: it runs alone, "
        "and loading it stops every running model",
    ]


def test_held_ports_are_those_of_live_processes() -> None:
    def snap(model: str, state: ProcessState, url: str) -> ProcessSnapshot:
        return ProcessSnapshot(model, state, None, url, 0, None, None, None, [])

    snapshots = [
        snap("a", ProcessState.READY, "http://127.0.0.1:9000"),
        snap("b", ProcessState.STARTING, "http://localhost:9001/v1"),
        snap("c", ProcessState.STOPPING, "http://[::1]:9002"),
        snap("d", ProcessState.STOPPED, "http://127.0.0.1:9003"),
        snap("e", ProcessState.SHUTDOWN, "http://127.0.0.1:9004"),
    ]
    assert held_ports(snapshots) == {9000, 9001, 9002}


def test_summarize_puts_each_model_in_one_list() -> None:
    applied = Recorder(added=["n"], removed=["gone"], replaced=["x"])
    result = summarize("c.yaml", ["a", "x", "n"], applied)
    assert (result.added, result.removed, result.changed, result.unchanged) == (
        ["n"],
        ["gone"],
        ["x"],
        ["a"],
    )


# --- the file watcher ---------------------------------------------------------------


@pytest.mark.trio
async def test_watcher_reports_an_edit_once_it_settles(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, port: int
) -> None:
    path = tmp_path / "config.yaml"
    write(path, config(port))
    changes = trio.Semaphore(0)
    calls: list[float] = []

    async def on_change() -> None:
        calls.append(trio.current_time())
        changes.release()

    async with trio.open_nursery() as nursery:
        await nursery.start(watch_config, path, on_change)
        write(path, config(port, "--echo"))
        with trio.fail_after(10):
            await changes.acquire()
        # Replacing the file (a new inode, as editors do) is a change too.
        replacement = tmp_path / "new.yaml"
        write(replacement, config(port, "--tokens 3"))
        os.replace(replacement, path)
        with trio.fail_after(10):
            await changes.acquire()
        nursery.cancel_scope.cancel()
    assert len(calls) == 2


@pytest.mark.trio
async def test_watcher_ignores_a_missing_file_and_an_unchanged_one(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, port: int
) -> None:
    path = tmp_path / "config.yaml"
    write(path, config(port))
    calls: list[int] = []

    async def on_change() -> None:
        calls.append(1)

    async with trio.open_nursery() as nursery:
        await nursery.start(watch_config, path, on_change)
        os.unlink(path)
        await trio.sleep(5)  # mock clock: five polls of a missing file
        nursery.cancel_scope.cancel()
    assert calls == []


# --- through the socket, over a real process pool --------------------------------------


@pytest.mark.trio
async def test_reload_over_the_socket_keeps_unchanged_models_running(
    tmp_path: Path, port: int
) -> None:
    path = tmp_path / "config.yaml"
    write(path, config(port))
    loaded = load_config(path)
    bus = EventBus()
    hub = LogHub(bus)
    async with ProcessPool(specs(loaded), bus, proxy_log=hub.proxy) as pool:
        parts = DaemonParts(loaded, StandInRouter(pool, bus), pool, bus, hub)

        async def apply(new: LoadedConfig) -> PoolUpdate:
            update = await pool.update(specs(new))
            parts.loaded = new
            return update

        reloader = ConfigReloader(path, apply, bus)
        backend = DaemonBackend(parts, reloader=reloader.reload)
        sock = tmp_path / "c.sock"
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_control, sock, backend)
            client = await WireClient.connect(sock)
            for i, model in enumerate(("a", "b")):
                assert isinstance(
                    await client.request(p.LoadRequest(id=i, model=model)), p.LoadReply
                )
            pid_a = pool["a"].pid

            write(path, "models: [oops\n")
            bad = await client.request(p.ReloadRequest(id=10))
            assert isinstance(bad, p.Error) and bad.code == "config_invalid" and bad.problems
            assert pool["a"].pid == pid_a and str(pool["b"].state) == "ready"

            write(path, config(port, "--echo", with_c=True))
            good = await client.request(p.ReloadRequest(id=11))
            assert isinstance(good, p.ReloadReply), good
            assert good.result.added == ["c"] and good.result.changed == ["b"]
            assert good.result.unchanged == ["a"]
            assert pool["a"].pid == pid_a and str(pool["a"].state) == "ready"
            assert str(pool["b"].state) == "stopped" and "c" in pool
            models = {m.id: m for m in (await client.request(p.ModelsRequest(id=12))).models}
            assert models["b"].argv[-1] == "--echo" and models["c"].state == "stopped"
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_reload_through_the_real_router(tmp_path: Path, port: int) -> None:
    path = tmp_path / "config.yaml"
    write(path, config(port))
    loaded = load_config(path)
    bus = EventBus()
    hub = LogHub(bus)
    async with ProcessPool(specs(loaded), bus, proxy_log=hub.proxy) as pool:
        router = router_from_config(loaded, pool, bus)
        async with trio.open_nursery() as nursery:
            await nursery.start(router.run)
            parts = DaemonParts(loaded, router, pool, bus, hub)
            seen: list[LoadedConfig] = []
            reloader = ConfigReloader(
                path, daemon_apply(parts, router, pool, specs, also=seen.append), bus
            )
            backend = DaemonBackend(parts, reloader=reloader.reload)
            sock = tmp_path / "c.sock"
            await nursery.start(serve_control, sock, backend)
            client = await WireClient.connect(sock)
            assert isinstance(await client.request(p.LoadRequest(id=1, model="a")), p.LoadReply)
            pid_a = pool["a"].pid

            write(path, config(port, "--echo", with_c=True))
            good = await client.request(p.ReloadRequest(id=2))
            assert isinstance(good, p.ReloadReply), good
            assert (good.result.added, good.result.changed, good.result.unchanged) == (
                ["c"],
                ["b"],
                ["a"],
            )
            assert pool["a"].pid == pid_a and seen and parts.loaded is seen[0]
            # The router knows the new model: it loads through the normal path.
            explained = await client.request(p.ExplainRequest(id=3, model="c"))
            assert isinstance(explained, p.ExplainReply), explained
            loaded_c = await client.request(p.LoadRequest(id=4, model="c"))
            assert isinstance(loaded_c, p.LoadReply) and loaded_c.result.state == "ready"

            write(path, config(port))  # c removed again: retired by the router once idle
            with bus.subscribe(topics=["decision"]) as decisions:
                again = await client.request(p.ReloadRequest(id=5))
                assert again.result.removed == ["c"]
                with trio.fail_after(10):
                    async for d in decisions:
                        if d.action == "retired" and d.model == "c":
                            break
            assert "c" not in pool
            gone = await client.request(p.LoadRequest(id=6, model="c"))
            assert isinstance(gone, p.Error) and gone.code == "not_found"
            await router.shutdown()
            nursery.cancel_scope.cancel()
