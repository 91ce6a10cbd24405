"""The ASGI application: raw-ASGI relay routes in front of a quart-trio admin app.

`create_app(services)` returns the callable `swapd.http.server` serves. Model routes
and `/upstream/...` go to `ModelRoutes` (the hot path, no framework);
CORS pre-flights are answered here; everything else (listing, running,
unload, health, logs, events, metrics) is a Quart route.

Quart's RESPONSE_TIMEOUT is off: it would cut long event and log streams
(after 60 s by default). Every error is the OpenAI-shaped envelope, including 404
and 405 for unknown routes.
"""

from __future__ import annotations

import re
import time
from typing import Any, cast

import msgspec
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from swapd.http import activity_route, origin
from swapd.http.asgi import App, Receive, Scope, Send, header, send_error, send_response
from swapd.http.auth import check as check_auth
from swapd.http.errors import ApiError, render_error
from swapd.http.events_route import HEADERS as EVENT_HEADERS
from swapd.http.events_route import event_stream
from swapd.http.listing import list_models
from swapd.http.logs_routes import STREAM_HEADERS, history_text, log_stream, ring_for
from swapd.http.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from swapd.http.model_routes import GET_ROUTES, POST_ROUTES, ModelRoutes, is_model_route
from swapd.http.services import Services
from swapd.process.states import RUNNING_STATES

OPEN_PATHS = frozenset({"/health", "/wol-health"})

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
DEFAULT_ALLOW_HEADERS = "Content-Type, Authorization, Accept, X-Requested-With"
_GUARDED = frozenset({b"host", b"origin", b"content-type"})

_encoder = msgspec.json.Encoder()


def allow_headers(requested: str) -> str:
    """Access-Control-Allow-Headers for a pre-flight: valid token names only."""
    if not requested.strip():
        return DEFAULT_ALLOW_HEADERS
    names = (n.strip() for n in requested.split(","))
    return ", ".join(n for n in names if n and _TOKEN.match(n))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = _encoder.encode(data) + b"\n"
    return Response(body, status=status, content_type="application/json", headers=headers)


def build_admin(services: Services) -> QuartTrio:
    """The Quart app of the admin, listing, log, event and metrics routes."""
    app = QuartTrio(__name__)
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024

    @app.before_request
    async def authenticate() -> None:
        if request.path not in OPEN_PATHS:
            keys = services.settings.api_keys
            check_auth(keys, request.headers.get("authorization"), request.headers.get("x-api-key"))

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        ctype, body = render_error(
            exc.status, exc.message, request.headers.get("accept", ""), exc.reason
        )
        return Response(body, status=exc.status, content_type=ctype, headers=exc.headers)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = f"{status} {exc.name}: {request.method} {request.path}"
        ctype, body = render_error(status, message, request.headers.get("accept", ""))
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return Response(body, status=status, content_type=ctype, headers=headers)

    @app.get("/health")
    @app.get("/wol-health")
    async def health() -> Response:
        return Response("OK", content_type="text/plain")

    @app.get("/v1/models")
    @app.get("/models")
    async def models() -> Response:
        running = {m for m in services.settings.models if services.state_of(m) in RUNNING_STATES}
        body = list_models(services.settings, running, int(time.time()))
        origin = request.headers.get("origin")
        headers = {"access-control-allow-origin": origin} if origin else None
        return json_response(body, headers=headers)

    @app.get("/running")
    async def running() -> Response:
        """llama-swap's `running` list, each entry with swapd's request counts, and
        `pending`: per model, requests waiting for its load or queued (running or not)."""
        snapshot = services.router.snapshot()
        in_flight, waiting, queued = snapshot.in_flight, snapshot.waiting, snapshot.queued
        items = []
        for model_id in sorted(services.settings.models):
            state = services.state_of(model_id)
            if state in RUNNING_STATES:
                model = services.settings.models[model_id]
                items.append(
                    {
                        "model": model_id,
                        "state": state,
                        "cmd": model.cmd,
                        "proxy": model.proxy,
                        "ttl": model.ttl,
                        "name": model.name,
                        "description": model.description,
                        "inFlight": in_flight.get(model_id, 0),
                        "waiting": waiting.get(model_id, 0),
                        "queued": queued.get(model_id, 0),
                        **_meters(services, model_id),
                    }
                )
        pending = {
            m: {"waiting": waiting.get(m, 0), "queued": queued.get(m, 0)}
            for m in sorted({*waiting, *queued})
        }
        return json_response({"running": items, "pending": pending})

    @app.get("/unload")
    async def unload_all_get() -> Response:
        await services.router.unload(None)
        return Response("OK", content_type="text/plain; charset=utf-8")

    @app.post("/api/models/unload")
    async def unload_all() -> Response:
        await services.router.unload(None)
        return json_response({"msg": "ok"})

    @app.post("/api/models/unload/<path:name>")
    async def unload_one(name: str) -> Response:
        model_id = services.resolver.local_id(name.lstrip("/"))
        if model_id is None:
            raise ApiError(404, "model not found")
        await services.router.unload([model_id])
        return Response("OK", content_type="text/plain; charset=utf-8")

    @app.get("/logs")
    async def logs() -> Response:
        if "text/html" in request.headers.get("accept", ""):
            raise ApiError(406, "GET /logs serves text/plain; there is no HTML log viewer")
        return Response(history_text(services.logs.mux), content_type="text/plain; charset=utf-8")

    @app.get("/logs/stream")
    @app.get("/logs/stream/<path:name>")
    async def logs_stream(name: str = "") -> Response:
        ring = ring_for(services, name)
        history = "no-history" not in request.args
        return Response(log_stream(services, ring, history), headers=STREAM_HEADERS)

    @app.get("/api/events")
    async def events() -> Response:
        return Response(event_stream(services), headers=EVENT_HEADERS)

    @app.get("/api/activity")
    async def activity() -> Response:
        return json_response(await activity_route.activity(services, request.args))

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(services.metrics.render(), content_type=METRICS_CONTENT_TYPE)

    return app


