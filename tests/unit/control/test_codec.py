"""The sans-IO decoder: framing, bad lines, the size bound, any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapctl import codec, protocol
from tests.unit.control import strategies

MESSAGES = st.lists(strategies.for_union(protocol.ClientMessage), min_size=1, max_size=6)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(data)]:
        out.append(data[last:p])
        last = p
    return [c for c in out if c]


@given(MESSAGES, st.lists(st.integers(0, 10_000), max_size=20))
def test_any_chunking_yields_the_same_messages(messages: list, cuts: list[int]) -> None:
    data = b"".join(codec.encode(m) for m in messages)
    decoder = codec.client_decoder()
    got = []
    for chunk in _chunks(data, cuts):
        decoder.feed(chunk)
        got.extend(decoder)
    assert got == messages
    assert decoder.buffered == 0


def test_bad_lines_are_reported_and_decoding_continues() -> None:
    decoder = codec.client_decoder()
    decoder.feed(
        b"{bad\n"
        b"[1, 2]\n"
        b'{"id": 4}\n'
        b'{"type": "teleport", "id": "t1"}\n'
        b'{"type": "load", "id": 5}\n'
        b'{"type": "load", "id": 6, "model": 3}\n'
        b'{"type": "status", "id": 8}\n'
    )
    items = list(decoder)
    bad = items[:-1]
    assert all(isinstance(b, codec.BadLine) for b in bad)
    assert "not valid JSON" in bad[0].problem and bad[0].id is None
    assert "expected a JSON object" in bad[1].problem
    assert bad[2].problem == "missing the 'type' field" and bad[2].id == 4
    assert bad[3].problem == "unknown message type 'teleport'" and bad[3].id == "t1"
    assert "invalid 'load' message" in bad[4].problem and "model" in bad[4].problem
    assert bad[4].id == 5
    assert "Expected `str`" in bad[5].problem and bad[5].id == 6
    assert items[-1] == protocol.StatusRequest(id=8)


def test_boolean_ids_are_not_echoed() -> None:
    decoder = codec.client_decoder()
    decoder.feed(b'{"type": "teleport", "id": true}\n')
    item = decoder.next()
    assert isinstance(item, codec.BadLine) and item.id is None


def test_blank_lines_and_crlf_are_tolerated() -> None:
    decoder = codec.client_decoder()
    decoder.feed(b'\n  \r\n{"type":"status","id":1}\r\n\n')
    assert list(decoder) == [protocol.StatusRequest(id=1)]


def test_final_line_without_newline_is_decoded_at_eof() -> None:
    decoder = codec.client_decoder()
    decoder.feed(b'{"type":"status","id":1}')
    assert decoder.next() is None
    decoder.feed(b"")
    assert decoder.next() == protocol.StatusRequest(id=1)
    assert decoder.next() is None


def test_truncated_final_line_is_a_bad_line_at_eof() -> None:
    decoder = codec.client_decoder()
    decoder.feed(b'{"type":"sta')
    decoder.feed(b"")
    item = decoder.next()
    assert isinstance(item, codec.BadLine) and "not valid JSON" in item.problem


def test_line_at_the_limit_passes_and_one_byte_more_fails() -> None:
    limit = 64
    head, tail = b'{"type":"logs","source":"', b'"}'
    exact = head + b"x" * (limit - len(head) - len(tail)) + tail
    assert len(exact) == limit
    decoder = codec.client_decoder(max_line=limit)
    decoder.feed(exact + b"\n")
    assert isinstance(decoder.next(), protocol.LogsRequest)
    decoder.feed(exact + b" \n")
    with pytest.raises(codec.FrameTooLarge):
        decoder.next()


def test_oversized_line_is_refused_before_its_newline_arrives() -> None:
    decoder = codec.client_decoder(max_line=100)
    decoder.feed(b"x" * 100)
    assert decoder.next() is None
    decoder.feed(b"x")
    with pytest.raises(codec.FrameTooLarge) as info:
        decoder.next()
    assert info.value.limit == 100 and info.value.size == 101


def test_default_limit_is_one_mebibyte() -> None:
    assert protocol.MAX_LINE_BYTES == 1 << 20
    decoder = codec.client_decoder()
    decoder.feed(b"{" * (1 << 20))
    assert decoder.next() is None
    decoder.feed(b"{")
    with pytest.raises(codec.FrameTooLarge):
        decoder.next()


@given(st.binary(max_size=300))
def test_garbage_never_raises_anything_but_frame_too_large(data: bytes) -> None:
    decoder = codec.client_decoder(max_line=128)
    decoder.feed(data)
    decoder.feed(b"")
    try:
        for item in decoder:
            assert isinstance(item, (codec.BadLine, *protocol.ClientMessage.__args__))
    except codec.FrameTooLarge:
        assert len(data) > 128
