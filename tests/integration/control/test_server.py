"""The control server over a real Unix socket, against the in-memory fake backend."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from swapctl import protocol as p
from swapd.control import ControlError, ControlLimits, ControlSocketError, serve_control
from swapd.control.server import ControlServer
from tests.integration.control.fake_backend import FakeBackend
from tests.integration.control.wire import WireClient


@asynccontextmanager
async def running(
    path: Path, backend: FakeBackend | None = None, limits: ControlLimits | None = None, **kw
) -> AsyncIterator[tuple[ControlServer, FakeBackend]]:
    backend = backend or FakeBackend()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_control, path, backend, kw.get("group"), limits)
        yield server, backend
        nursery.cancel_scope.cancel()


# --- handshake ----------------------------------------------------------------


@pytest.mark.trio
async def test_hello_gets_welcome_with_daemon_info(sock_path: Path) -> None:
    async with running(sock_path) as (_, backend):
        client = await WireClient.connect(sock_path, hello=False)
        welcome = await client.request(p.Hello(client="t", protocol=p.PROTOCOL_VERSION))
        assert welcome == p.Welcome(protocol=p.PROTOCOL_VERSION, daemon=backend.info())


@pytest.mark.trio
async def test_requests_before_hello_are_refused_and_the_connection_stays(sock_path: Path) -> None:
    async with running(sock_path):
        client = await WireClient.connect(sock_path, hello=False)
        error = await client.request(p.StatusRequest(id=5))
        assert isinstance(error, p.Error) and error.code == "hello_required" and error.id == 5
        assert isinstance(await client.request(p.Hello()), p.Welcome)
        assert isinstance(await client.request(p.StatusRequest(id=6)), p.StatusReply)


@pytest.mark.trio
async def test_a_silent_connection_is_closed_after_the_hello_timeout(
    sock_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(sock_path, limits=ControlLimits(hello_timeout=30)):
        silent = await WireClient.connect(sock_path, hello=False)
        greeted = await WireClient.connect(sock_path)
        start = trio.current_time()
        error = await silent.receive(wait=60)
        assert isinstance(error, p.Error) and error.code == "hello_required"
        assert "no hello within 30 s" in error.message
        assert trio.current_time() - start >= 29
        with pytest.raises(EOFError):
            await silent.receive()
        # A greeted connection has no such deadline.
        assert isinstance(await greeted.request(p.StatusRequest(id=1)), p.StatusReply)


@pytest.mark.trio
@pytest.mark.parametrize(
    ("version", "upgrade"), [(p.PROTOCOL_VERSION + 1, "daemon"), (0, "client")]
)
async def test_version_mismatch_is_a_clear_error_then_close(
    sock_path: Path, version: int, upgrade: str
) -> None:
    async with running(sock_path):
        client = await WireClient.connect(sock_path, hello=False)
        error = await client.request(p.Hello(protocol=version))
        assert isinstance(error, p.Error) and error.code == "version_mismatch"
        assert f"protocol {version}" in error.message and f"upgrade the {upgrade}" in error.message
        with pytest.raises(EOFError):
            await client.receive()


# --- queries ----------------------------------------------------------------------


@pytest.mark.trio
async def test_quick_queries(sock_path: Path) -> None:
    async with running(sock_path) as (_, backend):
        client = await WireClient.connect(sock_path)
        status = await client.request(p.StatusRequest(id="s"))
        assert isinstance(status, p.StatusReply) and status.id == "s"
        assert status.status.models == 3 and status.status.legend[0].name == "stopped"

        models = await client.request(p.ModelsRequest(id=2))
        assert [m.id for m in models.models] == ["alpha", "beta", "gamma"]

        backend.logs_["alpha"] = "0123456789"
        logs = await client.request(p.LogsRequest(id=3, source="alpha", max_bytes=4))
        assert logs.log == p.LogText(source="alpha", text="6789", truncated=True)
        missing = await client.request(p.LogsRequest(id=4, source="nope"))
        assert isinstance(missing, p.Error) and missing.code == "not_found" and missing.id == 4

        explain = await client.request(p.ExplainRequest(id=5, model="beta"))
        assert explain.explanation.action == "start"

        matrix = await client.request(p.MatrixRequest(id=6, model="alpha", limit=2))
        assert matrix.matrix.sets[0].combinations == [["alpha"], ["beta"]]
        assert matrix.matrix.sets[0].truncated and matrix.matrix.sets[0].more == 1
        assert matrix.matrix.explain is not None and matrix.matrix.explain.model == "alpha"

        decisions = await client.request(p.DecisionsRequest(id=7))
        assert decisions == p.DecisionsReply(id=7, decisions=[])


@pytest.mark.trio
@pytest.mark.parametrize(
    "request_",
    [
        p.DecisionsRequest(id=1, limit=-1),
        p.MatrixRequest(id=1, limit=-5),
        p.LogsRequest(id=1, max_bytes=-1),
        p.UnloadRequest(id=1),
        p.UnloadRequest(id=1, models=["alpha"], all=True),
        p.SubscribeRequest(id=1, topics=["state", "weather"]),
    ],
)
async def test_invalid_values_are_bad_requests(sock_path: Path, request_: p.Request) -> None:
    async with running(sock_path):
        client = await WireClient.connect(sock_path)
        error = await client.request(request_)
        assert isinstance(error, p.Error) and error.code == "bad_request" and error.id == 1
        assert isinstance(await client.request(p.StatusRequest(id=2)), p.StatusReply)


@pytest.mark.trio
async def test_limits_are_clamped(sock_path: Path) -> None:
    limits = ControlLimits(max_log_bytes=3, max_list=1)
    async with running(sock_path, limits=limits) as (_, backend):
        backend.logs_["proxy"] = "abcdef"
        client = await WireClient.connect(sock_path)
        logs = await client.request(p.LogsRequest(id=1, max_bytes=1000))
        assert logs.log.text == "def"
        matrix = await client.request(p.MatrixRequest(id=2, limit=1000))
        assert matrix.matrix.sets[0].combinations == [["alpha"]]


@pytest.mark.trio
async def test_a_backend_bug_is_an_internal_error_not_a_crash(sock_path: Path) -> None:
    backend = FakeBackend()

    def broken() -> list[p.ModelInfo]:
        raise RuntimeError("boom")

    backend.models = broken  # type: ignore[method-assign]
    async with running(sock_path, backend):
        client = await WireClient.connect(sock_path)
        error = await client.request(p.ModelsRequest(id=9))
        assert error == p.Error(id=9, code="internal", message="RuntimeError: boom")
        assert isinstance(await client.request(p.StatusRequest(id=10)), p.StatusReply)


@pytest.mark.trio
async def test_reply_over_the_line_bound_becomes_an_error(sock_path: Path) -> None:
    limits = ControlLimits(max_line=400)
    async with running(sock_path, limits=limits) as (_, backend):
        backend.logs_["proxy"] = "x" * 1000
        client = await WireClient.connect(sock_path)
        error = await client.request(p.LogsRequest(id=1, max_bytes=1000))
        assert isinstance(error, p.Error) and error.code == "reply_too_large" and error.id == 1


# --- slow requests ------------------------------------------------------------------


@pytest.mark.trio
async def test_load_unload_and_failures(sock_path: Path) -> None:
    async with running(sock_path) as (_, backend):
        backend.failing.add("gamma")
        client = await WireClient.connect(sock_path)
        loaded = await client.request(p.LoadRequest(id=1, model="alpha"))
        assert loaded == p.LoadReply(
            id=1, result=p.LoadResult(model="alpha", state="ready", seconds=0.25)
        )
        failed = await client.request(p.LoadRequest(id=2, model="gamma"))
        assert isinstance(failed, p.Error) and failed.code == "load_failed"
        assert failed.log_tail == "error: no such file\n"
        missing = await client.request(p.LoadRequest(id=3, model="zeta"))
        assert isinstance(missing, p.Error) and missing.code == "not_found"
        unloaded = await client.request(p.UnloadRequest(id=4, all=True))
        assert unloaded == p.UnloadReply(id=4, models=["alpha"])
        named = await client.request(p.UnloadRequest(id=5, models=["beta"]))
        assert named == p.UnloadReply(id=5, models=[])


@pytest.mark.trio
async def test_a_slow_load_does_not_hold_up_other_requests(sock_path: Path) -> None:
    async with running(sock_path) as (_, backend):
        backend.load_gate = trio.Event()
        client = await WireClient.connect(sock_path)
        await client.send(p.LoadRequest(id="load", model="alpha"))
        status = await client.request(p.StatusRequest(id="st"))
        assert isinstance(status, p.StatusReply) and status.id == "st"
        backend.load_gate.set()
        reply = await client.receive()
        assert isinstance(reply, p.LoadReply) and reply.id == "load"


@pytest.mark.trio
async def test_too_many_slow_requests_get_busy(sock_path: Path) -> None:
    limits = ControlLimits(max_slow_requests=2)
    async with running(sock_path, limits=limits) as (_, backend):
        backend.load_gate = trio.Event()
        client = await WireClient.connect(sock_path)
        for i, model in enumerate(["alpha", "beta", "gamma"]):
            await client.send(p.LoadRequest(id=i, model=model))
        busy = await client.receive()
        assert isinstance(busy, p.Error) and busy.code == "busy" and busy.id == 2
        backend.load_gate.set()
        ids = {(await client.receive()).id for _ in range(2)}
        assert ids == {0, 1}


@pytest.mark.trio
async def test_reload_reply_and_config_errors(sock_path: Path) -> None:
    async with running(sock_path) as (_, backend):
        client = await WireClient.connect(sock_path)
        ok = await client.request(p.ReloadRequest(id=1))
        assert isinstance(ok, p.ReloadReply) and ok.result.unchanged == ["alpha", "beta", "gamma"]
        problems = [
            p.Problem(message="expected int", file="c.yaml", line=3, column=7, path="models.a.ttl"),
            p.Problem(message="unknown key", file="c.yaml", line=9, column=3, path="models.b.cmdd"),
        ]
        backend.reload_outcome = ControlError("config_invalid", "2 problems", problems=problems)
        bad = await client.request(p.ReloadRequest(id=2))
        assert isinstance(bad, p.Error) and bad.code == "config_invalid"
        assert bad.problems == problems and bad.id == 2


@pytest.mark.trio
async def test_pending_replies_are_delivered_after_the_client_half_closes(sock_path: Path) -> None:
    async with running(sock_path) as (_, backend):
        backend.load_gate = trio.Event()
        client = await WireClient.connect(sock_path)
        await client.send(p.LoadRequest(id=1, model="alpha"))
        await client.stream.send_eof()
        with trio.fail_after(10):
            await backend.load_entered.wait()
        backend.load_gate.set()
        assert isinstance(await client.receive(), p.LoadReply)
        with pytest.raises(EOFError):
            await client.receive()


# --- bad input ----------------------------------------------------------------------


@pytest.mark.trio
async def test_bad_lines_get_errors_and_the_connection_stays_usable(sock_path: Path) -> None:
    async with running(sock_path):
        client = await WireClient.connect(sock_path)
        await client.send_raw(b'not json\n{"type":"warp","id":3}\n{"type":"load","id":4}\n')
        errors = [await client.receive() for _ in range(3)]
        assert [e.code for e in errors] == ["bad_frame"] * 3
        assert [e.id for e in errors] == [None, 3, 4]
        assert "unknown message type 'warp'" in errors[1].message
        assert "model" in errors[2].message
        assert isinstance(await client.request(p.StatusRequest(id=5)), p.StatusReply)


@pytest.mark.trio
async def test_oversized_line_gets_an_error_frame_then_close_and_others_carry_on(
    sock_path: Path,
) -> None:
    async with running(sock_path) as (server, _):
        bystander = await WireClient.connect(sock_path)
        client = await WireClient.connect(sock_path)

        async def flood() -> None:
            try:
                await client.send_raw(b"{" * (p.MAX_LINE_BYTES + 10))
            except trio.BrokenResourceError:
                pass  # the daemon hung up mid-line, as it should

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            error = await client.receive()
            assert isinstance(error, p.Error) and error.code == "frame_too_large"
            with pytest.raises(EOFError):
                await client.receive()
        assert isinstance(await bystander.request(p.StatusRequest(id=1)), p.StatusReply)
        with trio.fail_after(10):
            await server.counters.wait_for(connections=1)


@pytest.mark.trio
async def test_abrupt_disconnects_leave_no_trace(sock_path: Path) -> None:
    async with running(sock_path) as (server, backend):
        backend.load_gate = trio.Event()
        for _ in range(5):
            client = await WireClient.connect(sock_path)
            await client.send(p.SubscribeRequest(id=1))
            assert isinstance(await client.receive(), p.Subscribed)
            await client.send(p.LoadRequest(id=2, model="alpha"))
            await client.aclose()
        backend.load_gate.set()
        with trio.fail_after(10):
            await server.counters.wait_for(connections=0, subscribers=0)
        assert backend.bus.subscriber_count == 0


# --- subscriptions ------------------------------------------------------------------


@pytest.mark.trio
async def test_subscribe_events_filter_and_unsubscribe(sock_path: Path) -> None:
    async with running(sock_path) as (_, backend):
        client = await WireClient.connect(sock_path)
        sub = await client.request(p.SubscribeRequest(id=1, topics=["state"], models=["beta"]))
        assert sub == p.Subscribed(id=1, subscription=1, topics=["state"])
        status = await client.request(p.StatusRequest(id=2))
        assert status.status.subscribers == 1
        await backend.load("alpha")
        await backend.load("beta")
        events = [await client.receive() for _ in range(2)]
        assert all(isinstance(e, p.Event) and e.subscription == 1 for e in events)
        assert [(e.data.model, e.data.new) for e in events] == [
            ("beta", "starting"),
            ("beta", "ready"),
        ]
        assert await client.request(p.UnsubscribeRequest(id=3, subscription=1)) == p.Unsubscribed(
            id=3, subscription=1
        )
        await backend.unload(None)
        again = await client.request(p.UnsubscribeRequest(id=4, subscription=1))
        assert isinstance(again, p.Error) and again.code == "not_found"
        assert backend.bus.subscriber_count == 0


@pytest.mark.trio
async def test_subscribed_precedes_history_events(sock_path: Path) -> None:
    async with running(sock_path) as (_, backend):
        await backend.load("alpha")
        client = await WireClient.connect(sock_path)
        await client.send(p.SubscribeRequest(id=1, topics=["state"], history=True))
        first = await client.receive()
        assert isinstance(first, p.Subscribed)
        history = [await client.receive() for _ in range(2)]
        assert [e.data.new for e in history] == ["starting", "ready"]


@pytest.mark.trio
async def test_all_topics_when_none_named_and_subscription_cap(sock_path: Path) -> None:
    async with running(sock_path, limits=ControlLimits(max_subscriptions=2)):
        client = await WireClient.connect(sock_path)
        first = await client.request(p.SubscribeRequest(id=1))
        assert first.topics == list(p.TOPICS)
        await client.request(p.SubscribeRequest(id=2, topics=["log"]))
        busy = await client.request(p.SubscribeRequest(id=3, topics=["log"]))
        assert isinstance(busy, p.Error) and busy.code == "busy"


async def _publish_logs(backend: FakeBackend, count: int, size: int) -> None:
    for i in range(count):
        backend.bus.publish(p.LogLines(time=float(i), source="alpha", text=f"{i:08d}" + "x" * size))
        if i % 16 == 0:
            await trio.lowlevel.checkpoint()


@pytest.mark.trio
async def test_a_stalled_subscriber_lags_without_slowing_the_others(sock_path: Path) -> None:
    count, size = 3000, 2000
    limits = ControlLimits(outbox=8)
    async with running(sock_path, limits=limits) as (_, backend):
        # The two readers can buffer everything; the stalled one only 32 events.
        backend.maxlens = [count + 1, count + 1, 32]
        readers = [await WireClient.connect(sock_path) for _ in range(2)]
        stalled = await WireClient.connect(sock_path)
        for client in (*readers, stalled):
            reply = await client.request(p.SubscribeRequest(id=1, topics=["log"]))
            assert isinstance(reply, p.Subscribed)

        got: dict[int, list[int]] = {0: [], 1: []}

        async def read(index: int) -> None:
            while len(got[index]) < count:
                message = await readers[index].receive()
                assert isinstance(message, p.Event), message  # never `lagged`
                got[index].append(int(message.data.text[:8]))

        async with trio.open_nursery() as nursery:
            for index in range(2):
                nursery.start_soon(read, index)
            await _publish_logs(backend, count, size)
        assert got[0] == got[1] == list(range(count))

        # Now drain the stalled one: every event is either delivered or counted as missed.
        delivered, missed = [], 0
        while len(delivered) + missed < count:
            message = await stalled.receive()
            if isinstance(message, p.Lagged):
                assert message.subscription == 1
                missed += message.missed
            else:
                delivered.append(int(message.data.text[:8]))
        assert missed > 0 and len(delivered) + missed == count
        assert delivered == sorted(delivered) and delivered[-1] == count - 1


@pytest.mark.trio
async def test_oversized_event_is_skipped_and_reported_as_lagged(sock_path: Path) -> None:
    async with running(sock_path, limits=ControlLimits(max_line=300)) as (_, backend):
        client = await WireClient.connect(sock_path)
        await client.request(p.SubscribeRequest(id=1, topics=["log"]))
        backend.bus.publish(p.LogLines(time=0.0, source="alpha", text="y" * 500))
        backend.bus.publish(p.LogLines(time=1.0, source="alpha", text="small"))
        assert await client.receive() == p.Lagged(subscription=1, missed=1)
        event = await client.receive()
        assert event.data.text == "small"


# --- the socket file ------------------------------------------------------------------


async def refused(path: Path, group: str | None = None) -> ControlSocketError:
    async with trio.open_nursery() as nursery:
        with pytest.raises(ControlSocketError) as info:
            await nursery.start(serve_control, path, FakeBackend(), group)
    return info.value


@pytest.mark.trio
async def test_socket_mode_and_removal_on_exit(sock_path: Path) -> None:
    async with running(sock_path):
        info = os.stat(sock_path)
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    with pytest.raises(FileNotFoundError):
        os.stat(sock_path)


@pytest.mark.trio
async def test_group_socket_is_0660_and_owned_by_the_group(sock_path: Path) -> None:
    gid = os.getgid() if os.getuid() else 12345
    async with running(sock_path, group=gid):
        info = os.stat(sock_path)
        assert stat.S_IMODE(info.st_mode) == 0o660 and info.st_gid == gid


@pytest.mark.trio
async def test_unknown_group_name_is_a_clear_error(sock_path: Path) -> None:
    error = await refused(sock_path, group="no-such-group-swapd")
    assert "no such group" in str(error)


@pytest.mark.trio
async def test_stale_socket_is_replaced(sock_path: Path) -> None:
    sock_path.parent.mkdir(exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # bound, never listening, owner gone: a killed daemon's leftover
    async with running(sock_path):
        client = await WireClient.connect(sock_path)
        assert isinstance(await client.request(p.StatusRequest(id=1)), p.StatusReply)


@pytest.mark.trio
async def test_live_socket_is_refused(sock_path: Path) -> None:
    async with running(sock_path):
        assert "already listening" in str(await refused(sock_path))
        client = await WireClient.connect(sock_path)  # the first daemon is unharmed
        assert isinstance(await client.request(p.StatusRequest(id=1)), p.StatusReply)


@pytest.mark.trio
async def test_regular_file_is_never_replaced(sock_path: Path) -> None:
    with open(sock_path, "w") as f:  # noqa: ASYNC230
        f.write("precious")
    assert "not a socket" in str(await refused(sock_path))
    with open(sock_path) as f:  # noqa: ASYNC230
        assert f.read() == "precious"


@pytest.mark.trio
async def test_missing_parent_directory_is_created_private(sock_path: Path) -> None:
    nested = sock_path.parent / "run" / "swapd" / "control.sock"
    async with running(nested):
        assert stat.S_IMODE(os.stat(nested.parent).st_mode) == 0o700


@pytest.mark.trio
async def test_a_directory_owned_by_someone_else_is_refused(sock_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to hand a directory to another uid")
    foreign = sock_path.parent / "foreign"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    error = await refused(foreign / "control.sock")
    assert "belongs to uid 65534" in str(error)
