"""Live config reload of a whole swapd (pool, router, HTTP, control socket) with fake upstreams.

Each case of the reload contract: an invalid file changes nothing and every
problem is reported with its position (reply, event, log); an unchanged model
keeps its process; a changed model finishes its stream on the old process
and serves the next request from a new one; a removed model finishes its
requests, stops, then answers 404; an added model is served.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import trio

from swapctl import protocol as p
from tests.integration.http.conftest import start_port
from tests.integration.reload.conftest import FAKE, Watch, pid_of, running, swapctl


def config(port: int, models: dict[str, str], *, aliases: dict[str, str] | None = None) -> str:
    """`models`: model ID -> extra fake-upstream options; all of them may run together."""
    text = f"startPort: {port}\nhealthCheckTimeout: 15\nmodels:\n"
    for model, options in models.items():
        text += f"  {model}:\n    cmd: {FAKE} {options}\n"
        if aliases and model in aliases:
            text += f"    aliases: [{aliases[model]}]\n"
    members = ", ".join(models)
    text += f"groups:\n  all:\n    swap: false\n    exclusive: false\n    members: [{members}]\n"
    return text


def chat(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def content(response: object) -> str:
    return response.json()["choices"][0]["message"]["content"]  # type: ignore[attr-defined]


@pytest.mark.trio
async def test_invalid_config_keeps_the_old_one_and_reports_every_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config(start_port(), {"a": "--tokens 3", "b": ""}))
    async with running(path) as (daemon, c, sock):
        assert content(await c.post("/v1/chat/completions", json=chat("a"))) == "tok0 tok1 tok2 "
        pid = pid_of(daemon, "a")
        path.write_text(
            f"models:\n  a:\n    cmd: {FAKE}\n    ttl: soon\n  b:\n    cmd: x\n    ttl: later\n"
        )
        with Watch(daemon.bus, "config") as events, caplog.at_level(logging.ERROR):
            code, out, err = await swapctl(sock, "reload")
            assert code == 1, (out, err)
            assert f"{path}:4:5: models.a.ttl" in err and f"{path}:7:5: models.b.ttl" in err
            event = await events.until(lambda e: isinstance(e, p.ConfigReloaded))
        assert not event.ok and len(event.problems) >= 2
        ttl = next(x for x in event.problems if x.path == "models.a.ttl")
        assert (ttl.file, ttl.line, ttl.column) == (str(path), 4, 5)
        logged = [r.getMessage() for r in caplog.records if r.name == "swapd.reload"]
        assert any(f"{path}:4:5: models.a.ttl" in line for line in logged), logged
        assert any(f"{path}:7:5: models.b.ttl" in line for line in logged), logged
        code, out, err = await swapctl(sock, "reload", "--json")
        assert code == 1 and json.loads(out or err)  # the JSON form carries it too
        # The old config keeps running, untouched.
        assert pid_of(daemon, "a") == pid and daemon.reloader is not None
        assert daemon.reloader.reloads == 0
        assert content(await c.post("/v1/chat/completions", json=chat("a"))) == "tok0 tok1 tok2 "
        assert (await c.post("/v1/chat/completions", json=chat("b"))).status_code == 200


@pytest.mark.trio
async def test_unchanged_model_keeps_its_process_and_an_added_one_is_served(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    port = start_port()
    path.write_text(config(port, {"a": "", "b": ""}))
    async with running(path) as (daemon, c, sock):
        assert (await c.post("/v1/chat/completions", json=chat("a"))).status_code == 200
        pid = pid_of(daemon, "a")
        assert (await c.post("/v1/chat/completions", json=chat("gpt-x"))).status_code == 404
        path.write_text(config(port, {"a": "", "b": "", "c": "--tokens 4"}, aliases={"c": "gpt-x"}))
        code, out, err = await swapctl(sock, "reload", "--json")
        assert code == 0, err
        result = json.loads(out)
        assert (result["added"], result["changed"], result["removed"]) == (["c"], [], [])
        assert result["unchanged"] == ["a", "b"]
        listed = [m["id"] for m in (await c.get("/v1/models")).json()["data"]]
        assert "c" in listed
        # The alias is part of the new HTTP settings, switched at once.
        r = await c.post("/v1/chat/completions", json=chat("gpt-x"))
        assert r.status_code == 200 and content(r) == "tok0 tok1 tok2 tok3 "
        assert pid_of(daemon, "a") == pid
        assert daemon.services is not None and daemon.services.state_of("a") == "ready"


@pytest.mark.trio
async def test_changed_model_finishes_its_stream_then_a_new_process_serves(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    port = start_port()
    path.write_text(config(port, {"a": "--tokens 3 --token-interval 0.05", "b": ""}))
    async with running(path) as (daemon, c, _sock):
        assert (await c.post("/v1/chat/completions", json=chat("b"))).status_code == 200
        pid_b = pid_of(daemon, "b")
        finished: list[str] = []
        tokens: list[str] = []
        streaming = trio.Event()

        async def stream() -> None:
            body = chat("a", stream=True, max_tokens=60)  # 3 s on the old process
            async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith("data: {"):
                        delta = json.loads(line[6:])["choices"][0]["delta"]
                        tokens.append(delta.get("content") or "")
                        streaming.set()
                    elif line == "data: [DONE]":
                        finished.append("stream")

        async def after_reload() -> None:
            r = await c.post("/v1/chat/completions", json=chat("a"))
            assert r.status_code == 200
            finished.append(content(r))

        with Watch(daemon.bus, "decision") as decisions:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream)
                await streaming.wait()
                old_pid = pid_of(daemon, "a")
                path.write_text(config(port, {"a": "--tokens 5", "b": ""}))
                assert daemon.reloader is not None
                result = await daemon.reloader.reload()
                assert (result.changed, result.unchanged) == (["a"], ["b"])
                assert pid_of(daemon, "a") == old_pid  # still serving the stream
                nursery.start_soon(after_reload)
                await decisions.decision("retire", "a")
                assert finished == ["stream"]  # retired only once the stream was over
        assert "".join(tokens) == "".join(f"tok{i} " for i in range(60))
        assert finished == ["stream", "tok0 tok1 tok2 tok3 tok4 "]
        assert pid_of(daemon, "a") not in (None, old_pid)
        assert pid_of(daemon, "b") == pid_b


@pytest.mark.trio
async def test_removed_model_finishes_in_flight_then_stops_then_404(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    port = start_port()
    path.write_text(config(port, {"a": "", "b": "--token-interval 0.05"}))
    async with running(path) as (daemon, c, _sock):
        assert (await c.post("/v1/chat/completions", json=chat("a"))).status_code == 200
        pid_a = pid_of(daemon, "a")
        done: list[str] = []
        streaming = trio.Event()

        async def stream() -> None:
            body = chat("b", stream=True, max_tokens=40)
            async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    streaming.set()
                    if line == "data: [DONE]":
                        done.append("stream")

        pool = daemon.services.pool if daemon.services is not None else None
        assert pool is not None
        with Watch(daemon.bus, "decision", "state") as events:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream)
                await streaming.wait()
                path.write_text(config(port, {"a": ""}))
                assert daemon.reloader is not None
                result = await daemon.reloader.reload()
                assert (result.removed, result.unchanged) == (["b"], ["a"])
                # New requests for it are refused at once; the stream goes on.
                r = await c.post("/v1/chat/completions", json=chat("b"))
                assert r.status_code == 404 and "b" in pool
                stopped = await events.until(
                    lambda e: (
                        getattr(e, "model", None) == "b" and str(getattr(e, "new", "")) == "stopped"
                    )
                )
                assert stopped is not None and done == ["stream"]
                await events.decision("retired", "b")
        assert "b" not in pool and pid_of(daemon, "a") == pid_a
        assert (await c.post("/v1/chat/completions", json=chat("b"))).status_code == 404


@pytest.mark.trio
async def test_adding_a_model_keeps_every_other_models_port_and_process(tmp_path: Path) -> None:
    """`broken` sorts first: numbering ports in model-ID order would move the others
    (and so change their commands and restart them); they keep theirs instead."""
    path = tmp_path / "config.yaml"
    port = start_port()
    models = {"chat": "", "code": "", "writer": "--tokens 2"}
    path.write_text(config(port, models))
    async with running(path) as (daemon, c, sock):
        for model in models:
            assert (await c.post("/v1/chat/completions", json=chat(model))).status_code == 200
        pids = {m: pid_of(daemon, m) for m in models}
        path.write_text(config(port, {"broken": "--tokens 1", **models}))
        code, out, err = await swapctl(sock, "reload", "--json")
        assert code == 0, err
        result = json.loads(out)
        assert (result["added"], result["changed"], result["removed"]) == (["broken"], [], [])
        assert result["unchanged"] == ["chat", "code", "writer"]
        assert {m: pid_of(daemon, m) for m in models} == pids
        assert daemon.services is not None
        pool = daemon.services.pool
        assert [pool[m].spec.proxy_url.rsplit(":", 1)[1] for m in ("chat", "code", "writer")] == [
            str(port),
            str(port + 1),
            str(port + 2),
        ]
        assert pool["broken"].spec.proxy_url.endswith(f":{port + 3}")
        r = await c.post("/v1/chat/completions", json=chat("broken"))
        assert r.status_code == 200 and content(r) == "tok0 "
        assert {m: pid_of(daemon, m) for m in models} == pids


@pytest.mark.trio
async def test_a_new_model_does_not_take_the_port_of_a_draining_one(tmp_path: Path) -> None:
    """`a` is removed while it streams and `fresh` added: `fresh` must not wait for `a`'s
    port, nor `b` move onto it; `fresh` is served while `a` still streams."""
    path = tmp_path / "config.yaml"
    port = start_port()
    path.write_text(config(port, {"a": "--token-interval 0.05", "b": ""}))
    async with running(path) as (daemon, c, _sock):
        assert (await c.post("/v1/chat/completions", json=chat("b"))).status_code == 200
        pid_b = pid_of(daemon, "b")
        order: list[str] = []
        streaming = trio.Event()

        async def stream() -> None:
            body = chat("a", stream=True, max_tokens=40)
            async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    streaming.set()
                    if line == "data: [DONE]":
                        order.append("a done")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream)
            await streaming.wait()
            path.write_text(config(port, {"b": "", "fresh": "--tokens 2"}))
            assert daemon.reloader is not None
            result = await daemon.reloader.reload()
            assert (result.added, result.removed, result.changed) == (["fresh"], ["a"], [])
            assert daemon.services is not None
            assert daemon.services.pool["fresh"].spec.proxy_url.endswith(f":{port + 2}")
            r = await c.post("/v1/chat/completions", json=chat("fresh"))
            assert r.status_code == 200 and content(r) == "tok0 tok1 "
            order.append("fresh served")
        assert order == ["fresh served", "a done"]
        assert pid_of(daemon, "b") == pid_b


@pytest.mark.trio
async def test_the_reply_names_what_changed_in_each_model(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    port = start_port()
    path.write_text(config(port, {"a": "", "b": "", "c": ""}))
    async with running(path) as (_daemon, _c, sock):
        text = config(port, {"a": "--tokens 4", "b": "", "c": ""})
        text = text.replace("  b:\n", "  b:\n    env: [X=1]\n    checkEndpoint: /v1/models\n")
        path.write_text(text)
        code, out, err = await swapctl(sock, "reload")
        assert code == 0, err
        assert out.splitlines() == [
            f"reloaded {path}",
            "  changed: a (cmd), b (checkEndpoint, env)",
            "  unchanged: c",
        ]


@pytest.mark.trio
async def test_a_setting_read_at_start_is_reported_as_waiting_for_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    port = start_port()
    path.write_text(config(port, {"a": ""}))
    async with running(path) as (_daemon, _c, sock):
        path.write_text(config(port, {"a": ""}) + "history:\n  enabled: false\nlogToStdout: none\n")
        code, out, err = await swapctl(sock, "reload", "--json")
        assert code == 0, err
        warnings = [w["message"] for w in json.loads(out)["warnings"]]
        assert warnings == [
            "logToStdout changed: it is read at start, so it applies once swapd restarts",
            "history.enabled changed: it is read at start, so it applies once swapd restarts",
        ]
        code, out, err = await swapctl(sock, "reload", "--json")  # nothing changed since
        assert code == 0 and json.loads(out)["warnings"] == [], err


def fixed(port: int, models: dict[str, str]) -> str:
    """Models on fixed ports (no ${PORT}): model ID -> fake-upstream options."""
    text = "healthCheckTimeout: 15\nmodels:\n"
    for model, options in models.items():
        cmd = FAKE.replace("${PORT}", str(port))
        text += f"  {model}:\n    cmd: {cmd} {options}\n    proxy: http://127.0.0.1:{port}\n"
    return text


@pytest.mark.trio
async def test_a_model_on_a_draining_models_fixed_port_waits_for_it(tmp_path: Path) -> None:
    """A new model written on the fixed port of a removed one that is still serving must
    not start before the old server is gone (docs/compat.md, Reload)."""
    path = tmp_path / "config.yaml"
    port = start_port()
    path.write_text(fixed(port, {"a": "--tokens 3 --token-interval 0.05"}))
    async with running(path) as (daemon, c, _sock):
        order: list[str] = []
        streaming = trio.Event()

        async def stream() -> None:
            body = chat("a", stream=True, max_tokens=40)
            async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    streaming.set()
                    if line == "data: [DONE]":
                        order.append("a done")

        async def ask_b() -> None:
            r = await c.post("/v1/chat/completions", json=chat("b"))
            assert r.status_code == 200
            order.append(content(r))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream)
            await streaming.wait()
            path.write_text(fixed(port, {"b": "--tokens 5"}))  # b on a's port
            assert daemon.reloader is not None
            result = await daemon.reloader.reload()
            assert (result.removed, result.added) == (["a"], ["b"])
            nursery.start_soon(ask_b)
        assert order == ["a done", "tok0 tok1 tok2 tok3 tok4 "]


@pytest.mark.trio
async def test_a_routing_only_change_is_reported_and_keeps_the_process(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    port = start_port()
    path.write_text(config(port, {"a": "", "b": ""}))
    async with running(path) as (daemon, c, _sock):
        assert (await c.post("/v1/chat/completions", json=chat("a"))).status_code == 200
        pid = pid_of(daemon, "a")
        path.write_text(path.read_text().replace("  b:\n", "    concurrencyLimit: 1\n  b:\n", 1))
        assert daemon.reloader is not None and daemon.router is not None
        result = await daemon.reloader.reload()
        assert (result.changed, result.unchanged) == (["a"], ["b"])
        assert daemon.router.settings.models["a"].limit == 1
        assert pid_of(daemon, "a") == pid
        assert (await c.post("/v1/chat/completions", json=chat("a"))).status_code == 200
