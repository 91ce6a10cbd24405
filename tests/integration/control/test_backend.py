"""DaemonBackend over a real config, process pool (fake upstreams), bus and log rings.

The router is `stand_in.StandInRouter`, which keeps the router's contract
with the simplest policy, so the adapter is tested on real processes and
real records.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from swapctl import protocol as p
from swapd.config import load_config_text
from swapd.control import ControlError, serve_control
from swapd.control.backend import DaemonBackend, DaemonParts
from swapd.events import EventBus
from swapd.http.logs_hub import LogHub
from swapd.process.pool import ProcessPool
from swapd.testing.ports import free_port_run
from tests.integration.control.stand_in import StandInRouter, specs
from tests.integration.control.wire import WireClient

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"

CONFIG = f"""
healthCheckTimeout: 15
models:
  a:
    cmd: {FAKE} --print-lines 2
    aliases: [alpha]
    ttl: 300
  b:
    cmd: {FAKE}
  broken:
    cmd: {FAKE} --exit-during-start 0.05 --exit-code 3 --load-delay 5
groups:
  pair:
    swap: false
    members: [a, b]
"""

MATRIX_CONFIG = f"""
models:
  a:
    cmd: {FAKE}
  b:
    cmd: {FAKE}
  c:
    cmd: {FAKE}
routing:
  router:
    use: matrix
    settings:
      matrix:
        evict_costs:
          a: 5
        sets:
          ab: "a & b"
          c_alone: "c"
          any_one: "a | b | c"
