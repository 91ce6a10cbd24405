"""`GET /api/events`: Server-Sent Events of model states, swaps, requests, queue and logs.

Frames follow llama-swap's format (docs/compat.md, Events stream): `event:message`, then
`data:` with an envelope `{"type": ..., "data": "<JSON text>"}` whose `data`
is itself JSON in a string. Types: `modelStatus` (initially and on every
state change), `logData` (history first, then live proxy/upstream lines),
`inflight` (a snapshot first, then `upsert`/`remove` as requests come and go;
unlike llama-swap an empty snapshot still has `"requests": []`),
and swapd's own `swap`, `request`, `queue` and `decision` records (the bus
event encoded as JSON). A `lagged` frame says how many events a slow client
missed: its subscription is bounded and lossy, so it never slows the daemon.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from swapd.events import BusEvent
from swapd.http.inflight import InFlight
from swapd.http.services import Services
from swapd.process.events import LogBatch, LogLine

TOPICS = ("state", "swap", "request", "queue", "decision", "log", "inflight")
CLIENT_BUFFER = 1024
HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "x-accel-buffering": "no",
}

_encoder = msgspec.json.Encoder()


def frame(kind: str, data: Any) -> bytes:
    """One SSE frame; `data` is JSON-encoded, then embedded as a string."""
    inner = data if isinstance(data, str) else _encoder.encode(data).decode()
    return b"event:message\ndata:" + _encoder.encode({"type": kind, "data": inner}) + b"\n\n"


#: swapd states llama-swap does not have, as llama-swap's clients should see them.
LLAMA_SWAP_STATES: dict[str, str] = {"failed": "stopped"}


def model_status(services: Services) -> list[dict[str, Any]]:
    """Every local model (unlisted too) with its state, then the peer models."""
    settings = services.settings
    items: list[dict[str, Any]] = []
    for model_id in sorted(settings.models):
        model = settings.models[model_id]
        item: dict[str, Any] = {
            "id": model_id,
            "name": model.name,
            "description": model.description,
            # llama-swap's clients know no `failed`: it is a stop they did not ask for.
            "state": LLAMA_SWAP_STATES.get(state := services.state_of(model_id), state),
            "unlisted": model.unlisted,
            "peerID": "",
        }
        if model.aliases:
            item["aliases"] = list(model.aliases)
        items.append(item)
    for peer_id in sorted(settings.peers):
        for name in dict.fromkeys(settings.peers[peer_id].models):
            items.append(
                {
                    "id": f"{peer_id}/{name}",
                    "name": "",
                    "description": "",
                    "state": "",
                    "unlisted": False,
                    "peerID": peer_id,
                }
            )
    return items


def _log_data(source: str, text: str) -> dict[str, str]:
    return {"source": source, "data": text}


def encode_event(services: Services, event: BusEvent) -> bytes | None:
    topic = event.topic
    if topic == "state":
        return frame("modelStatus", model_status(services))
    if topic == "log" and isinstance(event, (LogLine, LogBatch)):
        source = "proxy" if event.source == "proxy" else "upstream"
        prefix = "" if source == "proxy" else f"[{event.source}] "
        texts = event.texts if isinstance(event, LogBatch) else (event.text,)
        return frame("logData", _log_data(source, "".join(f"{prefix}{t}\n" for t in texts)))
    if topic == "inflight" and isinstance(event, InFlight):
        if event.operation == "remove":
            return frame("inflight", {"operation": "remove", "id": event.request.id})
        return frame("inflight", {"operation": "upsert", "request": event.request})
    if topic in TOPICS:
        return frame(topic, msgspec.to_builtins(event))
    return None


def event_stream(services: Services) -> AsyncIterator[bytes]:
    """The frames for one client: the initial ones, then live events until closed.

    The subscription is made at request time, before the initial frames are
    computed, so nothing that happens while the headers go out is missed.
    """
    sub = services.track(services.bus.subscribe(topics=TOPICS, maxlen=CLIENT_BUFFER))
    hub = services.logs
    initial = [
        frame("logData", _log_data(source, "".join(f"{line.text}\n" for line in ring.lines())))
        for source, ring in (("proxy", hub.proxy), ("upstream", hub.upstream))
    ]
    initial.append(frame("modelStatus", model_status(services)))
    snapshot = services.in_flight.snapshot()
    initial.append(frame("inflight", {"operation": "snapshot", "requests": snapshot}))

    async def body() -> AsyncIterator[bytes]:
        with sub:
            for data in initial:
                yield data
            async for event in sub:
                lagged = sub.take_lagged()
                if lagged:
                    yield frame("lagged", {"dropped": lagged})
                encoded = encode_event(services, event)
                if encoded is not None:
                    yield encoded

    stream = body()
    weakref.finalize(stream, sub.close)  # closed even if the body is never iterated
    return stream
