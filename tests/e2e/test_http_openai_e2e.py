"""The real llama-server with SmolLM2 behind swapd, through the openai SDK: A, B, then A."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.e2e.conftest import RunningSwapd

pytestmark = pytest.mark.e2e


def test_a_then_b_then_a(start_swapd: Callable[..., RunningSwapd]) -> None:
    swapd = start_swapd(swap=True)
    client = swapd.openai()
    answers = []
    for model in ("A", "B", "A"):
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=12,
            temperature=0,
        )
        answers.append(reply.choices[0].message.content or "")
        assert swapd.running() == {model}, "one swap group: only the asked model runs"
    assert all(answer.strip() for answer in answers), answers
    stream = client.chat.completions.create(
        model="B", messages=[{"role": "user", "content": "Count to three."}], max_tokens=12,
        stream=True,
    )  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed.strip()
    assert swapd.events.loads() == {"A": 2, "B": 2}
