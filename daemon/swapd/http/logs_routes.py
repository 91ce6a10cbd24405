"""`/logs` and `/logs/stream[/proxy|/upstream|/<model>][?no-history]` (docs/compat.md).

Plain text, one log line per line. A stream starts with the buffered
history (unless `no-history` is in the query) and then follows live lines
until the client leaves or swapd stops. Each client's feed is bounded; when
it falls behind, lines are dropped for it alone and a marker says how many.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator

from swapd.http.errors import ApiError
from swapd.http.services import Services
from swapd.process.logs import LogRing

STREAM_HEADERS = {
    "content-type": "text/plain; charset=utf-8",
    "x-content-type-options": "nosniff",
    "x-accel-buffering": "no",
    "cache-control": "no-cache",
}
CLIENT_LINES = 1024
INVALID = "invalid logger. Use 'proxy', 'upstream' or a model's ID"


def ring_for(services: Services, name: str) -> LogRing:
    """The ring a stream name selects: mux, proxy, upstream, or a local model (ID or alias)."""
    name = name.split("?", 1)[0].strip("/")
    ring = services.logs.named(name)
    if ring is not None:
        return ring
    model_id = services.resolver.local_id(name)
    ring = services.logs.model_ring(model_id) if model_id else None
    if ring is None:
        raise ApiError(400, INVALID)
    return ring


def history_text(ring: LogRing) -> bytes:
    return "".join(f"{line.text}\n" for line in ring.lines()).encode()


def log_stream(services: Services, ring: LogRing, history: bool) -> AsyncIterator[bytes]:
    """The body of a log stream. It subscribes now, at request time, so no line
    written after the request arrived is missed while the headers go out."""
    sub = services.track(ring.subscribe(maxlen=CLIENT_LINES))
    text = history_text(ring) if history else b""

    async def body() -> AsyncIterator[bytes]:
        with sub:
            if text:
                yield text
            async for line in sub:
                yield f"{line.text}\n".encode()

    stream = body()
    weakref.finalize(stream, sub.close)  # closed even if the body is never iterated
    return stream
