"""The fake upstream: its routes and wire formats, and each way it can misbehave."""

from __future__ import annotations

import http.client
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.integration.conftest import RunningFake

Start = Callable[..., RunningFake]


def request(
    fake: RunningFake, method: str, path: str, body: Any = None, timeout: float = 10.0
) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "X-Probe": "yes"} if data else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def sse_payloads(raw: bytes) -> list[str]:
    return [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]


def test_routes_and_openai_shapes(start_fake: Start) -> None:
    fake = start_fake("--model", "m1", "--tokens", "3")
    assert request(fake, "GET", "/health")[0] == 200
    status, _, raw = request(fake, "GET", "/v1/models")
    assert json.loads(raw)["data"][0]["id"] == "m1"
    status, ctype, raw = request(fake, "POST", "/v1/chat/completions", {"messages": []})
    reply = json.loads(raw)
    assert (status, ctype) == (200, "application/json")
    assert reply["choices"][0]["message"]["content"] == "tok0 tok1 tok2 "
    assert reply["usage"]["completion_tokens"] == 3
    reply = json.loads(request(fake, "POST", "/v1/completions", {"max_tokens": 2})[2])
    assert reply["choices"][0]["text"] == "tok0 tok1 "
    reply = json.loads(request(fake, "POST", "/v1/embeddings", {"input": ["a", "b"]})[2])
    assert [d["index"] for d in reply["data"]] == [0, 1]
    reply = json.loads(request(fake, "POST", "/completion", {"n_predict": 1})[2])
    assert (reply["content"], reply["stop"]) == ("tok0 ", True)
    assert request(fake, "GET", "/nowhere")[0] == 404
    assert request(fake, "GET", "/")[0] == 200


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_openai_streams_end_with_usage_and_done(start_fake: Start, path: str) -> None:
    fake = start_fake()
    status, ctype, raw = request(fake, "POST", path, {"stream": True, "max_tokens": 5})
    assert (status, ctype) == (200, "text/event-stream")
    payloads = sse_payloads(raw)
    assert payloads[-1] == "[DONE]"
    events = [json.loads(p) for p in payloads[:-1]]
    assert len(events) == 6
    assert events[-1]["usage"]["completion_tokens"] == 5
    assert events[-1]["choices"][0]["finish_reason"] == "length"


def test_llama_server_stream_and_fast_long_stream(start_fake: Start) -> None:
    fake = start_fake()
    raw = request(fake, "POST", "/completion", {"stream": True, "n_predict": 2})[2]
    events = [json.loads(p) for p in sse_payloads(raw)]
    assert [e["stop"] for e in events] == [False, False, True]
    raw = request(fake, "POST", "/v1/chat/completions", {"stream": True, "max_tokens": 5000})[2]
    assert len(sse_payloads(raw)) == 5002


def test_health_answers_503_while_loading(start_fake: Start) -> None:
    fake = start_fake("--load-delay", "30")
    status, _, raw = request(fake, "GET", "/health")
    assert status == 503
    assert json.loads(raw)["error"]["message"] == "Loading model"
    assert request(fake, "POST", "/v1/chat/completions", {})[0] == 503


def test_never_healthy(start_fake: Start) -> None:
    fake = start_fake("--never-healthy")
    assert request(fake, "GET", "/health")[0] == 503


def test_echo_returns_what_arrived(start_fake: Start) -> None:
    fake = start_fake("--echo")
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}
    echo = json.loads(request(fake, "POST", "/v1/chat/completions", body)[2])["echo"]
    assert echo["body"] == body
    assert echo["headers"]["x-probe"] == "yes"
    assert echo["path"] == "/v1/chat/completions"


def test_exit_during_start_reports_its_code(start_fake: Start) -> None:
    fake = start_fake("--exit-during-start", "0", "--exit-code", "7", wait=False)
    assert fake.proc.wait(timeout=10) == 7


def test_crash_after_n_requests(start_fake: Start) -> None:
    fake = start_fake("--crash-after", "2")
    assert request(fake, "GET", "/v1/models")[0] == 200
    assert request(fake, "GET", "/v1/models")[0] == 200
    assert fake.proc.wait(timeout=10) == 70


def test_crash_mid_stream(start_fake: Start) -> None:
    fake = start_fake("--crash-mid-stream", "2")
    with pytest.raises(http.client.IncompleteRead):
        request(fake, "POST", "/v1/chat/completions", {"stream": True, "max_tokens": 10})
    assert fake.proc.wait(timeout=10) == 71


def test_sigterm_is_graceful_unless_ignored(start_fake: Start) -> None:
    polite = start_fake()
    polite.proc.send_signal(signal.SIGTERM)
    assert polite.proc.wait(timeout=10) == 0
    stubborn = start_fake("--ignore-sigterm")
    stubborn.proc.send_signal(signal.SIGTERM)
    assert request(stubborn, "GET", "/health")[0] == 200
    assert stubborn.proc.poll() is None


def test_grandchild_shares_the_process_group(start_fake: Start) -> None:
    fake = start_fake("--grandchild", wait=False)
    line = fake.read_line()
    assert line.startswith("grandchild pid ")
    grandchild = psutil.Process(int(line.split()[-1]))
    assert os.getpgid(grandchild.pid) == fake.proc.pid
    fake.wait_listening()


def test_counts_starts_in_a_file(start_fake: Start, tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    first = start_fake("--count-starts", str(starts))
    second = start_fake("--count-starts", str(starts))
    assert starts.read_text().split() == [str(first.proc.pid), str(second.proc.pid)]
