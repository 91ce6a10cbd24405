"""Save a llama.cpp server's KV-cache slots before a planned stop; restore them after a start.

The I/O shell around `kv_files`: llama-server's slot API (`GET /slots`,
`POST /slots/{id}?action=save|restore` with `{"filename": ...}`) through
the daemon's upstream client, and the files in the model's directory.
Every step is bounded by the model's `kvCache.timeout` as a whole; what
fails or runs out of time is reported in the `KvActivity` (and logged by
the supervisor), never raised, so a stop or a start never waits longer.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
import trio

from swapd.http.upstream import UpstreamClient, UpstreamError
from swapd.process.events import KvActivity
from swapd.process.kv_files import (
    SavedFile,
    Slot,
    files_over_budget,
    parse_slots,
    restore_plan,
    slot_file,
    slot_of,
    slots_to_save,
    stale_keys,
)
from swapd.process.spec import KvSpec

# Largest answer read from the slot API (a /slots listing of many slots with their params).
MAX_ANSWER_BYTES = 4 * 1024 * 1024
JSON_HEADERS = [(b"content-type", b"application/json"), (b"accept", b"application/json")]


class SlotApiError(Exception):
    """The slot API answered with an error, or not at all."""


async def _call(client: UpstreamClient, method: str, url: str, payload: object = None) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    try:
        response = await client.request(method, url, JSON_HEADERS if body else [], body)
    except UpstreamError as exc:
        raise SlotApiError(str(exc)) from None
    try:
        data = bytearray()
        async for chunk in response.chunks():
            data += chunk
            if len(data) > MAX_ANSWER_BYTES:
                raise SlotApiError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
    finally:
        await response.aclose()
    if not 200 <= response.status < 300:
        raise SlotApiError(f"HTTP {response.status}: {_message(bytes(data))}")
    return bytes(data)


def _message(body: bytes) -> str:
    """The error message of an OpenAI-shaped error body, else the body's start."""
    try:
        decoded = json.loads(body)
        message = decoded["error"]["message"]
        if isinstance(message, str):
            return message
    except (ValueError, KeyError, TypeError):
        pass
    return body[:200].decode("utf-8", "replace")


def _listing(directory: Path) -> list[SavedFile]:
    out = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        if slot_of(entry.name) is None or not entry.is_file(follow_symlinks=False):
            continue
        st = entry.stat(follow_symlinks=False)
        out.append(SavedFile(entry.name, st.st_size, st.st_mtime))
    return out


def _prune(directory: Path, max_bytes: int) -> None:
    for name in files_over_budget(_listing(directory), max_bytes):
        (directory / name).unlink(missing_ok=True)


def prepare(kv: KvSpec) -> list[str]:
    """Create the model's slot directory; discard those of other commands. The discarded keys."""
    kv.dir.mkdir(parents=True, exist_ok=True)
    existing = [e.name for e in os.scandir(kv.model_dir) if e.is_dir(follow_symlinks=False)]
    stale = stale_keys(existing, kv.key)
    for name in stale:
        shutil.rmtree(kv.model_dir / name, ignore_errors=True)
    return stale


async def save(model: str, base_url: str, kv: KvSpec) -> KvActivity:
    """Save every slot that holds tokens, within `kv.timeout`; then keep the files in
    `kv.max_bytes` (the oldest go first)."""

    def plan(slots: list[Slot]) -> list[tuple[int, str]]:
        return [(slot_id, slot_file(slot_id)) for slot_id in slots_to_save(slots)]

    return await _slot_calls(model, base_url, kv, "save", plan)


async def restore(model: str, base_url: str, kv: KvSpec) -> KvActivity | None:
    """Restore the saved slots into a server that just became ready, within `kv.timeout`;
    None when nothing was saved."""
    try:
        files = await trio.to_thread.run_sync(_listing, kv.dir)
    except OSError:
        files = []
    if not files:
        return None

    def plan(slots: list[Slot]) -> list[tuple[int, str]]:
        return restore_plan(files, (s.id for s in slots))

    return await _slot_calls(model, base_url, kv, "restore", plan)


async def _slot_calls(
    model: str,
    base_url: str,
    kv: KvSpec,
    action: Literal["save", "restore"],
    plan: Callable[[list[Slot]], list[tuple[int, str]]],
) -> KvActivity:
    """`GET /slots`, then `POST /slots/{id}?action=...` for each (slot, file) of `plan`,
    all within `kv.timeout`; after a save, the files are kept within `kv.max_bytes`."""
    started = trio.current_time()
    errors: list[str] = []
    done = 0
    moved = 0  # bytes written (save) or read (restore), as the server reports them
    base = base_url.rstrip("/")
    client = UpstreamClient(connect_timeout=kv.timeout)
    with trio.move_on_after(kv.timeout) as scope:
        try:
            slots = parse_slots(await _call(client, "GET", base + "/slots"))
        except (SlotApiError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            errors.append(f"GET /slots: {exc}")
            slots = []
        for slot_id, name in plan(slots):
            url = f"{base}/slots/{slot_id}?action={action}"
            try:
                answer = await _call(client, "POST", url, {"filename": name})
            except SlotApiError as exc:
                errors.append(f"{action} slot {slot_id}: {exc}")
                continue
            done += 1
            moved += _int_field(answer, "n_written" if action == "save" else "n_read")
    with trio.CancelScope(shield=True):
        await client.aclose()
        if action == "save":
            try:
                await trio.to_thread.run_sync(_prune, kv.dir, kv.max_bytes)
            except OSError as exc:
                errors.append(f"pruning {kv.dir}: {exc}")
    if scope.cancelled_caught:
        errors.append(f"timed out after {kv.timeout:g}s")
    return KvActivity(
        model=model,
        action=action,
        slots=done,
        bytes=moved,
        seconds=trio.current_time() - started,
        time=time.time(),
        timed_out=scope.cancelled_caught,
        errors=tuple(errors),
    )


def _int_field(answer: bytes, key: str) -> int:
    """A byte count from a save/restore answer; 0 when it has none."""
    try:
        value = json.loads(answer).get(key, 0)
    except (ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def describe(activity: KvActivity) -> str:
    """One line for the proxy log."""
    what = "saved" if activity.action == "save" else "restored"
    line = (
        f"kv cache: {what} {activity.slots} slot(s), {activity.bytes} bytes "
        f"in {activity.seconds:.3f}s"
    )
    if activity.errors:
        line += "; " + "; ".join(activity.errors)
    return line
