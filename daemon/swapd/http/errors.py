"""The OpenAI-shaped error envelope (spec api.md §1.4) and content negotiation.

Every error swapd itself produces goes through `render_error`, so clients that
read `body["error"]["message"]` (the OpenAI and Anthropic SDKs) always find it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import msgspec

SOURCE = "swapd"

_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "bad_request"),
    401: ("authentication_error", "unauthorized"),
    403: ("authentication_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}


def type_and_code(status: int) -> tuple[str, str]:
    """The envelope's `type` and default `code` for an HTTP status (spec §1.4.2)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return ("invalid_request_error", "invalid_request")
    return ("server_error", "internal_error")


class _Inner(msgspec.Struct):
    message: str
    type: str
    param: None
    code: str


class _Envelope(msgspec.Struct):
    src: str
    error: _Inner


_encoder = msgspec.json.Encoder()


def envelope(status: int, message: str, code: str | None = None) -> bytes:
    """The JSON error body, keys in the spec's order, no trailing newline."""
    kind, default_code = type_and_code(status)
    inner = _Inner(message=message, type=kind, param=None, code=code or default_code)
    return _encoder.encode(_Envelope(src=SOURCE, error=inner))


def render_error(
    status: int, message: str, accept: str = "", code: str | None = None
) -> tuple[str, bytes]:
    """(content type, body) for an error, negotiated on `Accept` as the spec's §1.4.1.

    The substring tests run in the spec's order: `text/plain` first, then
    `text/html`, otherwise JSON.
    """
    if "text/plain" in accept:
        return "text/plain", f"{SOURCE}: {message}".encode()
    if "text/html" in accept:
        body = f"<html><body><h1>{SOURCE}</h1><p>{html.escape(message)}</p></body></html>"
        return "text/html", body.encode()
    return "application/json", envelope(status, message, code)


@dataclass
class ApiError(Exception):
    """An error answered to the client with the envelope; raised by request handling."""

    status: int
    message: str
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


def too_many_requests(retry_after: float = 1) -> ApiError:
    """The per-model concurrency rejection (spec §3.6.2), code `concurrency_limit`."""
    seconds = max(1, round(retry_after))
    return ApiError(429, "Too many requests", "concurrency_limit", {"retry-after": str(seconds)})


def unknown_model(name: str) -> ApiError:
    """404 for a name that is neither a model, an alias nor a peer model."""
    shown = name if len(name) <= 200 else name[:200] + "..."
    return ApiError(
        404,
        f"model {shown!r} not found; GET /v1/models lists the available models",
        "model_not_found",
    )
