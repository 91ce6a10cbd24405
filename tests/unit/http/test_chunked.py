import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.http.chunked import ChunkedDecoder, ChunkedError


def encode(chunks: list[bytes], extension: bool = False, trailers: bool = False) -> bytes:
    out = b""
    for chunk in chunks:
        out += b"%x%s\r\n%s\r\n" % (len(chunk), b";ext=1" if extension else b"", chunk)
    out += b"0\r\n" + (b"X-Trailer: yes\r\n" if trailers else b"") + b"\r\n"
    return out


@given(
    st.lists(st.binary(min_size=1, max_size=300), max_size=20),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=50),
    st.booleans(),
    st.booleans(),
)
def test_any_split_decodes_to_the_payload(
    chunks: list[bytes], cuts: list[int], extension: bool, trailers: bool
) -> None:
    wire = encode(chunks, extension, trailers)
    decoder = ChunkedDecoder()
    got = b""
    pos = 0
    i = 0
    while pos < len(wire):
        step = cuts[i % len(cuts)]
        got += decoder.feed(wire[pos : pos + step])
        pos += step
        i += 1
    assert decoder.done
    assert got == b"".join(chunks)
    assert decoder.leftover == b""


def test_one_read_gives_one_piece_and_leftover() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(encode([b"data: a\n\n", b"data: b\n\n"]) + b"HTTP/1.1") == (
        b"data: a\n\ndata: b\n\n"
    )
    assert decoder.done and decoder.leftover == b"HTTP/1.1"


def test_not_done_until_the_last_chunk() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"5\r\nhel") == b"hel"
    assert decoder.feed(b"lo\r\n") == b"lo"
    assert not decoder.done
    assert decoder.feed(b"0\r\n\r\n") == b""
    assert decoder.done


@pytest.mark.parametrize("wire", [b"zz\r\n", b"3\r\nabcXY", b"-1\r\n", b"1" * 5000])
def test_errors(wire: bytes) -> None:
    with pytest.raises(ChunkedError):
        ChunkedDecoder().feed(wire)
