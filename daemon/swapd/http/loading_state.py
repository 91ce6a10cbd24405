"""The `sendLoadingState` stream: loading progress as reasoning deltas.

While a streaming chat-completions request waits for its model to load, the
client receives SSE chunks whose `reasoning_content` tells what is going on,
then the real answer on the same stream. The text and its timing are
llama-swap's (docs/compat.md, Loading state stream): a bar, the model line, a
tick every 750 ms (a queue position when it changed, else a remark when one
is due, else a dot), then `Done! (N.NNs)` and the bar again. Text is "typed"
in 5-character pieces at 75 characters/s.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import trio

from swapd.router.events import Progress

BAR = "━━━━━"
TICK_SECONDS = 0.75
PIECE_CHARS = 5
CHARS_PER_SECOND = 75.0
REMARK_GAP_SECONDS = (5, 9)

REMARKS: tuple[str, ...] = (
    "Warming up the tensors",
    "Counting attention heads",
    "Paging weights into memory",
    "Quantising expectations",
    "Reticulating splines",
    "Aligning the embeddings",
    "Convincing the KV cache to cooperate",
    "Untangling the feed-forward layers",
    "Dusting off the vocabulary",
    "Rehearsing the first token",
    "Negotiating with the GPU",
    "Shuffling the layer norms",
    "Loading more parameters than strictly necessary",
    "Sharpening the softmax",
    "Teaching the model some manners",
    "Inflating the context window",
)

_encoder = msgspec.json.Encoder()


class _Delta(msgspec.Struct):
    reasoning_content: str


class _Choice(msgspec.Struct):
    delta: _Delta


class _Chunk(msgspec.Struct):
    choices: list[_Choice]


def sse_fragment(text: str) -> bytes:
    """One SSE event carrying `text` as a reasoning delta, exactly llama-swap's shape."""
    chunk = _Chunk(choices=[_Choice(delta=_Delta(reasoning_content=text))])
    return b"data: " + _encoder.encode(chunk) + b"\n\n"


def pieces(text: str, size: int = PIECE_CHARS) -> list[str]:
    """`text` cut into pieces of `size` characters (the last may be shorter)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def done_text(seconds: float) -> str:
    return f"Done! ({seconds:.2f}s)\n"


class LoadingWriter:
    """Writes the loading text through `send` until `finish()` is called.

    `send(bytes)` writes one SSE event to the client. The writer never cuts an
    event: finishing is a request it honours between events.
    """

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        model_id: str,
        *,
        remarks: Sequence[str] = REMARKS,
        rng: random.Random | None = None,
    ) -> None:
        self._send = send
        self._model_id = model_id
        self._rng = rng or random.Random()
        self._remarks = list(remarks)
        self._rng.shuffle(self._remarks)
        self._finishing = trio.Event()
        self._stopped = trio.Event()
        self._position: int | None = None
        self._position_pending = False
        self._started = 0.0

    def note_progress(self, event: Progress) -> None:
        """A router Progress event: a new queue position is shown at the next tick."""
        position = event.position
        if position is not None and position != self._position:
            self._position = position
            self._position_pending = True

    async def _pause(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            await self._finishing.wait()

    async def _type(self, text: str) -> None:
        chunks = pieces(text)
        for i, piece in enumerate(chunks):
            await self._send(sse_fragment(piece))
            if i + 1 < len(chunks) and not self._finishing.is_set():
                await self._pause(len(piece) / CHARS_PER_SECOND)

    async def run(self, progress: trio.MemoryReceiveChannel[Progress] | None = None) -> None:
        """Write the header, then tick until finishing; returns once nothing more will be sent."""
        self._started = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                if progress is not None:
                    nursery.start_soon(self._read_progress, progress)
                await self._type(BAR + "\n")
                await self._type(f"swapd loading model: {self._model_id}\n")
                await self._tick_until_finished()
                nursery.cancel_scope.cancel()
        finally:
            self._stopped.set()

    async def _read_progress(self, progress: trio.MemoryReceiveChannel[Any]) -> None:
        async for event in progress:
            self.note_progress(event)

    async def _tick_until_finished(self) -> None:
        next_remark = trio.current_time()
        remark_index = 0
        while True:
            await self._pause(TICK_SECONDS)
            if self._finishing.is_set():
                return
            now = trio.current_time()
            if self._position_pending:
                self._position_pending = False
                await self._send(sse_fragment("\n"))
                await self._type(f"Queue position: #{self._position}")
                await self._send(sse_fragment(" "))
                next_remark = now + self._rng.randint(*REMARK_GAP_SECONDS)
            elif self._remarks and now >= next_remark:
                await self._send(sse_fragment("\n"))
                await self._type(self._remarks[remark_index % len(self._remarks)])
                await self._send(sse_fragment(" "))
                remark_index += 1
                next_remark = now + self._rng.randint(*REMARK_GAP_SECONDS)
            else:
                await self._send(sse_fragment("."))

    async def finish(self) -> None:
        """Stop ticking, then write `Done!` and the closing bar."""
        self._finishing.set()
        await self._stopped.wait()
        elapsed = trio.current_time() - self._started
        await self._send(sse_fragment("\n"))
        await self._type(done_text(elapsed))
        await self._type(BAR + "\n")
        await self._send(sse_fragment(" \n"))
