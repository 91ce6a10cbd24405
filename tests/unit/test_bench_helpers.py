"""The pure helpers the swap benchmark and the e2e tests count with."""

from __future__ import annotations

import json

from bench.anchor import loads_in_log
from bench.bench_swap import LoadCounter, parse_sse_frame
from bench.real_servers import option_argv


def status(**states: str) -> list[dict[str, str]]:
    return [{"id": model, "state": state} for model, state in states.items()]


def test_load_counter_counts_entries_into_running_states() -> None:
    counter = LoadCounter()
    counter.feed("modelStatus", status(A="starting", B="stopped"))
    counter.feed("modelStatus", status(A="ready", B="stopped"))
    counter.feed("modelStatus", status(A="stopping", B="starting"))
    counter.feed("modelStatus", status(A="stopped", B="ready"))
    counter.feed("modelStatus", status(A="ready", B="stopped"))  # stopped -> ready in one step
    assert counter.loads == {"A": 2, "B": 1}
    assert counter.running() == {"A"}
    assert counter.settled()
    counter.feed("modelStatus", status(A="stopping", B="stopped"))
    assert not counter.settled()


def test_load_counter_counts_swap_starts_not_finishes() -> None:
    counter = LoadCounter()
    counter.feed("swap", {"target": "A", "evict": ["B"]})
    counter.feed("swap", {"target": "A", "evict": ["B"], "ok": True})
    assert counter.swaps == {"A": 1}
    assert counter.frames == 2


def test_parse_sse_frame_unwraps_the_envelope() -> None:
    inner = json.dumps(status(A="ready"))
    frame = ["event: message", "data: " + json.dumps({"type": "modelStatus", "data": inner})]
    assert parse_sse_frame(frame) == ("modelStatus", status(A="ready"))
    plain = ["data: " + json.dumps({"type": "log", "data": "hello"})]
    assert parse_sse_frame(plain) == ("log", "hello")
    assert parse_sse_frame([": keep-alive"]) is None


def test_llama_swap_load_lines_and_options() -> None:
    log = (
        "[INFO] llama-swap listening on http://127.0.0.1:18600\n"
        "[INFO] <A> Health check passed on http://localhost:5800/health\n"
        '[INFO] Request 127.0.0.1 "POST /v1/chat/completions HTTP/1.1" 200 612\n'
        "[INFO] <B> Health check passed on http://localhost:5801/health\n"
    )
    assert loads_in_log(log) == ["A", "B"]
    assert option_argv({"ctx-size": "512", "threads": "1"}) == [
        "--ctx-size", "512", "--threads", "1",
    ]  # fmt: skip
