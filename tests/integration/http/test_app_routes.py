"""The app without local models: errors, auth, CORS, listing, peers, metrics, logs, events."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import trio

from swapd.http.settings import ApiSettings, Filters, ModelView, PeerView
from tests.integration.conftest import RunningFake, free_port
from tests.integration.http.conftest import app_only, client


def peer_settings(fake: RunningFake, **extra: Any) -> ApiSettings:
    peers = {
        "p1": PeerView(
            "p1",
            fake.url,
            ("remote", "shared"),
            api_key="peer-secret",
            filters=Filters(strip_params="temperature", set_params={"top_k": 5}),
        ),
        "p2": PeerView("p2", fake.url, ("shared", "other")),
    }
    return ApiSettings(peers=peers, **extra)


def envelope_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert list(body) == ["src", "error"]
    assert list(body["error"])[:4] == ["message", "type", "param", "code"]
    assert set(body["error"]) <= {"message", "type", "param", "code", "reason"}
    return body["error"]


@pytest.mark.trio
async def test_request_errors(start_fake: Callable[..., RunningFake]) -> None:
    fake = start_fake("--echo")
    settings = peer_settings(fake, max_request_body_size=1000)
    async with app_only(settings) as (base, _), client(base) as c:
        r = await c.post("/v1/chat/completions", json={"messages": []})
        assert r.status_code == 400 and envelope_of(r)["code"] == "bad_request"
        assert envelope_of(r)["reason"] == "missing_model"
        r = await c.post(
            "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and "malformed JSON" in envelope_of(r)["message"]
        r = await c.post("/v1/chat/completions", json={"model": "nobody"})
        assert r.status_code == 404
        assert "GET /v1/models" in envelope_of(r)["message"]
        r = await c.post("/v1/chat/completions", json={"model": "shared"})
        assert r.status_code == 404, "a bare name listed by two peers is ambiguous"
        r = await c.post("/v1/chat/completions", json={"model": "p1/remote", "x": "y" * 2000})
        assert r.status_code == 413 and envelope_of(r)["type"] == "invalid_request_error"
        r = await c.get("/v1/chat/completions")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        r = await c.get("/no/such/path")
        assert r.status_code == 404 and envelope_of(r)["code"] == "not_found"
        r = await c.post("/v1/models")
        assert r.status_code == 405
        r = await c.post(
            "/v1/chat/completions", json={"model": "nobody"}, headers={"accept": "text/plain"}
        )
        assert r.headers["content-type"] == "text/plain" and r.text.startswith("swapd: ")


@pytest.mark.trio
async def test_auth(start_fake: Callable[..., RunningFake]) -> None:
    fake = start_fake("--echo")
    async with app_only(peer_settings(fake, api_keys=("k1", "k2"))) as (base, _), client(base) as c:
        assert (await c.get("/health")).status_code == 200
        for path in ("/v1/models", "/running", "/metrics", "/logs", "/logs/stream"):
            r = await c.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Basic")
            assert envelope_of(r)["type"] == "authentication_error"
        r = await c.post("/v1/chat/completions", json={"model": "p2/other"})
        assert r.status_code == 401
        r = await c.get("/v1/models", headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert (
            await c.get("/v1/models", headers={"authorization": "Bearer k1"})
        ).status_code == 200
        assert (await c.get("/v1/models", headers={"x-api-key": "k2"})).status_code == 200
        basic = "Basic " + base64.b64encode(b"user:k2").decode()
        assert (await c.get("/v1/models", headers={"authorization": basic})).status_code == 200
        r = await c.post(
            "/v1/chat/completions",
            json={"model": "p2/other"},
            headers={"authorization": "Bearer k1"},
        )
        assert r.status_code == 200
        # p2 has no key of its own: the client's credentials go through
        # (docs/compat.md, Authentication)
        assert r.json()["echo"]["headers"]["authorization"] == "Bearer k1"


@pytest.mark.trio
async def test_cors_preflight_and_origin() -> None:
    async with app_only(ApiSettings(api_keys=("k",))) as (base, _), client(base) as c:
        r = await c.options(
            "/v1/chat/completions",
            headers={"access-control-request-headers": "X-Custom , Bad@Header,  Accept"},
        )
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.headers["access-control-allow-headers"] == "X-Custom, Accept"
        r = await c.get("/v1/models", headers={"origin": "http://ui", "x-api-key": "k"})
        assert r.headers["access-control-allow-origin"] == "http://ui"


@pytest.mark.trio
async def test_peer_routing_rewrites_and_key(start_fake: Callable[..., RunningFake]) -> None:
    fake = start_fake("--echo")
    async with app_only(peer_settings(fake)) as (base, _), client(base) as c:
        r = await c.post(
            "/v1/chat/completions",
            json={"model": "p1/remote", "temperature": 0.3, "messages": []},
            headers={"authorization": "Bearer client-key", "x-forwarded-for": "1.2.3.4"},
        )
        assert r.status_code == 200
        echo = r.json()["echo"]
        assert echo["body"] == {"model": "remote", "messages": [], "top_k": 5}
        assert echo["headers"]["authorization"] == "Bearer peer-secret"
        assert echo["headers"]["x-api-key"] == "peer-secret"
        assert "x-forwarded-for" not in echo["headers"]
        assert echo["headers"]["host"] == f"127.0.0.1:{fake.port}"
        r = await c.post("/v1/chat/completions", json={"model": "remote", "messages": []})
        assert r.json()["echo"]["body"]["model"] == "remote", "unique bare name"
        # streaming through a peer
        async with c.stream(
            "POST", "/v1/chat/completions", json={"model": "p2/other", "stream": True}
        ) as r:
            assert r.headers["x-accel-buffering"] == "no"
            assert r.headers.get_list("date") == [r.headers["date"]]  # one, the server's own
            text = "".join([chunk async for chunk in r.aiter_text()])
        assert text.endswith("data: [DONE]\n\n")
        events = [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: {")]
        assert events[0]["model"] == "other"


@pytest.mark.trio
async def test_peer_unreachable_is_502() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = ApiSettings(peers={"gone": PeerView("gone", dead, ("m",))})
    async with app_only(settings) as (base, services), client(base) as c:
        r = await c.post("/v1/chat/completions", json={"model": "gone/m"})
        assert r.status_code == 502
        assert envelope_of(r)["message"].startswith("peer proxy error")
        assert any("peer gone: proxy error" in line.text for line in services.logs.proxy.lines())


@pytest.mark.trio
async def test_listing_running_and_metrics(start_fake: Callable[..., RunningFake]) -> None:
    fake = start_fake()
    settings = peer_settings(
        fake,
        models={
            "m": ModelView("m", name="Model M", aliases=("mm",)),
            "h": ModelView("h", unlisted=True),
        },
        aliases={"mm": "m"},
        include_aliases_in_list=True,
    )
    async with app_only(settings) as (base, _), client(base) as c:
        r = await c.get("/v1/models")
        ids = [record["id"] for record in r.json()["data"]]
        assert ids == ["m", "mm", "p1/remote", "p1/shared", "p2/other", "p2/shared"]
        assert (await c.get("/models")).json()["data"][0]["name"] == "Model M"
        assert (await c.get("/running")).json() == {"running": [], "pending": {}}
        await c.post("/v1/chat/completions", json={"model": "p2/other", "max_tokens": 3})
        text = (await c.get("/metrics")).text
        assert (
            'swapd_requests_total{model="p2/other",path="/v1/chat/completions",status="200"} 1.0'
            in text
        )
        assert 'swapd_tokens_total{kind="output",model="p2/other"} 3.0' in text
        assert "swapd_queue_length 0.0" in text


@pytest.mark.trio
async def test_log_stream_and_events() -> None:
    async with (
        app_only(ApiSettings(models={"m": ModelView("m")})) as (base, services),
        client(base) as c,
    ):
        services.logs.info("first line")
        r = await c.get("/logs")
        assert r.text == "first line\n"
        r = await c.get("/logs/stream/nobody")
        assert r.status_code == 400
        received: list[str] = []
        async with c.stream("GET", "/logs/stream/proxy") as r:
            assert r.headers["x-accel-buffering"] == "no"
            lines = r.aiter_lines()
            received.append(await anext(lines))
            services.logs.info("second line")
            received.append(await anext(lines))
        assert received == ["first line", "second line"]
        async with c.stream("GET", "/logs/stream/proxy?no-history") as r:
            lines = r.aiter_lines()
            services.logs.info("third line")
            assert await anext(lines) == "third line"
        async with c.stream("GET", "/api/events") as r:
            assert r.headers["content-type"] == "text/event-stream"
            frames = r.aiter_text()
            seen: list[dict[str, Any]] = []
            buffer = ""
            with trio.fail_after(5):
                while len(seen) < 3:
                    buffer += await anext(frames)
                    while "\n\n" in buffer:
                        frame, buffer = buffer.split("\n\n", 1)
                        assert frame.startswith("event:message\ndata:")
                        seen.append(json.loads(frame.split("data:", 1)[1]))
        assert [f["type"] for f in seen] == ["logData", "logData", "modelStatus"]
        assert json.loads(seen[0]["data"])["source"] == "proxy"
        status = json.loads(seen[2]["data"])
        assert status[0]["id"] == "m" and status[0]["state"] == "stopped"


@pytest.mark.trio
async def test_streams_end_on_shutdown() -> None:
    async with app_only(ApiSettings()) as (base, services), client(base) as c:
        async with c.stream("GET", "/logs/stream/proxy?no-history") as r:
            services.close_streams()
            with trio.fail_after(5):
                rest = [chunk async for chunk in r.aiter_bytes()]
        assert rest == []


async def echo_server(nursery: trio.Nursery) -> str:
    """A tiny HTTP server answering every request with its body and headers as JSON."""

    async def handle(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(body) < int(headers.get("content-length", "0")):
            body += await stream.receive_some(65536)
        payload = json.dumps(
            {"request": lines[0], "headers": headers, "body": body.decode("latin-1")}
        ).encode()
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        await stream.aclose()

    listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


@pytest.mark.trio
async def test_multipart_peer_rewrite_keeps_the_form() -> None:
    async with trio.open_nursery() as nursery:
        url = await echo_server(nursery)
        settings = ApiSettings(peers={"p": PeerView("p", url, ("whisper",))})
        async with app_only(settings) as (base, _), client(base) as c:
            r = await c.post(
                "/v1/audio/transcriptions",
                data={"model": "p/whisper", "language": "en"},
                files={"file": ("a.wav", b"RIFF\x00\x01", "audio/wav")},
            )
            assert r.status_code == 200, r.text
            echoed = r.json()
            assert echoed["request"] == "POST /v1/audio/transcriptions HTTP/1.1"
            form = echoed["body"]
            assert 'name="model"\r\n\r\nwhisper\r\n' in form
            assert 'name="language"\r\n\r\nen\r\n' in form
            assert "Content-Type: audio/wav" in form and "RIFF\x00\x01" in form
            assert form.index('name="model"') < form.index('name="file"')
            r = await c.get("/props", params={"model": "p/whisper"})
            assert r.json()["request"] == "GET /props?model=whisper HTTP/1.1"
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_url_encoded_peer_rewrite_sets_the_peer_name_and_keeps_the_rest() -> None:
    async with trio.open_nursery() as nursery:
        url = await echo_server(nursery)
        settings = ApiSettings(peers={"p": PeerView("p", url, ("whisper",))})
        async with app_only(settings) as (base, _), client(base) as c:
            r = await c.post(
                "/v1/audio/transcriptions",
                content=b"language=en&model=p%2Fwhisper&prompt=a+b%26c",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["body"] == "language=en&model=whisper&prompt=a+b%26c"
        nursery.cancel_scope.cancel()
