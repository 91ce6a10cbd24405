"""Parsing and rebuilding `multipart/form-data` bodies, in memory.

Used to find the `model` field of `/v1/audio/transcriptions` and
`/v1/images/edits` and to rewrite it (useModelName, peer names). Unlike
llama-swap (docs/compat.md, Forms and multipart), a rebuilt form keeps every part's order and
headers: only the `model` part's content changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
)


class MultipartError(ValueError):
    """The body is not a well-formed multipart form."""


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    headers: tuple[tuple[str, str], ...]
    data: bytes


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a multipart content type."""
    _, options = parse_options_header(content_type)
    boundary = options.get("boundary", "")
    if not boundary:
        raise MultipartError("multipart body without a boundary")
    return boundary.encode("latin-1")


class FormTooLarge(MultipartError):
    """More parts, or a larger field, than the bounds allow (413)."""


def parse(
    body: bytes, boundary: bytes, *, max_parts: int = 1000, max_field: int = 1024 * 1024
) -> list[Part]:
    """Every part of the form, in order.

    At most `max_parts` parts, and at most `max_field` bytes in a part that
    is not a file (FormTooLarge beyond): decoding stops at the first part
    over the bound, so a body of a million tiny parts costs no more than
    `max_parts` of them.
    """
    decoder = MultipartDecoder(boundary, max_parts=max_parts)
    decoder.receive_data(body)
    decoder.receive_data(None)
    parts: list[Part] = []
    current: Field | File | None = None
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            event = decoder.next_event()
            if isinstance(event, Field | File):
                current, chunks, size = event, [], 0
            elif isinstance(event, Data):
                chunks.append(event.data)
                size += len(event.data)
                if size > max_field and isinstance(current, Field):
                    raise FormTooLarge(
                        f"form field {current.name!r} is over {max_field} bytes "
                        "(http.maxFormFieldSize)"
                    )
                if not event.more_data and current is not None:
                    filename = current.filename if isinstance(current, File) else None
                    headers = tuple((k, v) for k, v in current.headers.items())
                    parts.append(Part(current.name, filename, headers, b"".join(chunks)))
                    current = None
            elif isinstance(event, Epilogue):
                return parts
            elif isinstance(event, NeedData):
                raise MultipartError("truncated multipart body")
    except RequestEntityTooLarge:
        raise FormTooLarge(f"form of more than {max_parts} parts (http.maxFormParts)") from None
    except ValueError as exc:
        if isinstance(exc, MultipartError):
            raise
        raise MultipartError(str(exc)) from exc


def field_value(parts: list[Part], name: str) -> str | None:
    """The first non-file field called `name`, decoded as UTF-8."""
    for part in parts:
        if part.name == name and part.filename is None:
            return part.data.decode("utf-8", "replace")
    return None


def with_field(parts: list[Part], name: str, value: str) -> list[Part]:
    """The parts with every non-file field `name` set to `value`."""
    return [
        replace(p, data=value.encode()) if p.name == name and p.filename is None else p
        for p in parts
    ]


def build(parts: list[Part], boundary: bytes) -> bytes:
    """Encode parts back into a body, each with its original headers."""
    out = bytearray()
    for part in parts:
        out += b"--" + boundary + b"\r\n"
        for key, value in part.headers:
            out += f"{key}: {value}\r\n".encode()
        out += b"\r\n" + part.data + b"\r\n"
    out += b"--" + boundary + b"--\r\n"
    return bytes(out)
