"""Sans-IO HTTP/1.1 heads: the upstream client's and the server's, both ways.

h11 did both before, at a per-request cost that showed in the relay's
profile (event objects, header validation in Python, a state machine built
for every exchange) while the body was already read outside it. These two
functions do what a relay to local servers needs, strictly: request heads
are validated (no CR/LF or control bytes can be smuggled into a header or
the target), response heads must be well-formed HTTP/1.x, `1xx` interim
heads are skipped, obsolete line folding is refused. Header names come out
lower-cased, as h11 gave them.

The server side (`parse_request_head`, `response_head`) is as strict: a
request head with a bad method, target, version or header line is refused
whole (the server answers 400 and closes), so nothing malformed reaches the
app or is relayed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

Headers = list[tuple[bytes, bytes]]

MAX_HEAD = 64 * 1024  # a response head larger than this is refused

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/(1\.[01])")
_STATUS = re.compile(rb"HTTP/(1\.[01]) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# Whole-block checks: one regex over all fields instead of two per field. A
# block that fails them goes through the field-by-field loop for the message.
_FIELDS = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*\r?\n)*")
_NAMES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+ )*")
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class HeadError(ValueError):
    """A head that cannot be written or parsed."""


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: bytes
    http_version: bytes
    headers: Headers  # names lower-cased, values without surrounding whitespace


@dataclass(slots=True)
class RequestHead:
    method: str
    target: bytes
    http_version: bytes  # b"1.0" or b"1.1"
    headers: Headers  # names lower-cased, values without surrounding whitespace


def request_head(method: str, target: str, headers: Headers) -> bytes:
    """The bytes of a request head; raises HeadError on anything unsafe to send."""
    method_b = method.encode("ascii", "replace")
    target_b = target.encode("latin-1", "replace")
    if not _TOKEN.fullmatch(method_b):
        raise HeadError(f"invalid method {method!r}")
    if not _TARGET.fullmatch(target_b):
        raise HeadError(f"invalid request target {target!r}")
    _check_fields(headers)
    fields = b"".join([b"%b: %b\r\n" % (name, value.strip(b" \t")) for name, value in headers])
    return b"%b %b HTTP/1.1\r\n%b\r\n" % (method_b, target_b, fields)


def parse_response_head(data: bytes) -> tuple[ResponseHead, int] | None:
    """The first final (non-1xx) response head in `data` and the offset of the body.

    None while the head is incomplete; raises HeadError when it is malformed
    or longer than MAX_HEAD.
    """
    pos = 0
    while True:
        end = _HEAD_END.search(data, pos)
        if end is None:
            if len(data) - pos > MAX_HEAD:
                raise HeadError("response head too large")
            return None
        if end.start() - pos > MAX_HEAD:
            raise HeadError("response head too large")
        head = _parse_one(data[pos : end.start()])
        pos = end.end()
        if head.status >= 200:
            return head, pos


def parse_request_head(data: bytes | bytearray) -> tuple[RequestHead, int] | None:
    """The request head at the start of `data` and the offset of what follows it.

    None while the head is incomplete; raises HeadError when it is malformed
    or longer than MAX_HEAD. Empty lines before the request line are skipped
    (RFC 9112 §2.2).
    """
    start = 0
    while data.startswith(b"\r\n", start) or data.startswith(b"\n", start):
        start += 2 if data[start] == 13 else 1
    end = _HEAD_END.search(data, start)
    if end is None:
        if len(data) - start > MAX_HEAD:
            raise HeadError("request head too large")
        return None
    if end.start() - start > MAX_HEAD:
        raise HeadError("request head too large")
    lines = bytes(data[start : end.start()]).split(b"\n")
    request_line = lines[0].removesuffix(b"\r")
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None:
        raise HeadError(f"bad request line {request_line[:80]!r}")
    method = match[1].decode("ascii")
    return RequestHead(method, match[2], match[3], _header_lines(lines)), end.end()


def response_head(status: int, headers: Headers) -> bytes:
    """The bytes of an HTTP/1.1 response head (the app's header values are checked)."""
    _check_fields(headers)
    fields = b"".join([b"%b: %b\r\n" % field for field in headers])
    return b"HTTP/1.1 %d %b\r\n%b\r\n" % (status, _REASONS.get(status, b""), fields)


def _check_fields(headers: Headers) -> None:
    """Refuse a name that is not a token or a value with a control byte (CR, LF...)."""
    names = b"".join([name + b" " for name, _ in headers])
    # one space per name: a name with a space of its own would pass as two tokens
    tokens = _NAMES.fullmatch(names) and names.count(b" ") == len(headers)
    if tokens and not _BAD_VALUE.search(b"\t".join([v for _, v in headers])):
        return
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise HeadError(f"invalid header {name!r}")


def _parse_one(block: bytes) -> ResponseHead:
    lines = block.split(b"\n")
    status_line = lines[0].removesuffix(b"\r")
    match = _STATUS.fullmatch(status_line)
    if match is None:
        raise HeadError(f"bad status line {status_line[:80]!r}")
    return ResponseHead(int(match[2]), match[3] or b"", match[1], _header_lines(lines))


def _header_lines(lines: list[bytes]) -> Headers:
    """The header fields of a head's lines (the first line, the start line, is skipped)."""
    fields = lines[1:]
    if fields and _FIELDS.fullmatch(b"\n".join(fields) + b"\n"):  # the usual, valid head
        return [
            (name.lower(), value.strip(b" \t"))
            for name, _, value in (line.removesuffix(b"\r").partition(b":") for line in fields)
        ]
    headers: Headers = []
    for raw in lines[1:]:
        line = raw.removesuffix(b"\r")
        if not line or line[0] in b" \t":
            raise HeadError("obsolete line folding in a response head")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise HeadError(f"bad header line {line[:80]!r}")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise HeadError(f"bad header value for {name!r}")
        headers.append((name.lower(), value))
    return headers