"""


@asynccontextmanager
async def backend_for(tmp_path: Path, text: str) -> AsyncIterator[tuple[DaemonBackend, Path]]:
    # Ports of our own: other test runs on this machine use the default 5800 and up.
    text = f"startPort: {free_port_run(8)}\n{text}"
    loaded = load_config_text(text, file=tmp_path / "config.yaml")
    bus = EventBus()
    hub = LogHub(bus)
    async with ProcessPool(specs(loaded), bus, proxy_log=hub.proxy) as pool:
        router = StandInRouter(pool, bus)
        parts = DaemonParts(loaded, router, pool, bus, hub, listen=["127.0.0.1:1"])
        backend = DaemonBackend(parts)
        sock = Path(tmp_path) / "c.sock"
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            await nursery.start(serve_control, sock, backend)
            yield backend, sock
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_models_status_and_load(tmp_path: Path) -> None:
    async with backend_for(tmp_path, CONFIG) as (backend, sock):
        client = await WireClient.connect(sock)
        welcome_info = backend.info()
        assert welcome_info.router == "group" and welcome_info.config_path.endswith("config.yaml")

        models = {m.id: m for m in (await client.request(p.ModelsRequest(id=1))).models}
        assert set(models) == {"a", "b", "broken"}
        assert models["a"].state == "stopped" and models["a"].aliases == ["alpha"]
        assert models["a"].ttl == 300 and models["a"].groups == ["pair"]
        assert models["b"].queued == 2  # from the router snapshot's queue

        loaded = await client.request(p.LoadRequest(id=2, model="alpha"))
        assert isinstance(loaded, p.LoadReply), loaded
        assert loaded.result.model == "a" and loaded.result.state == "ready"
        assert loaded.result.seconds is not None and loaded.result.seconds > 0
        again = await client.request(p.LoadRequest(id=3, model="a"))
        assert again.result.seconds is None

        status = (await client.request(p.StatusRequest(id=4))).status
        assert status.running == ["a"] and status.states == {"ready": 1, "stopped": 2}
        assert status.queued == 2
        assert [s.name for s in status.legend] == [
            "stopped",
            "starting",
            "ready",
            "asleep",
            "stopping",
            "failed",
            "shutdown",
        ]
        assert "starting" in status.legend[0].next

        a = next(m for m in (await client.request(p.ModelsRequest(id=5))).models if m.id == "a")
        assert a.pid is not None and a.last_load_seconds is not None and a.ttl_left is not None

        failed = await client.request(p.LoadRequest(id=6, model="broken"))
        assert isinstance(failed, p.Error) and failed.code == "load_failed"
        broken = next(
            m for m in (await client.request(p.ModelsRequest(id=60))).models if m.id == "broken"
        )
        assert broken.state == "failed" and (broken.starts, broken.failures) == (1, 1)
        assert broken.last_failure and "while starting" in broken.last_failure
        assert broken.last_failure_at is not None
        missing = await client.request(p.LoadRequest(id=7, model="zzz"))
        assert isinstance(missing, p.Error) and missing.code == "not_found"

        stopped = await client.request(p.UnloadRequest(id=8, all=True))
        assert stopped.models == ["a"]


@pytest.mark.trio
async def test_logs_and_log_subscription_history_then_live(tmp_path: Path) -> None:
    async with backend_for(tmp_path, CONFIG) as (backend, sock):
        client = await WireClient.connect(sock)
        await client.request(p.LoadRequest(id=1, model="a"))
        logs = (await client.request(p.LogsRequest(id=2, source="a"))).log
        assert logs.text.endswith("\n") and logs.text.count("\n") >= 1
        cut = (await client.request(p.LogsRequest(id=3, source="a", max_bytes=1))).log
        assert cut.text == "" and cut.truncated
        bad = await client.request(p.LogsRequest(id=4, source="nope"))
        assert isinstance(bad, p.Error) and bad.code == "not_found" and "proxy" in bad.message
        for source in ("proxy", "upstream", "all"):
            assert isinstance(await client.request(p.LogsRequest(id=5, source=source)), p.LogsReply)

        sub = await client.request(
            p.SubscribeRequest(id=6, topics=["log"], models=["alpha"], history=True)
        )
        assert sub.history >= 1
        history = [await client.receive() for _ in range(sub.history)]
        assert all(e.data.history and e.data.source == "a" for e in history)
        assert "".join(e.data.text for e in history) == backend.logs("a", 1 << 20).text
        backend.parts.pool["a"].logs.write("stdout", "live line")
        backend.parts.pool["b"].logs.write("stdout", "other model")
        live = await client.receive()
        assert live.data == p.LogLines(
            time=live.data.time, source="a", text="live line\n", stream="stdout"
        )


@pytest.mark.trio
async def test_state_and_decision_events(tmp_path: Path) -> None:
    async with backend_for(tmp_path, CONFIG) as (_backend, sock):
        client = await WireClient.connect(sock)
        await client.request(p.SubscribeRequest(id=1, topics=["state", "decision"], models=["b"]))
        await client.send(p.LoadRequest(id=2, model="b"))
        seen: list[p.EventData] = []
        replied = False
        while len(seen) < 3 or not replied:
            message = await client.receive()
            if isinstance(message, p.Event):
                seen.append(message.data)
            else:
                assert isinstance(message, p.LoadReply)
                replied = True
        assert isinstance(seen[0], p.DecisionMade) and seen[0].decision.model == "b"
        assert [(e.old, e.new) for e in seen[1:]] == [
            ("stopped", "starting"),
            ("starting", "ready"),
        ]
        decisions = (await client.request(p.DecisionsRequest(id=3))).decisions
        assert [(d.model, d.action, d.why) for d in decisions] == [
            ("b", "serve", "stand-in: start and serve")
        ]
        explained = (await client.request(p.ExplainRequest(id=4, model="b"))).explanation
        assert explained.action == "serve" and explained.running == ["b"]


@pytest.mark.trio
async def test_matrix_view(tmp_path: Path) -> None:
    async with backend_for(tmp_path, MATRIX_CONFIG) as (backend, sock):
        client = await WireClient.connect(sock)
        await client.request(p.LoadRequest(id=1, model="a"))
        view = (await client.request(p.MatrixRequest(id=2, model="c"))).matrix
        assert view.router == "matrix"
        assert [(s.name, s.dsl, s.combinations, s.truncated) for s in view.sets] == [
            ("ab", "a & b", [["a", "b"]], False),
            ("c_alone", "c", [["c"]], False),
            ("any_one", "a | b | c", [["a"], ["b"], ["c"]], False),
        ]
        short = (await client.request(p.MatrixRequest(id=3, limit=1))).matrix
        assert [(s.combinations, s.truncated) for s in short.sets] == [
            ([["a", "b"]], False),
            ([["c"]], False),
            ([["a"]], True),
        ]
        assert short.truncated
        assert view.running == ["a"] and view.running_set == "ab"
        assert view.evict_costs == {"a": 5, "b": 1, "c": 1}
        assert view.explain is not None and view.explain.model == "c"
        models = {m.id: m for m in backend.models()}
        assert models["a"].sets == ["ab", "any_one"] and models["c"].sets == ["c_alone", "any_one"]


@pytest.mark.trio
async def test_group_view_and_reload_without_a_reloader(tmp_path: Path) -> None:
    async with backend_for(tmp_path, CONFIG) as (backend, _sock):
        view = backend.matrix(None, 10)
        groups = {g.name: g for g in view.groups}
        assert groups["pair"].members == ["a", "b"] and groups["pair"].swap is False
        with pytest.raises(ControlError) as info:
            await backend.reload()
        assert info.value.code == "unavailable"
