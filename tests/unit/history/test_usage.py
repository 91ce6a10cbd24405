"""Usage from a relayed response: every server's shape, any chunking, bounded memory."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapd.history.usage import (
    HEAD_BYTES,
    TAIL_BYTES,
    Usage,
    UsageParser,
    generation_rate,
    parse_usage,
)
from swapd.http import metrics


def sse(*events: Any, done: bool = True, crlf: bool = False) -> bytes:
    end = b"\r\n\r\n" if crlf else b"\n\n"
    out = b"".join(b"data: " + json.dumps(e).encode() + end for e in events)
    return out + (b"data: [DONE]" + end if done else b"")


def chunk(i: int, text: str = "tok ") -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"delta": {"content": text}}]}


USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
TIMINGS = {
    "cache_n": 3,
    "prompt_n": 9,
    "prompt_ms": 18.0,
    "prompt_per_second": 500.0,
    "predicted_n": 20,
    "predicted_ms": 209.4,
    "predicted_per_second": 95.5,
}

OPENAI_JSON = json.dumps(
    {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"message": {"content": "hi"}}],
        "usage": USAGE,
    }
).encode()
OPENAI_STREAM = sse(*[chunk(i) for i in range(30)], {"choices": [], "usage": USAGE})
LLAMA_STREAM = sse(
    *[chunk(i) for i in range(30)],
    {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": USAGE, "timings": TIMINGS},
)
LLAMA_COMPLETION = json.dumps(
    {
        "content": "text",
        "tokens_predicted": 20,
        "tokens_evaluated": 12,
        "generation_settings": {"n_predict": 20, "temperature": 0.8},
        "timings": TIMINGS,
    }
).encode()
EMBEDDINGS = json.dumps(
    {
        "object": "list",
        "data": [{"embedding": [0.5] * 8}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
).encode()
RESPONSES_STREAM = sse(
    {"type": "response.output_text.delta", "delta": "hi"},
    {
        "type": "response.completed",
        "response": {
            "usage": {
                "input_tokens": 30,
                "output_tokens": 7,
                "input_tokens_details": {"cached_tokens": 10},
            }
        },
    },
    done=False,
)


def anthropic_stream(deltas: int) -> bytes:
    events = [
        {
            "type": "message_start",
            "message": {
                "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 4}
            },
        }
    ]
    events += [{"type": "content_block_delta", "delta": {"text": "word "}}] * deltas
    events += [{"type": "message_delta", "usage": {"output_tokens": 300}}]
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n"
        for e in events
    )


@pytest.mark.parametrize(
    ("body", "stream", "expected"),
    [
        (OPENAI_JSON, False, Usage(prompt_tokens=12, completion_tokens=5)),
        (OPENAI_STREAM, True, Usage(prompt_tokens=12, completion_tokens=5)),
        (
            LLAMA_STREAM,
            True,
            Usage(
                prompt_tokens=12,
                completion_tokens=5,
                cached_tokens=3,
                tokens_per_s=95.5,
                prompt_per_s=500.0,
            ),
        ),
        (
            LLAMA_COMPLETION,
            False,
            Usage(
                prompt_tokens=12,
                completion_tokens=20,
                cached_tokens=3,
                tokens_per_s=95.5,
                prompt_per_s=500.0,
            ),
        ),
        (EMBEDDINGS, False, Usage(prompt_tokens=4)),
        (RESPONSES_STREAM, True, Usage(prompt_tokens=30, completion_tokens=7, cached_tokens=10)),
        (
            anthropic_stream(3),
            True,
            Usage(prompt_tokens=25, completion_tokens=300, cached_tokens=4),
        ),
        (
            sse({"content": "a", "timings": TIMINGS}, done=False, crlf=True),
            True,
            # No usage: counts from timings, the prompt being evaluated + cached tokens.
            Usage(
                prompt_tokens=12,
                completion_tokens=20,
                cached_tokens=3,
                tokens_per_s=95.5,
                prompt_per_s=500.0,
            ),
        ),
        (
            json.dumps([{"content": "a"}, {"content": "b", "timings": TIMINGS}]).encode(),
            False,
            Usage(
                prompt_tokens=12,
                completion_tokens=20,
                cached_tokens=3,
                tokens_per_s=95.5,
                prompt_per_s=500.0,
            ),
        ),
        (b'{"error": {"message": "upstream unreachable"}}', False, Usage()),
        (b"", False, Usage()),
        (b"", True, Usage()),
        (bytes(range(256)) * 10, False, Usage()),
        (sse(chunk(0), done=True), True, Usage()),
    ],
)
def test_figures_of_each_shape(body: bytes, stream: bool, expected: Usage) -> None:
    assert parse_usage(body, event_stream=stream) == expected


def test_anthropic_input_tokens_come_from_the_head_of_a_long_stream() -> None:
    body = anthropic_stream(2000)
    assert len(body) > 4 * TAIL_BYTES
    usage = parse_usage(body, event_stream=True)
    assert (usage.prompt_tokens, usage.completion_tokens) == (25, 300)


def test_a_large_json_body_is_read_from_its_tail() -> None:
    big = json.dumps(
        {"data": [{"embedding": [0.1] * 20_000}], "usage": {"prompt_tokens": 9, "total_tokens": 9}}
    ).encode()
    assert len(big) > 2 * TAIL_BYTES
    assert parse_usage(big) == Usage(prompt_tokens=9)


def test_a_final_event_larger_than_the_tail_still_gives_its_timings() -> None:
    # llama-server's last /completion event carries the prompt: the counts
    # before it are out of reach, the timings after it are not.
    final = {
        "content": "",
        "stop": True,
        "tokens_predicted": 20,
        "tokens_evaluated": 12,
        "prompt": "p " * (TAIL_BYTES),
        "timings": TIMINGS,
    }
    usage = parse_usage(sse({"content": "a"}, final, done=False), event_stream=True)
    assert usage == Usage(
        prompt_tokens=12,
        completion_tokens=20,
        cached_tokens=3,
        tokens_per_s=95.5,
        prompt_per_s=500.0,
    )


def test_a_later_zero_count_does_not_replace_a_real_one() -> None:
    body = sse(
        {"usage": {"prompt_tokens": 8, "completion_tokens": 3}},
        {"usage": {"prompt_tokens": 0, "completion_tokens": 0}},
    )
    assert parse_usage(body, event_stream=True) == Usage(prompt_tokens=8, completion_tokens=3)


def test_zero_counts_alone_are_zero_not_unknown() -> None:
    body = json.dumps({"usage": {"prompt_tokens": 0, "completion_tokens": 0}}).encode()
    assert parse_usage(body) == Usage(prompt_tokens=0, completion_tokens=0)


def test_text_that_merely_mentions_usage_is_not_read_as_figures() -> None:
    said = 'the "usage" field has "prompt_tokens": 99'
    body = sse(chunk(0, said), {"choices": [], "usage": USAGE})
    assert parse_usage(body, event_stream=True) == Usage(prompt_tokens=12, completion_tokens=5)


# ----- any chunking gives the same answer ------------------------------------------

event_payloads = st.one_of(
    st.builds(chunk, st.integers(), st.text(max_size=40)),
    st.just({"choices": [], "usage": USAGE}),
    st.just({"content": "", "timings": TIMINGS}),
    st.builds(
        lambda n: {"usage": {"input_tokens": n, "output_tokens": n + 1}}, st.integers(0, 10**6)
    ),
    st.builds(lambda pad: {"content": "x" * pad}, st.integers(0, 3 * TAIL_BYTES)),
)
pads = st.integers(0, 3 * TAIL_BYTES).map(lambda n: {"content": "x" * n})
# A figure somewhere between two pads: in the head, the tail, both or neither.
framed = st.tuples(pads, event_payloads, pads, event_payloads, pads)
bodies = st.one_of(
    framed.map(lambda es: (sse(*es), True)),
    framed.map(lambda es: (json.dumps(es).encode(), False)),
    st.lists(event_payloads, max_size=40).map(lambda es: (sse(*es), True)),
    st.lists(event_payloads, max_size=5).map(lambda es: (json.dumps(es).encode(), False)),
    st.sampled_from(
        [(OPENAI_JSON, False), (LLAMA_COMPLETION, False), (anthropic_stream(900), True)]
    ),
    st.binary(max_size=2 * TAIL_BYTES).map(lambda b: (b, False)),
)


def fed(body: bytes, stream: bool, cuts: list[int], tail: int, head: int) -> UsageParser:
    parser = UsageParser(stream, tail_bytes=tail, head_bytes=head)
    start = 0
    for cut in [*sorted(cuts), len(body)]:
        parser.feed(body[start:cut])
        start = cut
    return parser


@given(bodies, st.data())
def test_any_split_gives_the_same_result(case: tuple[bytes, bool], data: st.DataObject) -> None:
    body, stream = case
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=30))
    parser = fed(body, stream, cuts, TAIL_BYTES, HEAD_BYTES)
    assert parser.total == len(body)
    assert parser.result() == parse_usage(body, event_stream=stream)


small_events = st.one_of(
    st.just({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
    st.just({"timings": {"prompt_n": 1, "predicted_n": 2, "predicted_per_second": 9.5}}),
    st.builds(lambda n: {"usage": {"input_tokens": n, "output_tokens": n}}, st.integers(0, 99)),
    st.builds(lambda n: {"c": "x" * n}, st.integers(0, 80)),
)


@settings(max_examples=500)
@given(
    st.lists(small_events, max_size=12),
    st.booleans(),
    st.integers(8, 120),
    st.integers(0, 40),
    st.data(),
)
def test_any_split_gives_the_same_result_at_small_bounds(
    events: list[dict[str, Any]], stream: bool, tail: int, head: int, data: st.DataObject
) -> None:
    # Small buffers put the edges of the head and the tail everywhere in the body.
    body = sse(*events, done=False) if stream else json.dumps(events).encode()
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=20))
    whole = fed(body, stream, [], tail, head)
    assert fed(body, stream, cuts, tail, head).result() == whole.result()


@pytest.mark.parametrize("piece", [1000, 7000, TAIL_BYTES + 1])
def test_a_figure_beyond_the_tail_is_out_of_reach_however_the_body_came(piece: int) -> None:
    # Between the last TAIL_BYTES and twice that: held for a while by a chunked
    # feed, never by a whole one; the answer must not depend on which.
    body = sse(
        {"content": "x" * TAIL_BYTES},
        {"choices": [], "usage": USAGE},
        {"content": "x" * (TAIL_BYTES + 4000)},
        done=False,
    )
    assert len(body) > 2 * TAIL_BYTES
    parser = UsageParser(True)
    for start in range(0, len(body), piece):
        parser.feed(body[start : start + piece])
    assert parser.result() == parse_usage(body, event_stream=True) == Usage()


@given(st.lists(st.integers(1, 70_000), max_size=60))
def test_memory_stays_bounded_whatever_is_fed(sizes: list[int]) -> None:
    parser = UsageParser(True)
    for size in sizes:
        parser.feed(b"data: {}\n\n" * (size // 10 + 1))
        assert parser.held <= HEAD_BYTES + 2 * TAIL_BYTES


def test_result_may_be_read_while_feeding() -> None:
    parser = UsageParser(True)
    parser.feed(sse({"usage": {"prompt_tokens": 1, "completion_tokens": 1}}, done=False))
    assert parser.result().completion_tokens == 1
    parser.feed(sse({"usage": {"prompt_tokens": 1, "completion_tokens": 9}}))
    assert parser.result().completion_tokens == 9


# ----- compatible with the tail scan of /metrics ----------------------------------

raw_figures = st.builds(
    lambda key, n, spaces: f'"{key}"{spaces}:{spaces}{n}'.encode(),
    st.sampled_from(
        [
            "prompt_tokens",
            "input_tokens",
            "tokens_evaluated",
            "completion_tokens",
            "output_tokens",
            "tokens_predicted",
        ]
    ),
    st.integers(0, 10**9),
    st.sampled_from(["", " ", "\n"]),
)
junk = st.binary(max_size=50).filter(lambda b: b"tokens" not in b and b'"' not in b)


@given(st.lists(raw_figures | junk, max_size=30), st.booleans())
def test_opaque_bodies_give_what_metrics_parse_usage_gives(
    parts: list[bytes], stream: bool
) -> None:
    body = b"{{" + b",".join(parts)  # never valid JSON: only the byte scan applies
    if len(body) > TAIL_BYTES:
        body = body[-TAIL_BYTES:]
    usage = parse_usage(body, event_stream=stream)
    assert (usage.prompt_tokens or 0, usage.completion_tokens or 0) == metrics.parse_usage(body)


@pytest.mark.parametrize(
    "body", [OPENAI_JSON, OPENAI_STREAM, LLAMA_STREAM, LLAMA_COMPLETION, EMBEDDINGS]
)
def test_real_shapes_agree_with_metrics_parse_usage(body: bytes) -> None:
    usage = parse_usage(body, event_stream=body.startswith(b"data:"))
    assert (usage.prompt_tokens or 0, usage.completion_tokens or 0) == metrics.parse_usage(body)


# ----- speed --------------------------------------------------------------------


def test_generation_rate_prefers_the_servers_own_figure() -> None:
    usage = Usage(completion_tokens=100, tokens_per_s=42.0)
    assert generation_rate(usage, stream=True, ttfb_s=0.1, duration_s=2.1) == 42.0


def test_generation_rate_of_a_stream_is_tokens_over_first_to_last_byte() -> None:
    usage = Usage(completion_tokens=100)
    assert generation_rate(usage, stream=True, ttfb_s=0.5, duration_s=2.5) == 50.0


@pytest.mark.parametrize(
    ("usage", "stream", "ttfb", "duration"),
    [
        (Usage(completion_tokens=100), False, 0.5, 2.5),  # a plain answer arrives whole
        (Usage(completion_tokens=100), True, 2.5, 2.5),  # no time between first and last byte
        (Usage(completion_tokens=100), True, None, 2.5),
        (Usage(completion_tokens=0), True, 0.5, 2.5),
        (Usage(), True, 0.5, 2.5),
    ],
)
def test_generation_rate_unknown(
    usage: Usage, stream: bool, ttfb: float | None, duration: float | None
) -> None:
    assert generation_rate(usage, stream=stream, ttfb_s=ttfb, duration_s=duration) is None
