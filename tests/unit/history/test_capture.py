"""The capture buffer: bounded in bytes, oldest out first, by request id, secrets hidden."""

from __future__ import annotations

import base64

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.history.capture import (
    MIB,
    OVERHEAD,
    REDACTED,
    BodyCollector,
    Capture,
    CaptureBuffer,
    capture_headers,
    capture_parts,
)


def cap(i: int, body: int = 1000, path: str = "/v1/chat/completions") -> Capture:
    return Capture(id=i, req_path=path, req_body=b"q" * body, resp_body=b"a" * body)


def test_off_when_zero_or_negative() -> None:
    for megabytes in (0, -1):
        buffer = CaptureBuffer(megabytes)
        assert not buffer.enabled and buffer.budget == 0 and buffer.max_body == 0
        assert buffer.add(cap(1, body=0)) is False
        assert buffer.get(1) is None and len(buffer) == 0


def test_default_budget_is_in_mebibytes() -> None:
    buffer = CaptureBuffer(5)
    assert buffer.enabled and buffer.budget == 5 * MIB and buffer.max_body == 5 * MIB // 2


def test_fetch_by_id() -> None:
    buffer = CaptureBuffer(1)
    assert buffer.add(cap(7))
    assert buffer.get(7) == cap(7) and 7 in buffer and 8 not in buffer
    assert buffer.get(8) is None


def test_oldest_are_evicted_to_make_room() -> None:
    buffer = CaptureBuffer(1)
    size = cap(0, body=200_000).size()
    fits = MIB // size
    for i in range(fits + 2):
        assert buffer.add(cap(i, body=200_000))
    assert buffer.ids() == list(range(2, fits + 2))
    assert buffer.used == fits * size <= buffer.budget


def test_a_capture_larger_than_the_budget_is_not_kept_and_evicts_nothing() -> None:
    buffer = CaptureBuffer(1)
    buffer.add(cap(1))
    assert buffer.add(cap(2, body=MIB)) is False
    assert buffer.ids() == [1]


def test_same_id_replaces() -> None:
    buffer = CaptureBuffer(1)
    buffer.add(cap(1, body=10))
    buffer.add(cap(2, body=10))
    buffer.add(cap(1, body=20))
    assert buffer.ids() == [2, 1] and buffer.get(1) == cap(1, body=20)
    assert buffer.used == cap(2, body=10).size() + cap(1, body=20).size()


def test_shrinking_evicts_and_zero_empties() -> None:
    buffer = CaptureBuffer(2)
    for i in range(3):
        buffer.add(cap(i, body=200_000))
    buffer.resize(1)
    assert buffer.ids() == [1, 2] and buffer.used <= MIB
    buffer.resize(0)
    assert len(buffer) == 0 and buffer.used == 0 and not buffer.enabled


def test_size_counts_bodies_headers_and_overhead() -> None:
    c = Capture(
        id=1,
        req_path="/p",
        req_headers={"ab": "cd"},
        req_body=b"xyz",
        resp_headers={"e": "f"},
        resp_body=None,
    )
    assert c.size() == OVERHEAD + 2 + 4 + 3 + 2


def test_json_is_llama_swaps_shape_with_base64_bodies() -> None:
    c = Capture(id=42, req_path="/v1/chat/completions", req_headers={"a": "b"}, req_body=b"{}")
    out = msgspec.json.decode(msgspec.json.encode(c))
    assert out == {
        "id": 42,
        "req_path": "/v1/chat/completions",
        "req_headers": {"a": "b"},
        "req_body": base64.b64encode(b"{}").decode(),
        "resp_headers": None,
        "resp_body": None,
        "truncated": False,
    }


def test_headers_first_value_lower_case_secrets_redacted() -> None:
    raw = [
        (b"Content-Type", b"application/json"),
        (b"Authorization", b"Bearer sk-secret"),
        (b"x-api-key", b"k"),
        (b"Cookie", b"a=b"),
        (b"Set-Cookie", b"c=d"),
        (b"Proxy-Authorization", b"Basic x"),
        (b"X-Thing", b"one"),
        (b"x-thing", b"two"),
    ]
    assert capture_headers(raw) == {
        "content-type": "application/json",
        "authorization": REDACTED,
        "x-api-key": REDACTED,
        "cookie": REDACTED,
        "set-cookie": REDACTED,
        "proxy-authorization": REDACTED,
        "x-thing": "one",
    }


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("/v1/chat/completions", (True, True)),
        ("/v1/audio/speech", (True, False)),
        ("/v1/images/generations", (True, False)),
        ("/v1/audio/transcriptions", (False, True)),
        ("/v1/audio/voices", (False, True)),
        ("/v1/images/edits", (False, False)),
        ("/sdapi/v1/img2img", (False, False)),
    ],
)
def test_parts_kept_by_route(path: str, parts: tuple[bool, bool]) -> None:
    assert capture_parts(path) == parts


@given(st.lists(st.binary(max_size=40), max_size=20), st.integers(0, 200))
def test_collector_keeps_exactly_the_first_limit_bytes(chunks: list[bytes], limit: int) -> None:
    collector = BodyCollector(limit)
    for chunk in chunks:
        collector.feed(chunk)
    whole = b"".join(chunks)
    assert collector.body() == whole[:limit]
    assert collector.truncated == (len(whole) > limit)


# A model of the buffer: a list of (id, size), oldest first.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 30), st.integers(0, 700_000)),
        st.tuples(st.just("discard"), st.integers(0, 30), st.just(0)),
        st.tuples(st.just("resize"), st.integers(-1, 3), st.just(0)),
    ),
    max_size=60,
)


@given(ops)
def test_buffer_matches_a_simple_model(script: list[tuple[str, int, int]]) -> None:
    buffer = CaptureBuffer(2)
    model: list[tuple[int, int]] = []
    budget = 2 * MIB
    for op, key, body in script:
        if op == "add":
            c = cap(key, body=body)
            size = c.size()
            stored = buffer.add(c)
            assert stored == (size <= budget)
            if stored:
                model = [(k, s) for k, s in model if k != key]
                while model and sum(s for _, s in model) + size > budget:
                    model.pop(0)
                model.append((key, size))
        elif op == "discard":
            buffer.discard(key)
            model = [(k, s) for k, s in model if k != key]
        else:
            buffer.resize(key)
            budget = key * MIB if key > 0 else 0
            while model and sum(s for _, s in model) > budget:
                model.pop(0)
        assert buffer.ids() == [k for k, _ in model]
        assert buffer.used == sum(s for _, s in model) <= budget
