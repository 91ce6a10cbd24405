"""The relay routes: OpenAI/Anthropic/llama-server model routes and `/upstream/<model>/...`.

These are plain ASGI (no framework) because they are the hot path: a
request is authenticated, its body read (bounded), its model found and
resolved, filters applied, the router asked for a lease, and the response
relayed as it streams. Everything else is served by the Quart app.

A client that disconnects cancels its handler (`disconnect`): a request
waiting for admission or a load leaves the router's queue (the lease
context exits), one mid-stream closes its upstream connection.

Nothing a client sends escapes as an exception: every failure is answered
with the error envelope (or ends the stream, when the response head is
already out).
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

import msgspec
import trio

from swapd.http import filters, multipart
from swapd.http.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    client_ip,
    header,
    read_body,
    send_error,
    send_response,
)
from swapd.http.auth import check as check_auth
from swapd.http.budget import BodyHold
from swapd.http.errors import ApiError, envelope, too_many_requests, unknown_model
from swapd.http.loading_state import LoadingWriter
from swapd.http.names import Target
from swapd.http.relay import relay_response, request_headers
from swapd.http.request_context import CutShort, RequestContext, capture_draft
from swapd.http.request_model import (
    MISSING_MODEL,
    FormLimits,
    ModelRequest,
    extract_off_loop,
    with_form_model,
)
from swapd.http.services import Services
from swapd.http.timeline import Timeline
from swapd.http.upstream import UpstreamError, UpstreamResponse
from swapd.router.errors import LoadFailed, RequestAborted, RouterError, TooManyRequests
from swapd.router.events import Progress

POST_ROUTES = frozenset(
    {
        "/v1/chat/completions", "/v1/responses", "/v1/completions", "/v1/messages",
        "/v1/messages/count_tokens", "/v1/embeddings", "/reranking", "/rerank", "/v1/rerank",
        "/v1/reranking", "/infill", "/completion", "/v1/audio/speech", "/v1/audio/voices",
        "/v1/images/generations", "/sdapi/v1/txt2img", "/sdapi/v1/img2img",
        "/audioapi/v1/tasks/run", "/v/chat/completions", "/v/responses", "/v/completions",
        "/v/messages", "/v/messages/count_tokens", "/v/embeddings", "/v/rerank",
        "/v/reranking", "/v1/audio/transcriptions", "/v1/images/edits",
    }
)  # fmt: skip
GET_ROUTES = frozenset({"/v1/audio/voices", "/sdapi/v1/loras", "/props"})
LOADING_PATH = "/v1/chat/completions"
PEER_HEAD_TIMEOUT = 60.0
LOG_TAIL_LINES = 20
PROGRESS_BUFFER = 64
BODY_TIMEOUT = 60.0

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def is_model_route(method: str, path: str) -> bool | None:
    """True for a model route, False for a known path with the wrong method, else None."""
    if path in POST_ROUTES or path in GET_ROUTES:
        return (method == "POST" and path in POST_ROUTES) or (
            method in ("GET", "HEAD") and path in GET_ROUTES
        )
    return None


def forward_path(path: str) -> str:
    """`/v/<rest>` and `/audioapi/<rest>` go upstream as `/<rest>` (docs/compat.md, HTTP routes)."""
    if path.startswith("/v/"):
        return path[2:]
    if path.startswith("/audioapi/"):
        return path[len("/audioapi") :]
    return path


def metric_route(path: str) -> str:
    """The route a request is counted under: a fixed set, so metrics stay bounded.

    `/upstream/<model>/<anything>` paths are chosen by the client and would
    otherwise create a new time series each.
    """
    if path in POST_ROUTES or path in GET_ROUTES:
        return forward_path(path)
    return "/upstream" if path.startswith("/upstream/") else "other"


def join_url(base: str, path: str, query: bytes) -> str:
    url = base.rstrip("/") + path
    return f"{url}?{query.decode('latin-1')}" if query else url


def with_query_model(query: dict[str, list[str]], model: str) -> bytes:
    """The query string with its `model` parameter(s) set to `model` (peer FQN -> bare name)."""
    pairs = [(k, model if k == "model" else v) for k, values in query.items() for v in values]
    return urlencode(pairs).encode("latin-1")


def router_error(exc: RouterError) -> ApiError:
    """The HTTP answer for a lease failure."""
    if isinstance(exc, TooManyRequests):
        return too_many_requests(exc.retry_after)
    if isinstance(exc, LoadFailed):
        message = exc.message
        if exc.reason and exc.reason not in message:
            message = f"{message}: {exc.reason}"
        if exc.log_tail:
            tail = "\n".join(exc.log_tail.splitlines()[-LOG_TAIL_LINES:])
            message = f"{message}\nlast log lines of {exc.model or 'the model'}:\n{tail}"
        return ApiError(500, message, exc.code)
    return ApiError(exc.status, exc.message, exc.code)


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


class _Response:
    """Wraps ASGI send to know whether the response head went out, and as what."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.finished = False
        self.event_stream = False

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.event_stream = any(
                n.lower() == b"content-type" and v.lower().startswith(b"text/event-stream")
                for n, v in message.get("headers", ())
            )
        elif not message.get("more_body", False):
            self.finished = True
        await self._send(message)


