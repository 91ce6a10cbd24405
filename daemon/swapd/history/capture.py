"""The capture buffer (`captureBuffer`): the last requests and responses, in memory, by id.

llama-swap's key, in MB (MiB); the default is 5 and 0 or less turns
captures off. The buffer holds whole captures, oldest evicted first, until
their bytes fit the budget. Each body is kept up to half the budget
(`max_body`; a longer one is cut and the capture marked `truncated`), so a
capture always fits and a single huge answer cannot flush out everything
else. Sizes count the bytes kept (bodies, header names and values) plus a
fixed overhead per capture, uncompressed.

Headers are kept with their first value and lower-cased names, and
credentials are replaced by `[REDACTED]`. Which bodies a route keeps follows
llama-swap (`capture_parts`): media answers and uploaded files are not kept.
A capture encodes to llama-swap's JSON (`id`, `req_path`, `req_headers`,
`req_body`, `resp_headers`, `resp_body`, bodies in base64) plus `truncated`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import msgspec

MIB = 1024 * 1024
#: Bytes counted for each capture beyond its bodies and headers.
OVERHEAD = 256
REDACTED = "[REDACTED]"
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)

# path -> (keep the request body, keep the response body); every other path keeps both.
_PARTS: dict[str, tuple[bool, bool]] = {
    "/v1/audio/speech": (True, False),
    "/v1/images/generations": (True, False),
    "/sdapi/v1/txt2img": (True, False),
    "/v1/audio/voices": (False, True),
    "/v1/audio/transcriptions": (False, True),
    "/v1/images/edits": (False, False),
    "/sdapi/v1/img2img": (False, False),
}


class Capture(msgspec.Struct, frozen=True, kw_only=True):
    """One request and its response, as relayed."""

    id: int
    """The request's id (`RequestRecord.id`)."""
    req_path: str
    req_headers: dict[str, str] | None = None
    req_body: bytes | None = None
    resp_headers: dict[str, str] | None = None
    resp_body: bytes | None = None
    truncated: bool = False
    """A body was longer than `CaptureBuffer.max_body` and was cut there."""

    def size(self) -> int:
        """Bytes this capture counts against the budget."""
        total = OVERHEAD + len(self.req_path)
        for body in (self.req_body, self.resp_body):
            if body is not None:
                total += len(body)
        for headers in (self.req_headers, self.resp_headers):
            if headers is not None:
                total += sum(len(k) + len(v) for k, v in headers.items())
        return total


def capture_parts(path: str) -> tuple[bool, bool]:
    """Whether a capture of `path` keeps (the request body, the response body)."""
    return _PARTS.get(path, (True, True))


def capture_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a capture keeps them: first value per lower-cased name, secrets hidden."""
    out: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name not in out:
            out[name] = REDACTED if name in SECRET_HEADERS else raw_value.decode("latin-1")
    return out


class BodyCollector:
    """The first `limit` bytes of a body fed in chunks (a response being relayed)."""

    __slots__ = ("_kept", "_limit", "truncated")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self._limit - len(self._kept)
        if len(chunk) <= room:
            self._kept += chunk
        else:
            if room > 0:
                self._kept += chunk[:room]
            self.truncated = True

    def body(self) -> bytes:
        return bytes(self._kept)


class CaptureBuffer:
    """Captures by request id, bounded in bytes, oldest evicted first."""

    def __init__(self, megabytes: int) -> None:
        self._captures: OrderedDict[int, Capture] = OrderedDict()
        self._sizes: dict[int, int] = {}
        self._used = 0
        self._budget = 0
        self.resize(megabytes)

    @property
    def enabled(self) -> bool:
        return self._budget > 0

    @property
    def budget(self) -> int:
        """Bytes the buffer may hold; 0 when captures are off."""
        return self._budget

    @property
    def used(self) -> int:
        return self._used

    @property
    def max_body(self) -> int:
        """The most of each body a capture keeps (cut beyond, with `truncated`)."""
        return self._budget // 2

    def resize(self, megabytes: int) -> None:
        """A new `captureBuffer` (a reload): evicts the oldest until the rest fits."""
        self._budget = megabytes * MIB if megabytes > 0 else 0
        self._evict_until(self._budget)

    def add(self, capture: Capture) -> bool:
        """Keep `capture` (replacing one with its id); False if off or larger than the budget."""
        size = capture.size()
        if size > self._budget:
            return False
        self.discard(capture.id)
        self._evict_until(self._budget - size)
        self._captures[capture.id] = capture
        self._sizes[capture.id] = size
        self._used += size
        return True

    def get(self, request_id: int) -> Capture | None:
        return self._captures.get(request_id)

    def discard(self, request_id: int) -> None:
        if self._captures.pop(request_id, None) is not None:
            self._used -= self._sizes.pop(request_id)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._captures

    def __len__(self) -> int:
        return len(self._captures)

    def ids(self) -> list[int]:
        """Ids held, oldest first."""
        return list(self._captures)

    def _evict_until(self, room: int) -> None:
        while self._used > room and self._captures:
            oldest, _ = self._captures.popitem(last=False)
            self._used -= self._sizes.pop(oldest)
