"""Writing HTTP/1.1 heads: the upstream client's requests and the server's responses.

Parsing is llhttp's (`swapd.http.parse`); writing stays here because it is
a format string and a check: no CR, LF or control byte can be smuggled into
a header or the request target, and every name is a token. Names are
written as given (the relay lower-cases them).
"""

from __future__ import annotations

import re
from http import HTTPStatus

Headers = list[tuple[bytes, bytes]]

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Whole-block check: one regex over all names instead of one per name; a
# block that fails goes field by field for the message.
_NAMES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+ )*")
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class HeadError(ValueError):
    """A head that cannot be written."""


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
