"""End to end with the real llama-server: a model's prompt cache survives its eviction.

A long prompt to A, a request to B that evicts A (swapd saves A's slot), then
A again with the same prompt plus a continuation: swapd restored the slot
after A's start and before relaying the request, so llama.cpp reuses the
whole first prompt (`timings.cache_n`) and its prompt processing takes a
fraction of the cold one (the time to the first token, as the server measures
it, excludes the process start that both requests to A include).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import RunningSwapd

pytestmark = pytest.mark.e2e

PROMPT = "The quick brown fox jumps over the lazy dog. " * 30  # about 300 tokens


def complete(swapd: RunningSwapd, model: str, prompt: str) -> tuple[dict[str, Any], float]:
    """A one-token /completion pinned to slot 0; its timings and the seconds it took."""
    started = time.perf_counter()
    with httpx2.Client(timeout=300.0) as client:
        response = client.post(
            swapd.base_url + "/completion",
            json={"model": model, "prompt": prompt, "n_predict": 1, "id_slot": 0,
                  "cache_prompt": True, "temperature": 0},
        )  # fmt: skip
    took = time.perf_counter() - started
    response.raise_for_status()
    timings: dict[str, Any] = response.json()["timings"]
    return timings, took


def ttft_ms(timings: dict[str, Any]) -> float:
    """The server's time to the first token: the prompt, then one token (n_predict 1)."""
    return float(timings["prompt_ms"]) + float(timings["predicted_ms"])


def test_an_evicted_model_gets_its_prompt_cache_back(start_swapd: Any, tmp_path: Path) -> None:
    kv_dir = tmp_path / "kv"
    swapd: RunningSwapd = start_swapd(swap=True, kv_dir=kv_dir)
    cold, cold_took = complete(swapd, "A", PROMPT)
    first_len = cold["prompt_n"] + cold["cache_n"]
    assert first_len > 200 and cold["cache_n"] == 0
    complete(swapd, "B", "Hello.")  # evicts A: its slot is saved
    assert sorted(p.name for p in kv_dir.glob("A/*/slot-*.bin")) == ["slot-0.bin"]
    warm, warm_took = complete(swapd, "A", PROMPT + " And then the dog")
    print(
        f"\ncold: prompt {first_len} tokens, prompt_ms {cold['prompt_ms']:.0f}, "
        f"request {cold_took:.2f}s (start included)\n"
        f"restored: cache_n {warm['cache_n']}, prompt_n {warm['prompt_n']}, "
        f"prompt_ms {warm['prompt_ms']:.0f}, request {warm_took:.2f}s (start included)"
    )
    assert warm["cache_n"] >= first_len - 1
    assert ttft_ms(warm) < ttft_ms(cold) / 3
    assert swapd.settle() == {"A"}