class SwapdApp:
    """The ASGI entry point: relay routes raw, the rest through Quart."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.relay = ModelRoutes(services)
        # The server builds plain-dict ASGI messages; Quart types them as TypedDicts.
        self.admin = cast(App, build_admin(services))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method: str = scope["method"]
            path: str = scope["path"]
            refusal = self._refusal(scope, method, path)
            if refusal is not None:
                await send_error(send, refusal, header(scope, b"accept"))
                return
            if method == "OPTIONS":
                await self._preflight(scope, send)
                return
            if path.startswith("/upstream/"):
                await self.relay(scope, receive, send)
                return
            route = is_model_route(method, path)
            if route:
                await self.relay(scope, receive, send)
                return
            if route is False:
                allowed = ", ".join(
                    m for m, table in (("GET", GET_ROUTES), ("POST", POST_ROUTES)) if path in table
                )
                error = ApiError(405, f"{method} is not allowed on {path}; use {allowed}")
                error.headers["allow"] = allowed
                await send_error(send, error)
                return
        await self.admin(scope, receive, send)

    def _refusal(self, scope: Scope, method: str, path: str) -> ApiError | None:
        """Host, Origin and Content-Type checks on loopback without keys (`swapd.http.origin`)."""
        settings = self.services.settings
        if settings.api_keys:
            return None
        server = scope.get("server")
        found: dict[bytes, str] = {}
        for key, value in scope["headers"]:
            if key in _GUARDED and key not in found:
                found[key] = bytes(value).decode("latin-1")
        return origin.check(
            local_address=server[0] if server else None,
            api_keys=False,
            allowed=settings.allowed_hosts,
            method=method,
            path=path,
            model_route=path.startswith("/upstream/") or bool(is_model_route(method, path)),
            host=found.get(b"host"),
            origin=found.get(b"origin"),
            content_type=found.get(b"content-type"),
        )

    @staticmethod
    async def _preflight(scope: Scope, send: Send) -> None:
        requested = ""
        for key, value in scope["headers"]:
            if key == b"access-control-request-headers":
                requested = bytes(value).decode("latin-1")
        headers = {
            "access-control-allow-origin": "*",
            "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
            "access-control-max-age": "86400",
            "access-control-allow-headers": allow_headers(requested),
        }
        await send_response(send, 204, b"", headers=headers)


def create_app(services: Services) -> SwapdApp:
    """The ASGI app for `swapd.http.server.Server`."""
    services.metrics.source.queue_length = lambda: _queue_length(services)
    services.metrics.source.in_flight = lambda: _in_flight(services)
    services.metrics.source.states = lambda: {
        m: services.state_of(m) for m in services.settings.models
    }
    if services.meter is not None:
        meter = services.meter
        services.metrics.source.meters = lambda: {
            m: r for m in services.settings.models if (r := meter.reading(m)) is not None
        }
        services.metrics.source.host = meter.host
    return SwapdApp(services)


def _meters(services: Services, model_id: str) -> dict[str, float | int | None]:
    """A running entry's live meters: CPU %, resident bytes of its process tree, GPU
    bytes (null without NVML); nothing before the first sample."""
    meter = services.meter
    reading = meter.reading(model_id) if meter is not None else None
    if reading is None:
        return {}
    return {"cpuPercent": reading.cpu_percent, "ram": reading.ram, "vram": reading.vram}


def _queue_length(services: Services) -> int:
    return len(services.router.snapshot().queue)


def _in_flight(services: Services) -> dict[str, int]:
    return dict(services.router.snapshot().in_flight)
