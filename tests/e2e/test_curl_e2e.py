"""curl against swapd and the real llama-server: the wire format as a shell user sees it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.e2e.conftest import RunningSwapd

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "120", *args],
        capture_output=True,
        text=True,
        timeout=150,
    )


def chat_body(model: str, *, stream: bool) -> str:
    return json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Name a colour."}],
            "max_tokens": 12,
            "stream": stream,
        }
    )


def test_curl_chat_streaming_and_errors(start_swapd: Callable[..., RunningSwapd]) -> None:
    swapd = start_swapd(swap=True)
    url = f"{swapd.base_url}/v1/chat/completions"
    json_header = ("-H", "Content-Type: application/json")

    plain = curl(*json_header, "-d", chat_body("A", stream=False), url)
    assert plain.returncode == 0, plain.stderr
    reply = json.loads(plain.stdout)
    assert reply["choices"][0]["message"]["content"].strip()

    # Streaming: --no-buffer prints each SSE event as it arrives; -i shows the headers.
    streamed = curl("-i", "--no-buffer", *json_header, "-d", chat_body("B", stream=True), url)
    assert streamed.returncode == 0, streamed.stderr
    head, _, body = streamed.stdout.replace("\r\n", "\n").partition("\n\n")
    assert "text/event-stream" in head.lower()
    assert "x-accel-buffering: no" in head.lower()
    events = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(
        choice["delta"].get("content") or ""
        for event in events[:-1]
        for choice in json.loads(event)["choices"]
    )
    assert text.strip()
    assert swapd.running() == {"B"}

    unknown = curl("-w", "\n%{http_code}", *json_header, "-d", chat_body("nope", stream=False), url)
    body_text, _, status = unknown.stdout.rpartition("\n")
    assert status == "404"
    assert json.loads(body_text)["error"]["message"]