@dataclass(slots=True)
class _LoadingState:
    """A sendLoadingState request: whether the router granted it, and the loading
    stream once one started (only when the router said the request waits)."""

    granted: bool = False
    writer: LoadingWriter | None = None


class ModelRoutes:
    """The ASGI handler of the relay routes."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _Response(send)
        services = self.services
        recorder = services.records
        ctx = RequestContext(recorder.next_id(), scope["path"], client_ip(scope) or None)
        error: ApiError | None = None
        body: bytes | None = None
        hold = services.body_budget.hold(services.settings.request_body_budget)
        try:
            async with trio.open_nursery() as nursery:
                # The body must arrive in time (no slow-loris). The nursery's
                # scope keeps that time: a cancel scope of its own was a
                # measurable part of a small request's CPU.
                nursery.cancel_scope.deadline = trio.current_time() + BODY_TIMEOUT
                body = await self._read(scope, receive, hold)
                nursery.cancel_scope.deadline = math.inf
                if recorder.captures.enabled:
                    ctx.draft = capture_draft(
                        scope["path"], scope["headers"], body, recorder.captures.max_body
                    )
                # A client leaving cancels the nursery: the request and the watch.
                watch = services.watches.watch(receive, nursery, response)
                ctx.cut = CutShort(nursery.cancel_scope)
                try:
                    await self._dispatch(scope, body, response, ctx)
                finally:
                    watch.stop()
            if body is None:
                raise ApiError(408, f"the request body did not arrive within {BODY_TIMEOUT:g}s")
            if ctx.cut is not None and ctx.cut.reason is not None:
                ctx.aborted = True
                raise ApiError(503, ctx.cut.reason, "request_aborted")
        except Exception as exc:
            error = self._classify(exc, ctx)
        try:
            if error is not None:
                ctx.status = error.status
                ctx.reason = error.message
                if not response.started:
                    await send_error(response, error, header(scope, b"accept"))
                elif not response.finished:
                    # An event stream gets the error as its last event, as OpenAI sends one.
                    tail = b""
                    if response.event_stream:
                        tail = b"data: " + envelope(error.status, error.message, error.reason)
                        tail += b"\n\n"
                    await response({"type": "http.response.body", "body": tail, "more_body": False})
        finally:
            hold.release()
            self._finish(scope, ctx, response, error is not None)

    def _finish(self, scope: Scope, ctx: RequestContext, response: _Response, failed: bool) -> None:
        """The request is over: its record, metrics, the slow-request log, the in-flight list."""
        services = self.services
        ctx.ended_at = ctx.timeline.now()
        if not response.started and not failed:
            ctx.status = None  # nothing reached the client
        usage = ctx.usage()
        outcome = ctx.outcome(response.finished, failed)
        if ctx.timeline.slow(response.finished and not failed):
            self._log_slow(scope, ctx, response.finished)
        if ctx.tracked is not None:
            services.in_flight.remove(ctx.tracked)
        if ctx.upstream_truncated:
            services.logs.info(
                f"{ctx.display} upstream ended the response early "
                f"(after {ctx.upstream_bytes} bytes); the client's response was closed cleanly"
            )
        if ctx.display:
            status = 499 if outcome == "client_gone" else ctx.status or 499
            services.metrics.observe_request(
                ctx.display, metric_route(scope["path"]), status, ctx.seconds(),
                (usage.prompt_tokens or 0, usage.completion_tokens or 0),
            )  # fmt: skip
        recorder = services.records
        if recorder.recording or recorder.captures.enabled:
            recorder.request(ctx.record(usage, outcome))
            if ctx.draft is not None:
                recorder.capture(ctx.draft.capture(ctx.id))

    def _log_slow(self, scope: Scope, ctx: RequestContext, finished: bool) -> None:
        """Where a slow request waited: queue, load, upstream connect or head, or its body."""
        timeline = ctx.timeline
        ending = f"status {ctx.status}" if finished else "ended without its response"
        if not finished and not ctx.status:
            ending = "client gone or cancelled"
        self.services.logs.info(
            f"slow request: {scope['method']} {scope['path']} for {ctx.display or '?'} "
            f"took {timeline.elapsed():.2f} s ({ending}): {timeline.summary()}"
        )

    def _classify(self, exc: Exception, ctx: RequestContext) -> ApiError | None:
        """The answer for whatever ended a request: None when the client is gone.

        Exception groups (from nurseries on the way) are searched for the
        meaningful leaf. Anything unexpected is logged and answered with a 500,
        so no request can take the daemon down.
        """
        leaf: BaseException = exc
        if isinstance(exc, BaseExceptionGroup):
            leaves = list(_leaves(exc))
            known = [e for e in leaves if isinstance(e, ApiError | ClientGone | RouterError)]
            leaf = known[0] if known else leaves[0]
        if isinstance(leaf, ClientGone):
            return None
        if isinstance(leaf, ApiError):
            return leaf
        if isinstance(leaf, RouterError):
            ctx.aborted = isinstance(leaf, RequestAborted)
            return router_error(leaf)
        if isinstance(leaf, RecursionError):  # a client's input nested too deeply to handle
            return ApiError(400, "the request is nested too deeply", "nested_too_deeply")
        detail = "".join(traceback.format_exception(leaf)).rstrip()
        self.services.logs.info(f"internal error while handling a request: {detail}")
        return ApiError(500, f"internal error: {type(leaf).__name__}: {leaf}")

    async def _read(self, scope: Scope, receive: Receive, hold: BodyHold) -> bytes:
        """Authenticate, then read the body, bounded in size (the caller bounds its time)."""
        if self.services.closing.is_set():
            raise ApiError(503, "swapd is shutting down", "shutting_down", {"retry-after": "5"})
        settings = self.services.settings
        if settings.api_keys:
            auth = header(scope, b"authorization")
            check_auth(settings.api_keys, auth, header(scope, b"x-api-key"))
        return await read_body(scope, receive, settings.max_request_body_size, hold)

    async def _dispatch(
        self, scope: Scope, body: bytes, send: _Response, ctx: RequestContext
    ) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        if path.startswith("/upstream/"):
            await self._upstream(scope, body, send, ctx)
            return
        settings = self.services.settings
        limits = FormLimits(settings.max_form_parts, settings.max_form_field_size)
        content_type = header(scope, b"content-type")
        req = await extract_off_loop(method, content_type, scope["query_string"], body, limits)
        ctx.stream = req.stream
        if not req.model:
            raise ApiError(400, MISSING_MODEL, "missing_model")
        ctx.requested = req.model
        target = self.services.resolver.resolve(req.model)
        if target is None:
            raise unknown_model(req.model)
        path_out = forward_path(path)
        self._track(ctx, target, path_out, method, scope)
        if target.kind == "peer":
            out_body = self._peer_body(req, body, target)
            query = scope["query_string"]
            if target.requested != target.model and "model" in req.query:
                query = with_query_model(req.query, target.model)
            await self._to_peer(scope, target, path_out, out_body, send, ctx, query)
            return
        model = self.services.settings.models[target.model]
        out_body = self._local_body(req, body, target, model.use_model_name, model.filters)
        loading = req.stream and model.send_loading_state and path_out.startswith(LOADING_PATH)
        await self._to_local(
            scope, target, path_out, scope["query_string"], out_body, send, ctx, loading
        )

    def _track(
        self, ctx: RequestContext, target: Target, path: str, method: str, scope: Scope
    ) -> None:
        """The request has its model: into the in-flight list, under its own id."""
        ctx.model = target.model
        ctx.display = target.display
        ctx.peer = target.peer if target.kind == "peer" else None
        ctx.tracked = self.services.in_flight.add(
            target.display, path, method, client_ip(scope), request_id=ctx.id
        )

    # ----- bodies ------------------------------------------------------------

    @staticmethod
    def _local_body(
        req: ModelRequest, body: bytes, target: Target, use_model_name: str, model_filters: Any
    ) -> bytes:
        if req.kind == "json":
            if not filters.applies(use_model_name, model_filters, target.requested):
                return body
            obj = req.body_object()
            filters.apply(
                obj, use_model_name=use_model_name, filters=model_filters,
                requested=target.requested,
            )  # fmt: skip
            return msgspec.json.encode(obj)
        if req.kind == "multipart" and req.parts is not None and use_model_name:
            rebuilt = multipart.with_field(req.parts, "model", use_model_name)
            return multipart.build(rebuilt, req.boundary)
        if req.kind == "form" and use_model_name:
            return with_form_model(body, use_model_name)
        return body

    def _peer_body(self, req: ModelRequest, body: bytes, target: Target) -> bytes:
        peer = self.services.settings.peers[target.peer or ""]
        rename = target.requested != target.model
        if req.kind == "json":
            if not rename and not filters.applies("", peer.filters, target.requested):
                return body
            obj = req.body_object()
            if rename:
                obj["model"] = target.model
            filters.apply(obj, use_model_name="", filters=peer.filters, requested=target.requested)
            return msgspec.json.encode(obj)
        if req.kind == "multipart" and req.parts is not None and rename:
            return multipart.build(
                multipart.with_field(req.parts, "model", target.model), req.boundary
            )
        if req.kind == "form" and rename:
            return with_form_model(body, target.model)
        return body

    # ----- local models ----------------------------------------------------------

    def _local_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        return request_headers(
            list(scope["headers"]), drop_credentials=True, client_ip=client_ip(scope)
        )

    async def _open_upstream(
        self, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes,
        timeline: Timeline, head_timeout: float | None = None,
    ) -> UpstreamResponse:  # fmt: skip
        try:
            upstream = await self.services.client.request(
                method, url, headers, body, head_timeout=head_timeout, timeline=timeline
            )
            timeline.enter("response")
            return upstream
        except UpstreamError as exc:
            raise ApiError(502, f"upstream unreachable: {exc}") from None

    def _waiting_for(self, model_id: str) -> str:
        """The phase of a lease: `queue` for a model ready on arrival, else `load`."""
        return "queue" if self.services.state_of(model_id) == "ready" else "load"

    async def _to_local(
        self, scope: Scope, target: Target, path: str, query: bytes, body: bytes,
        send: _Response, ctx: RequestContext, loading: bool,
    ) -> None:  # fmt: skip
        headers = self._local_headers(scope)
        if loading:
            await self._to_local_with_loading(scope, target, path, query, headers, body, send, ctx)
            return
        timeline = ctx.timeline
        timeline.enter(self._waiting_for(target.model))
        ctx.leasing()
        try:
            async with self.services.router.lease(
                target.model, on_cut=ctx.cut, request_id=ctx.id
            ) as grant:
                ctx.granted(grant.swap_id, grant.load_wait_s)
                url = join_url(grant.upstream, path, query)
                upstream = await self._open_upstream(scope["method"], url, headers, body, timeline)
                await relay_response(send, upstream, ctx)
        except RouterError as exc:
            ctx.refused(exc)
            raise router_error(exc) from None

    async def _to_local_with_loading(
        self, scope: Scope, target: Target, path: str, query: bytes,
        headers: list[tuple[bytes, bytes]], body: bytes, send: _Response, ctx: RequestContext,
    ) -> None:  # fmt: skip
        """A streaming chat request with sendLoadingState: show the load, then the answer.

        The stream (status 200) starts only when the router says the request
        waits (queued or loading), so a 429 or an immediate grant is answered
        normally. After it started, errors are appended to the stream.
        """
        timeline = ctx.timeline
        timeline.enter(self._waiting_for(target.model))
        ctx.leasing()
        progress_tx, progress_rx = trio.open_memory_channel[Progress](PROGRESS_BUFFER)
        state = _LoadingState()

        async def sse_send(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        async def watch(nursery: trio.Nursery) -> None:
            async for event in progress_rx:
                writer = state.writer
                if writer is not None:
                    writer.note_progress(event)
                elif not state.granted and event.kind in ("queued", "loading"):
                    writer = LoadingWriter(sse_send, target.model)
                    writer.note_progress(event)
                    state.writer = writer
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS}
                    )
                    nursery.start_soon(writer.run, None)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery)
            try:
                async with self.services.router.lease(
                    target.model,
                    progress=progress_tx,
                    on_cut=ctx.cut,
                    request_id=ctx.id,
                ) as grant:
                    ctx.granted(grant.swap_id, grant.load_wait_s)
                    state.granted = True
                    writer = state.writer
                    if writer is not None:
                        await writer.finish()
                    url = join_url(grant.upstream, path, query)
                    try:
                        upstream = await self._open_upstream(
                            scope["method"], url, headers, body, timeline
                        )
                    except ApiError as exc:
                        if writer is None:
                            raise
                        await self._append_error(send, exc.status, exc.message, exc.reason)
                        ctx.failed(exc.status, exc.message)
                    else:
                        await relay_response(send, upstream, ctx, head_sent=writer is not None)
            except RouterError as exc:
                ctx.refused(exc)
                state.granted = True
                writer = state.writer
                if writer is None:
                    raise router_error(exc) from None
                await writer.finish()
                error = router_error(exc)
                await self._append_error(send, error.status, error.message, error.reason)
                ctx.failed(error.status, error.message)
            finally:
                nursery.cancel_scope.cancel()

    @staticmethod
    async def _append_error(send: _Response, status: int, message: str, reason: str | None) -> None:
        """An error after the loading stream began: the envelope as raw bytes."""
        await send(
            {
                "type": "http.response.body",
                "body": envelope(status, message, reason),
                "more_body": False,
            }
        )

    # ----- peers -----------------------------------------------------------------

    async def _to_peer(
        self, scope: Scope, target: Target, path: str, body: bytes, send: _Response,
        ctx: RequestContext, query: bytes | None = None,
    ) -> None:  # fmt: skip
        peer = self.services.settings.peers[target.peer or ""]
        extra: list[tuple[bytes, bytes]] = []
        if peer.api_key:
            key = peer.api_key.encode()
            extra = [(b"authorization", b"Bearer " + key), (b"x-api-key", key)]
        headers = request_headers(
            list(scope["headers"]), drop_credentials=bool(peer.api_key), extra=extra
        )
        headers = [(n, v) for n, v in headers if not n.startswith(b"x-forwarded-")]
        url = join_url(peer.proxy, path, scope["query_string"] if query is None else query)
        timeline = ctx.timeline
        try:
            upstream = await self.services.client.request(
                scope["method"], url, headers, body, head_timeout=PEER_HEAD_TIMEOUT,
                timeline=timeline,
            )  # fmt: skip
            timeline.enter("response")
        except UpstreamError as exc:
            self.services.logs.info(f"peer {peer.id}: proxy error: {exc}")
            raise ApiError(502, f"peer proxy error: {exc}") from None
        await relay_response(send, upstream, ctx)

    # ----- /upstream/<model>/<path> ---------------------------------------------

    async def _upstream(
        self, scope: Scope, body: bytes, send: _Response, ctx: RequestContext
    ) -> None:
        """Passthrough to a model's own server: any method, no filters (docs/compat.md)."""
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        raw = raw_path.decode("latin-1").split("?", 1)[0]
        raw_segments = raw[len("/upstream/") :].split("/")
        segments = [unquote(s) for s in raw_segments]
        match = self.services.resolver.match_path(segments)
        if match is None:
            raise ApiError(404, "model not found")
        target, used = match
        ctx.requested = target.requested
        remainder = "/" + "/".join(raw_segments[used:])
        self._track(ctx, target, remainder, scope["method"], scope)
        query: bytes = scope["query_string"]
        ctx.stream = b"stream=true" in query.split(b"&")
        if remainder == "/" and not raw.endswith("/"):
            location = "/upstream/" + "/".join(raw_segments[:used]) + "/"
            if query:
                location += "?" + query.decode("latin-1")
            status = 301 if scope["method"] in ("GET", "HEAD") else 308
            ctx.status = status
            await send_response(send, status, b"", headers={"location": location})
            return
        if target.kind == "peer":
            await self._to_peer(scope, target, remainder, body, send, ctx)
            return
        ignored = any(p.search(remainder) for p in self.services.settings.upstream_ignore_paths)
        if ignored and self.services.state_of(target.model) != "ready":
            message = f"model {target.model} is not loaded; path matches upstream.ignorePaths"
            raise ApiError(409, message)
        model = self.services.settings.models[target.model]
        loading = ctx.stream and model.send_loading_state and remainder.startswith(LOADING_PATH)
        await self._to_local(scope, target, remainder, query, body, send, ctx, loading)
