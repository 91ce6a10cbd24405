"""Put a model's server to sleep or wake it: its HTTP call or its command, bounded in time.

vLLM's sleep mode (`POST /sleep?level=1`, `POST /wake_up`) releases the
accelerator memory and keeps the process, so a wake takes a second or two
where a cold start takes minutes. A command (`cmdSleep`, `cmdWake`, with
`${PID}` filled in) covers servers that sleep some other way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import trio

from swapd.http.upstream import UpstreamClient, UpstreamError
from swapd.process.spec import SleepAction

OUTPUT_TAIL = 300


async def perform(
    action: SleepAction, base_url: str, pid: int, env: Mapping[str, str], within: float
) -> str | None:
    """Run `action`; None when it succeeded, else why not (never raises, never waits
    beyond `within` seconds)."""
    with trio.move_on_after(within):
        argv = action.command(pid)
        if argv is not None:
            return await _run(argv, env)
        return await _call(action, base_url, within)
    return f"no answer within {within:g}s"


async def _run(argv: list[str], env: Mapping[str, str]) -> str | None:
    try:
        result = await trio.run_process(
            argv,
            env={**os.environ, **env},
            stdin=b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    except OSError as exc:
        return f"cannot run {argv[0]}: {exc}"
    if result.returncode == 0:
        return None
    said = (result.stderr or result.stdout or b"").decode("utf-8", "replace").strip()
    return f"{argv[0]} exited with {result.returncode}" + (
        f": {said[-OUTPUT_TAIL:]}" if said else ""
    )


async def _call(action: SleepAction, base_url: str, connect_within: float) -> str | None:
    client = UpstreamClient(connect_timeout=connect_within)
    url = base_url.rstrip("/") + action.endpoint
    try:
        response = await client.request(action.method, url, [])
        try:
            body = await response.read()
        finally:
            await response.aclose()
    except UpstreamError as exc:
        return f"{action.method} {action.endpoint}: {exc}"
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()
    if 200 <= response.status < 300:
        return None
    text = body[:OUTPUT_TAIL].decode("utf-8", "replace").strip()
    return f"{action.method} {action.endpoint}: HTTP {response.status}" + (
        f": {text}" if text else ""
    )
