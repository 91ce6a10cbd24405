import json
import random
from dataclasses import dataclass

import pytest
import trio
from trio.testing import MockClock

from swapd.http.loading_state import BAR, LoadingWriter, done_text, pieces, sse_fragment


def decode(events: list[bytes]) -> list[str]:
    out = []
    for event in events:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        chunk = json.loads(event[6:])
        assert list(chunk) == ["choices"]
        out.append(chunk["choices"][0]["delta"]["reasoning_content"])
    return out


def test_fragment_wire_format() -> None:
    assert sse_fragment('a"b') == b'data: {"choices":[{"delta":{"reasoning_content":"a\\"b"}}]}\n\n'


def test_pieces_rejoin() -> None:
    assert pieces("━━━━━\n") == ["━━━━━", "\n"]
    assert "".join(pieces("swapd loading model: x\n")) == "swapd loading model: x\n"
    assert all(len(p) <= 5 for p in pieces("abcdefghijklmnop"))


def test_done_text() -> None:
    assert done_text(1.234) == "Done! (1.23s)\n"


@dataclass
class Queued:
    position: int


@pytest.mark.trio
async def test_sequence_with_queue_position_and_remarks(autojump_clock: MockClock) -> None:
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    clock_start = trio.current_time()
    writer = LoadingWriter(send, "m1", remarks=["Remark one"], rng=random.Random(0))
    tx, rx = trio.open_memory_channel[object](10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run, rx)
        await tx.send(Queued(position=2))
        await trio.sleep(20)
        await writer.finish()
    text = "".join(decode(sent))
    assert text.startswith(f"{BAR}\nswapd loading model: m1\n")
    assert "\nQueue position: #2 " in text
    assert "\nRemark one " in text
    assert "." in text
    elapsed = trio.current_time() - clock_start
    assert text.endswith(f"\n{done_text(elapsed)}{BAR}\n \n")


@pytest.mark.trio
async def test_finish_right_away(autojump_clock: MockClock) -> None:
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    writer = LoadingWriter(send, "m1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run, None)
        await writer.finish()
    text = "".join(decode(sent))
    assert text == f"{BAR}\nswapd loading model: m1\n\n{done_text(0)}{BAR}\n \n"
