"""The blocking and the asyncio clients against a running server (fake backend)."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from swapctl import codec
from swapctl import protocol as p
from swapctl.aio_client import AsyncClient, ssh_command
from swapctl.client import Client, ConnectionFailed, DaemonError, connect
from swapd.control import ControlError
from tests.integration.control.fake_backend import FakeBackend
from tests.integration.control.server_thread import ServerThread


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread() as thread:
        yield thread


def publish(server: ServerThread, *events: p.EventData) -> None:
    def go() -> None:
        for event in events:
            server.backend.bus.publish(event)

    server.run_sync(go)


# --- blocking client ------------------------------------------------------------------


def test_sync_client_every_request(server: ServerThread) -> None:
    with connect(server.path, name="script") as c:
        assert c.welcome is not None and c.welcome.daemon.version == "0.1.0-test"
        assert c.status().models == 3
        assert [m.id for m in c.models()] == ["alpha", "beta", "gamma"]
        assert c.load("alpha") == p.LoadResult(model="alpha", state="ready", seconds=0.25)
        assert c.explain("alpha").action == "serve"
        assert c.matrix("beta", limit=1).sets[0].more == 2
        assert [d.model for d in c.decisions()] == ["alpha"]
        assert c.logs().text == "proxy started\n"
        assert c.unload(["alpha"]) == ["alpha"]
        assert c.unload() == []
        assert c.reload().path == "/etc/swapd/config.yaml"


def test_sync_client_daemon_errors(server: ServerThread) -> None:
    server.backend.failing.add("beta")
    with connect(server.path) as c:
        with pytest.raises(DaemonError) as info:
            c.load("beta")
        assert info.value.code == "load_failed" and info.value.log_tail
        with pytest.raises(DaemonError) as info:
            c.explain("nope")
        assert info.value.code == "not_found"
        assert c.status().models == 3  # still usable


def test_sync_client_events_keep_order_across_replies(server: ServerThread) -> None:
    with connect(server.path) as c:
        sub = c.subscribe(["state"])
        c.load("gamma")  # its two state events arrive around the reply
        got = []
        for item in c.events(timeout=5):
            got.append(item)
            if len(got) == 2:
                break
        assert [(e.subscription, e.data.new) for e in got] == [(sub, "starting"), (sub, "ready")]
        c.unsubscribe(sub)


def test_sync_client_buffer_overflow_is_reported_as_lagged() -> None:
    daemon_end, client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with daemon_end, Client.from_socket(client_end, max_pending_events=3) as c:
        # Ten events arrive while the client waits for the reply to its request 1.
        lines = [
            codec.encode(
                p.Event(
                    subscription=4, topic="log", data=p.LogLines(time=i, source="x", text=str(i))
                )
            )
            for i in range(10)
        ]
        daemon_end.sendall(b"".join(lines))
        daemon_end.sendall(codec.encode(p.StatusReply(id=1, status=FakeBackend().status())))
        assert c.status().models == 3
        daemon_end.shutdown(socket.SHUT_WR)
        items = list(c.events())
        assert items[0] == p.Lagged(subscription=0, missed=7)
        assert [e.data.text for e in items[1:]] == ["7", "8", "9"]


def test_sync_client_connection_errors(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFailed, match="no such socket"):
        connect(tmp_path / "missing.sock")


def test_sync_client_version_refusal() -> None:
    daemon_end, client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with daemon_end, Client.from_socket(client_end) as c:
        refusal = p.Error(code="version_mismatch", message="upgrade the daemon")
        daemon_end.sendall(codec.encode(refusal))
        with pytest.raises(DaemonError) as info:
            c.handshake()
        assert info.value.code == "version_mismatch"
        hello = codec.client_decoder()
        hello.feed(daemon_end.recv(65536))
        assert hello.next() == p.Hello(client="swapctl", protocol=p.PROTOCOL_VERSION)


# --- asyncio client ---------------------------------------------------------------


def test_async_client_requests_and_events(server: ServerThread) -> None:
    async def scenario() -> None:
        async with await AsyncClient.connect_unix(server.path, name="tui") as c:
            assert c.welcome is not None
            sub = await c.subscribe(["state"], ["alpha"])
            status, models, loaded = await asyncio.gather(c.status(), c.models(), c.load("alpha"))
            assert status.models == 3 and len(models) == 3 and loaded.state == "ready"
            events = c.events()
            first = await anext(events)
            second = await anext(events)
            assert [first.data.new, second.data.new] == ["starting", "ready"]
            assert first.subscription == sub
            with pytest.raises(DaemonError) as info:
                await c.load("nope")
            assert info.value.code == "not_found"
            await c.unsubscribe(sub)

    asyncio.run(scenario())


def test_async_client_sees_the_daemon_go_away(server: ServerThread) -> None:
    async def scenario() -> None:
        c = await AsyncClient.connect_unix(server.path)
        server.stop()
        await asyncio.wait_for(c.closed.wait(), 10)
        assert "closed" in c.close_reason
        with pytest.raises(ConnectionFailed):
            await c.status()
        assert [item async for item in c.events()] == []
        await c.aclose()

    asyncio.run(scenario())


def test_async_client_over_a_bridge_process(server: ServerThread) -> None:
    """The same path `ssh HOST swapctl bridge` takes, minus ssh."""
    bridge = [sys.executable, "-m", "swapctl.cli", "--socket", str(server.path), "bridge"]

    async def scenario() -> None:
        async with await AsyncClient.connect_command(bridge) as c:
            assert (await c.status()).models == 3
            await c.subscribe(["log"])
            publish(server, p.LogLines(time=1.0, source="proxy", text="over the bridge\n"))
            event = await asyncio.wait_for(anext(c.events()), 10)
            assert event.data.text == "over the bridge\n"

    asyncio.run(scenario())


def test_async_client_reports_why_the_command_failed(tmp_path: Path) -> None:
    bridge = [sys.executable, "-m", "swapctl.cli", "--socket", str(tmp_path / "no.sock"), "bridge"]

    async def scenario() -> None:
        with pytest.raises(ConnectionFailed, match="no such socket"):
            await AsyncClient.connect_command(bridge)

    asyncio.run(scenario())


def test_a_child_dead_before_the_hello_is_reported_in_its_own_words() -> None:
    """ssh failing at once (unreachable host) must not read as a bare "connection lost"."""
    dead = ["sh", "-c", "exec 0<&-; echo 'ssh: connect to host gpu-box: No route' >&2; exit 255"]
    loop_errors: list[dict[str, object]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        with pytest.raises(ConnectionFailed, match="ssh: connect to host gpu-box: No route"):
            await AsyncClient.connect_command(dead)

    asyncio.run(scenario())
    assert loop_errors == []  # no unretrieved hello failure, no transport left to the collector


def test_ssh_command_shape() -> None:
    assert ssh_command("gpu") == ["ssh", "-o", "BatchMode=yes", "-T", "gpu", "swapctl", "bridge"]
    assert ssh_command("gpu", "/run/swapd/control.sock")[-3:] == [
        "--socket",
        "/run/swapd/control.sock",
        "bridge",
    ]


def test_reload_problems_reach_the_async_client(server: ServerThread) -> None:
    problem = p.Problem(message="bad", file="c.yaml", line=1, column=2, path="models")
    server.backend.reload_outcome = ControlError("config_invalid", "1 problem", problems=[problem])

    async def scenario() -> None:
        async with await AsyncClient.connect_unix(server.path) as c:
            with pytest.raises(DaemonError) as info:
                await c.reload()
            assert info.value.problems == [problem]

    asyncio.run(scenario())
