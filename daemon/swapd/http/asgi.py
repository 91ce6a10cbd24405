"""Small raw-ASGI helpers shared by the relay routes (no framework on the hot path)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from swapd.http.budget import BodyHold
from swapd.http.errors import ApiError, render_error

Scope = dict[str, Any]

# A key of `http.response.start` that swapd's server honours: the app has the
# body's first piece in hand and sends it next, so the head may wait for it
# and both go out in one write (a relayed stream whose first event came with
# the upstream's head). Other servers ignore it.
BODY_FOLLOWS = "swapd.body_follows"
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


def header(scope: Scope, name: bytes) -> str:
    """The first value of a request header (lower-case `name`), or ""."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


async def read_body(scope: Scope, receive: Receive, limit: int, hold: BodyHold) -> bytes:
    """The whole request body, refusing more than `limit` bytes with a 413.

    The body's bytes are taken from the shared budget through `hold` (its
    declared length before reading, as it arrives otherwise), which may
    refuse it with a 503.
    """
    declared = header(scope, b"content-length")
    expected = int(declared) if declared.isdigit() else 0
    if expected > limit:
        raise ApiError(
            413,
            f"request body of {declared} bytes is over the {limit}-byte limit",
            "request_too_large",
        )
    if expected:
        hold.take(expected)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over the {limit}-byte limit", "request_too_large")
        if size > hold.size:
            hold.take(size - hold.size)
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def send_response(
    send: Send,
    status: int,
    body: bytes,
    content_type: str = "",
    headers: dict[str, str] | None = None,
) -> None:
    out = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if content_type:
        out.append((b"content-type", content_type.encode()))
    out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Send, error: ApiError, accept: str = "") -> None:
    content_type, body = render_error(error.status, error.message, accept, error.reason)
    await send_response(send, error.status, body, content_type, error.headers)
