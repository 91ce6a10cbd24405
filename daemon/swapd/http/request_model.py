"""Finding the requested model and the stream flag in a request.

One function, `extract`, for every model route: the JSON body (when the
content type says JSON), a multipart form, an url-encoded form, or the query
string (docs/compat.md, Model name resolution). Deliberate deviations from
llama-swap: a JSON body that does not
parse, or is not an object, is a 400 (llama-swap silently treats it as "no
model"), and a request that names no model is a 400 rather than a 404.

A JSON body is read for `model` and `stream` alone (the other members are
checked for syntax and skipped, not built into objects): most requests are
forwarded byte for byte, and building a long chat history into dicts only to
drop it takes twice as long (about 250 µs against 130 µs for 120 KB). The
whole object is built on demand (`ModelRequest.json`), when a filter or a
rename must rewrite it.
A number beyond float range in a skipped member is therefore left for the
upstream to judge; any other malformed body is refused exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, parse_qsl, quote_plus, unquote_plus

import msgspec
import trio

from swapd.http import multipart
from swapd.http.errors import ApiError

# A form body larger than this is parsed in a worker thread, off the event loop.
OFF_LOOP_BYTES = 256 * 1024

MISSING_MODEL = (
    'no model in the request: set "model" in the JSON body or the form, or ?model= on GET'
)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


@dataclass(frozen=True)
class FormLimits:
    """Bounds of a form body: parts, and bytes of a field that is not a file (413 beyond)."""

    max_parts: int = 1000
    max_field: int = 1024 * 1024


NESTED_TOO_DEEPLY = "malformed JSON body: nested too deeply"


@dataclass
class ModelRequest:
    """The requested model name and stream flag, plus what is needed to rewrite the body."""

    model: str
    stream: bool
    kind: Literal["json", "multipart", "form", "query"]
    parts: list[multipart.Part] | None = None
    boundary: bytes = b""
    query: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""  # a JSON body (built into `json` only when asked for) or a form
    decoded: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def json(self) -> dict[str, Any] | None:
        """The JSON body as an object; None for the other kinds."""
        return self.body_object() if self.kind == "json" else None

    def body_object(self) -> dict[str, Any]:
        """The JSON body as an object, built on first use (kind "json" only)."""
        if self.decoded is None:
            self.decoded = _decode_object(self.body)
        return self.decoded


class _ModelFields(msgspec.Struct):
    """The two members `extract` reads; the decoder skips every other one."""

    model: Any = None
    stream: Any = None


_fields_decoder = msgspec.json.Decoder(_ModelFields)


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
    if not query_string:  # the common case, and parse_qs is not free
        return {}
    text = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
    return parse_qs(text, keep_blank_values=True)


def _first(values: dict[str, list[str]], key: str) -> str:
    found = values.get(key)
    return found[0] if found else ""


def extract(
    method: str,
    content_type: str,
    query_string: bytes | str,
    body: bytes,
    limits: FormLimits | None = None,
) -> ModelRequest:
    """The model and stream flag of a model-route request.

    Raises ApiError: 400 for a malformed body, 413 for a form over `limits`.
    """
    query = parse_query(query_string)
    if method in ("GET", "HEAD"):
        return ModelRequest(
            _first(query, "model"), _first(query, "stream") == "true", "query", query=query
        )
    if "application/json" in content_type:
        return _json_request(body, query)
    limits = limits or FormLimits()
    if "multipart/form-data" in content_type:
        try:
            boundary = multipart.boundary_of(content_type)
            parts = multipart.parse(
                body, boundary, max_parts=limits.max_parts, max_field=limits.max_field
            )
        except multipart.FormTooLarge as exc:
            raise ApiError(413, str(exc), "form_too_large") from None
        except multipart.MultipartError as exc:
            raise ApiError(400, f"malformed multipart body: {exc}", "malformed_form") from None
        # Go's form-value precedence: the query string wins over multipart fields.
        model = _first(query, "model") or (multipart.field_value(parts, "model") or "")
        stream = (_first(query, "stream") or multipart.field_value(parts, "stream") or "") == "true"
        return ModelRequest(model, stream, "multipart", parts=parts, boundary=boundary, query=query)
    if "application/x-www-form-urlencoded" in content_type:
        form = _urlencoded(body, limits)
        model = _first(form, "model") or _first(query, "model")
        stream = (_first(form, "stream") or _first(query, "stream")) == "true"
        return ModelRequest(model, stream, "form", query=query, body=body)
    return ModelRequest(
        _first(query, "model"), _first(query, "stream") == "true", "query", query=query
    )


async def extract_off_loop(
    method: str,
    content_type: str,
    query_string: bytes,
    body: bytes,
    limits: FormLimits,
) -> ModelRequest:
    """`extract`, with a large form parsed in a worker thread so other requests go on."""
    if len(body) > OFF_LOOP_BYTES and "form" in content_type:
        return await trio.to_thread.run_sync(
            extract, method, content_type, query_string, body, limits
        )
    return extract(method, content_type, query_string, body, limits)


def _urlencoded(body: bytes, limits: FormLimits) -> dict[str, list[str]]:
    """An url-encoded form, bounded in fields and field size (413)."""
    if body.count(b"&") + 1 > limits.max_parts:
        message = f"form of more than {limits.max_parts} fields (http.maxFormParts)"
        raise ApiError(413, message, "form_too_large")
    form: dict[str, list[str]] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        if len(value) > limits.max_field:
            raise ApiError(
                413,
                f"form field {key[:100]!r} is over {limits.max_field} bytes "
                "(http.maxFormFieldSize)",
                "form_too_large",
            )
        form.setdefault(key, []).append(value)
    return form


def with_form_model(body: bytes, model: str) -> bytes:
    """An url-encoded body with every `model` field set to `model`, the rest byte for byte."""
    fields = body.split(b"&")
    value = quote_plus(model).encode("ascii")
    out = [
        b"model=" + value if unquote_plus(f.partition(b"=")[0].decode("latin-1")) == "model" else f
        for f in fields
    ]
    return b"&".join(out)


def _decode_object(body: bytes) -> dict[str, Any]:
    """The whole JSON body as a dict; ApiError(400) when it is not a JSON object."""
    try:
        obj = msgspec.json.decode(body)
    except RecursionError:
        raise ApiError(400, NESTED_TOO_DEEPLY, "malformed_json") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"malformed JSON body: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"malformed JSON body: invalid UTF-8 at byte {exc.start}") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "malformed JSON body: expected an object")
    return obj


def _json_request(body: bytes, query: dict[str, list[str]]) -> ModelRequest:
    """`model` and `stream` of a JSON body, building nothing else when it is well-formed.

    Anything the fast read refuses (not an object, bad syntax, bad UTF-8 in a
    skipped string) is decoded whole instead, so the answer and its message
    are those of the full decoder.
    """
    try:
        fields = _fields_decoder.decode(body)
        body.decode()  # skipped strings are not checked for UTF-8; the full decode was
    except RecursionError:
        raise ApiError(400, NESTED_TOO_DEEPLY, "malformed_json") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        obj = _decode_object(body)
        model, stream = obj.get("model"), obj.get("stream")
        return ModelRequest(
            model_text(model), truthy(stream), "json", query=query, body=body, decoded=obj
        )
    return ModelRequest(
        model_text(fields.model), truthy(fields.stream), "json", query=query, body=body
    )
