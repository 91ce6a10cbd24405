"""Real clients against a real swapd over sockets: the openai and anthropic SDKs."""

from __future__ import annotations

import sys
from pathlib import Path

import anthropic
import openai
import pytest
import trio

from tests.integration.http.conftest import daemon, start_port

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"
CLAUDE = f"{sys.executable} {Path(__file__).with_name('anthropic_upstream.py')} --port ${{PORT}}"


def config() -> str:
    return f"""
startPort: {start_port()}
apiKeys: [sk-local]
models:
  gpt:
    cmd: {FAKE} --tokens 4
  embed:
    cmd: {FAKE}
  claude:
    cmd: {CLAUDE}
groups:
  side-by-side:
    swap: false
    members: [gpt, embed, claude]
"""


@pytest.mark.trio
async def test_openai_sdk(tmp_path: Path) -> None:
    async with daemon(tmp_path, config()) as (base, _):
        oa = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-local", max_retries=0, timeout=20)

        def calls() -> tuple[str, str, str, int]:
            chat = oa.chat.completions.create(
                model="gpt", messages=[{"role": "user", "content": "hi"}], max_tokens=3
            )
            stream = oa.chat.completions.create(
                model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            streamed = "".join(
                chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
            )
            completion = oa.completions.create(model="gpt", prompt="once upon", max_tokens=2)
            embedding = oa.embeddings.create(model="embed", input=["a b", "c"])
            return (
                chat.choices[0].message.content or "",
                streamed,
                completion.choices[0].text,
                len(embedding.data),
            )

        chat, streamed, completion, vectors = await trio.to_thread.run_sync(calls)
        assert chat == "tok0 tok1 tok2 "
        assert streamed == "tok0 tok1 tok2 tok3 "
        assert completion == "tok0 tok1 "
        assert vectors == 2

        def errors() -> tuple[int, str, int]:
            try:
                oa.chat.completions.create(model="nope", messages=[])
            except openai.NotFoundError as exc:
                not_found = (exc.status_code, exc.message)
            bad = openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0)
            try:
                bad.models.list()
            except openai.AuthenticationError as exc:
                return not_found[0], not_found[1], exc.status_code
            raise AssertionError("a wrong key was accepted")

        status, message, auth_status = await trio.to_thread.run_sync(errors)
        assert status == 404 and "GET /v1/models" in message
        assert auth_status == 401


@pytest.mark.trio
async def test_anthropic_sdk(tmp_path: Path) -> None:
    async with daemon(tmp_path, config()) as (base, _):
        client = anthropic.Anthropic(base_url=base, api_key="sk-local", max_retries=0, timeout=20)

        def calls() -> tuple[str, str, int]:
            message = client.messages.create(
                model="claude", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
            )
            text = "".join(block.text for block in message.content if block.type == "text")
            with client.messages.stream(
                model="claude", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                streamed = "".join(stream.text_stream)
            count = client.messages.count_tokens(
                model="claude", messages=[{"role": "user", "content": "one two"}]
            )
            return text, streamed, count.input_tokens

        text, streamed, tokens = await trio.to_thread.run_sync(calls)
        assert text == "hello from the fake claude"
        assert streamed.strip() == "hello from the fake claude"
        assert tokens > 0
