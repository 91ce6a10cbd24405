"""Finding the requested model and the stream flag in a request (spec api.md §3.2).

One function, `extract`, for every model route: the JSON body (when the
content type says JSON), a multipart form, an url-encoded form, or the query
string. Deviations from llama-swap, as issue 5 asks: a JSON body that does not
parse, or is not an object, is a 400 (llama-swap silently treats it as "no
model"), and a request that names no model is a 400 rather than a 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

import msgspec

from swapd.http import multipart
from swapd.http.errors import ApiError

MAX_URLENCODED = 10 * 1024 * 1024

MISSING_MODEL = (
    'no model in the request: set "model" in the JSON body or the form, or ?model= on GET'
)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


@dataclass
class ModelRequest:
    """The requested model name and stream flag, plus the parsed body to rewrite."""

    model: str
    stream: bool
    kind: Literal["json", "multipart", "form", "query"]
    json: dict[str, Any] | None = None
    parts: list[multipart.Part] | None = None
    boundary: bytes = b""
    query: dict[str, list[str]] = field(default_factory=dict)


def truthy(value: Any) -> bool:
    """`stream` as llama-swap reads it: true, a non-zero number, or a true-ish string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value in _TRUE
    return False


def model_text(value: Any) -> str:
    """A JSON `model` value as text: strings as they are, anything else as its JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def parse_query(query_string: bytes | str) -> dict[str, list[str]]:
    text = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
    return parse_qs(text, keep_blank_values=True)


def _first(values: dict[str, list[str]], key: str) -> str:
    found = values.get(key)
    return found[0] if found else ""


def extract(method: str, content_type: str, query_string: bytes | str, body: bytes) -> ModelRequest:
    """The model and stream flag of a model-route request; raises ApiError(400) on bad bodies."""
    query = parse_query(query_string)
    if method in ("GET", "HEAD"):
        return ModelRequest(
            _first(query, "model"), _first(query, "stream") == "true", "query", query=query
        )
    if "application/json" in content_type:
        try:
            obj = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise ApiError(400, f"malformed JSON body: {exc}") from None
        if not isinstance(obj, dict):
            raise ApiError(400, "malformed JSON body: expected an object")
        return ModelRequest(
            model_text(obj.get("model")), truthy(obj.get("stream")), "json", json=obj, query=query
        )
    if "multipart/form-data" in content_type:
        try:
            boundary = multipart.boundary_of(content_type)
            parts = multipart.parse(body, boundary)
        except multipart.MultipartError as exc:
            raise ApiError(400, f"malformed multipart body: {exc}") from None
        # Go's form-value precedence: the query string wins over multipart fields.
        model = _first(query, "model") or (multipart.field_value(parts, "model") or "")
        stream = (_first(query, "stream") or multipart.field_value(parts, "stream") or "") == "true"
        return ModelRequest(model, stream, "multipart", parts=parts, boundary=boundary, query=query)
    if "application/x-www-form-urlencoded" in content_type and len(body) <= MAX_URLENCODED:
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        model = _first(form, "model") or _first(query, "model")
        stream = (_first(form, "stream") or _first(query, "stream")) == "true"
        return ModelRequest(model, stream, "form", query=query)
    return ModelRequest(
        _first(query, "model"), _first(query, "stream") == "true", "query", query=query
    )
