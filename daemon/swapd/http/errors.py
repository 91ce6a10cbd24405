"""The OpenAI-shaped error envelope and content negotiation, as llama-swap sends them.

Every error swapd itself produces goes through `render_error`, so clients that
read `body["error"]["message"]` (the OpenAI and Anthropic SDKs) always find it.
`type` and `code` depend on the status alone, exactly as llama-swap's (clients
match on them); swapd's finer reason (`model_not_found`, `load_failed`, ...)
goes in a fifth key, `reason`, after them (docs/compat.md).
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
    429: ("rate_limit_error", "rate_limit_exceeded"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}

#: Reasons llama-swap itself sends as the `code` in place of the status's default.
CODE_OVERRIDES: frozenset[str] = frozenset({"concurrency_limit"})


def type_and_code(status: int) -> tuple[str, str]:
    """The envelope's `type` and `code` for an HTTP status (other 4xx: `invalid_request`)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return ("invalid_request_error", "invalid_request")
    return ("server_error", "internal_error")


class _Inner(msgspec.Struct, omit_defaults=True):
    message: str
    type: str
    param: None
    code: str
    reason: str | None = None


class _Envelope(msgspec.Struct):
    src: str
    error: _Inner


_encoder = msgspec.json.Encoder()


def envelope(status: int, message: str, reason: str | None = None) -> bytes:
    """The JSON error body: `src`, then `message`, `type`, `param`, `code` (llama-swap's
    order) and `reason` when there is one; no trailing newline."""
    kind, code = type_and_code(status)
    if reason in CODE_OVERRIDES:  # llama-swap's exact body: the reason is the code
        code, reason = reason, None
    inner = _Inner(message=message, type=kind, param=None, code=code, reason=reason)
    return _encoder.encode(_Envelope(src=SOURCE, error=inner))


def render_error(
    status: int, message: str, accept: str = "", reason: str | None = None
) -> tuple[str, bytes]:
    """(content type, body) for an error, negotiated on `Accept` as llama-swap does.

    The substring tests run in llama-swap's order: `text/plain` first, then
    `text/html`, otherwise JSON.
    """
    if "text/plain" in accept:
        return "text/plain", f"{SOURCE}: {message}".encode()
    if "text/html" in accept:
        body = f"<html><body><h1>{SOURCE}</h1><p>{html.escape(message)}</p></body></html>"
        return "text/html", body.encode()
    return "application/json", envelope(status, message, reason)


@dataclass
class ApiError(Exception):
    """An error answered to the client with the envelope; raised by request handling."""

    status: int
    message: str
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


def too_many_requests(retry_after: float = 1) -> ApiError:
    """The per-model concurrency rejection; llama-swap's code `concurrency_limit`."""
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
