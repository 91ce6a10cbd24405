"""Relaying one request to an upstream and its response back to the client.

The response is streamed piece by piece as the upstream produces it, never
buffered (every ASGI body message is written to the client's socket at
once), with `X-Accel-Buffering: no` on event streams so a reverse proxy in
front of swapd does not buffer either. Hop-by-hop, `date` and `server`
headers are dropped both ways (each hop sends its own); swapd's server adds its own `date`.

Exits: a client that disconnects cancels the handler, and leaving the
`aclosing` block closes the upstream connection at once, so the upstream
stops generating. An upstream that dies mid-body ends the client's response
cleanly (a finished chunked body, no `[DONE]`), as llama-swap does
(docs/compat.md, Relaying); the supervisor notices the exit and marks the model stopped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol

from swapd.http.asgi import BODY_FOLLOWS
from swapd.http.upstream import Headers, UpstreamResponse

ASGISend = Callable[[dict[str, Any]], Awaitable[None]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_REQUEST_DROP = HOP_BY_HOP | {b"host", b"content-length", b"accept-encoding", b"expect"}
_RESPONSE_DROP = HOP_BY_HOP | {b"date", b"server"}
CREDENTIALS = frozenset({b"authorization", b"x-api-key"})
_REQUEST_DROP_CREDENTIALS = _REQUEST_DROP | CREDENTIALS


def _connection_tokens(value: bytes) -> set[bytes]:
    """The header names a `Connection` value lists (hop-by-hop for this exchange)."""
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


def request_headers(
    headers: Headers,
    *,
    drop_credentials: bool,
    extra: Headers | None = None,
    client_ip: str | None = None,
) -> Headers:
    """Client headers fit to send upstream.

    Drops hop-by-hop headers (and those named by `Connection`), Host and
    Content-Length (the client sets them), Accept-Encoding (local upstreams
    answer uncompressed so usage can be read), and, when `drop_credentials`,
    the client's Authorization and x-api-key. `extra` replaces same-named
    headers; `client_ip` is appended to X-Forwarded-For. Names come out
    lower-cased.
    """
    drop = _REQUEST_DROP_CREDENTIALS if drop_credentials else _REQUEST_DROP
    if extra:
        drop = drop | {name for name, _ in extra}
    out: Headers = []
    named: set[bytes] = set()
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == b"connection":
            named |= _connection_tokens(value)
        elif name not in drop:
            out.append((name, value))
    named -= drop
    if named:  # usually only keep-alive, dropped anyway
        out = [(n, v) for n, v in out if n not in named]
    if extra:
        out.extend(extra)
    if client_ip:
        forwarded = [v for n, v in out if n == b"x-forwarded-for"]
        if forwarded:
            out = [(n, v) for n, v in out if n != b"x-forwarded-for"]
        out.append((b"x-forwarded-for", b", ".join([*forwarded, client_ip.encode()])))
    return out


def content_length(headers: Headers) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


def response_headers(headers: Headers) -> Headers:
    """Upstream response headers fit for the client, with X-Accel-Buffering on event streams.

    Names come out lower-cased.
    """
    out: Headers = []
    named: set[bytes] = set()
    event_stream = False
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == b"content-type" and b"text/event-stream" in value.lower():
            event_stream = True
        if name == b"connection":
            named |= _connection_tokens(value)
        elif name not in _RESPONSE_DROP:
            out.append((name, value))
    named -= _RESPONSE_DROP
    if named:
        out = [(n, v) for n, v in out if n not in named]
    if event_stream:
        out = [(n, v) for n, v in out if n != b"x-accel-buffering"]
        out.append((b"x-accel-buffering", b"no"))
    return out


class BodyObserver(Protocol):
    """Told about the response as it is relayed (the request's context)."""

    def response_head(self, status: int, headers: Headers, event_stream: bool) -> None: ...

    def chunk(self, data: bytes) -> None: ...

    def upstream_ended(self, total: int, truncated: bool) -> None: ...


@dataclass(slots=True)
class RelayResult:
    """What happened to one relayed response, for metrics and logs."""

    status: int
    size: int = 0  # body bytes sent to the client
    truncated: bool = False
    content_type: str = ""


async def relay_response(
    send: ASGISend,
    upstream: UpstreamResponse,
    observer: BodyObserver,
    *,
    head_sent: bool = False,
) -> RelayResult:
    """Stream `upstream` to the client; `head_sent` when a loading stream already sent 200.

    `observer` sees the head and each chunk as it goes out. A body that
    arrived whole with the response head (a small answer) goes out as one
    message, without the read loop. The upstream response is closed on every
    exit path (normal end, client disconnect, upstream death, errors).
    """
    headers = upstream.headers
    ctype = next((v for n, v in headers if n.lower() == b"content-type"), b"")
    result = RelayResult(upstream.status, content_type=ctype.decode("latin-1"))
    observer.response_head(upstream.status, headers, b"text/event-stream" in ctype.lower())
    try:
        if not head_sent:
            await send(
                {
                    "type": "http.response.start",
                    "status": upstream.status,
                    "headers": response_headers(headers),
                    BODY_FOLLOWS: upstream.body_at_hand,
                }
            )
        whole = upstream.body_if_buffered()
        if whole is None:
            await _stream_body(send, upstream, result, observer)
        else:
            result.size = len(whole)
            observer.chunk(whole)
            await send({"type": "http.response.body", "body": whole, "more_body": False})
    finally:
        result.truncated = upstream.truncated
        observer.upstream_ended(result.size, result.truncated)
        await upstream.aclose()
    return result


async def _stream_body(
    send: ASGISend, upstream: UpstreamResponse, result: RelayResult, observer: BodyObserver
) -> None:
    """The body piece by piece as it arrives, each shown to `observer` first."""
    async with aclosing(upstream.chunks()) as chunks:
        length = content_length(upstream.headers)
        ended = False
        async for chunk in chunks:
            result.size += len(chunk)
            observer.chunk(chunk)
            # A body of known length ends with its last bytes: one write fewer.
            ended = result.size == length
            await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
