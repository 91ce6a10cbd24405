"""KV-cache slots with real processes (the fake upstream's slot API): a planned stop saves,
the next start restores before anyone is answered, a crash saves nothing, a changed command
discards what the old one saved, and every step stays within its bounds."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest
import trio

from swapd.events import Subscription
from swapd.process.events import KvActivity
from swapd.process.kv_files import argv_key, model_dir_name
from swapd.process.spec import KvSpec, ProcessSpec
from swapd.process.states import ProcessState
from tests.integration.process.harness import WAIT, Run, fake_spec, supervised

pytestmark = pytest.mark.trio

PROMPT = "the quick brown fox jumps over the lazy dog " * 8


def kv_spec(
    tmp: Path, *options: str, timeout: float = 5.0, max_bytes: int = 1 << 30
) -> ProcessSpec:
    """A fake upstream whose --slot-save-path is its KvSpec's directory, as the daemon does."""
    spec = fake_spec("--parallel", "2", *options)
    kv = KvSpec(
        model_dir=tmp / "kv" / model_dir_name(spec.model_id),
        key=argv_key(spec.argv),
        max_bytes=max_bytes,
        timeout=timeout,
    )
    return replace(spec, argv=(*spec.argv, "--slot-save-path", str(kv.dir)), kv=kv)


async def complete(spec: ProcessSpec, prompt: str, slot: int = 0) -> dict[str, int]:
    """One /completion straight to the upstream; its timings."""
    async with httpx2.AsyncClient(timeout=WAIT) as client:
        response = await client.post(
            spec.proxy_url + "/completion", json={"prompt": prompt, "n_predict": 2, "id_slot": slot}
        )
    response.raise_for_status()
    timings: dict[str, int] = response.json()["timings"]
    return timings


def prompt_tokens(prompt: str) -> int:
    return len(json.dumps(prompt).split())


async def next_kv(sub: Subscription) -> KvActivity:
    with trio.fail_after(WAIT):
        event: KvActivity = await sub.receive()
    return event


def no_kv(sub: Subscription) -> None:
    try:
        event = sub.receive_nowait()
    except trio.WouldBlock:
        return
    raise AssertionError(f"unexpected kv activity {event}")


async def test_a_stop_saves_the_used_slots_and_the_next_start_restores_them(tmp_path: Path) -> None:
    spec = kv_spec(tmp_path)
    assert spec.kv is not None
    async with supervised(spec) as run:
        kv = run.bus.subscribe(topics=["kv"], maxlen=100)
        await run.sup.ensure_ready()
        no_kv(kv)  # nothing saved yet: nothing restored
        assert (await complete(spec, PROMPT, slot=1))["cache_n"] == 0
        await run.sup.stop(reason="evicted")
        saved = await next_kv(kv)
        assert (saved.action, saved.slots, saved.errors) == ("save", 1, ())
        assert saved.bytes == (spec.kv.dir / "slot-1.bin").stat().st_size > 0
        assert sorted(os.listdir(spec.kv.dir)) == ["slot-1.bin"]  # the empty slot 0 is not saved

        states = run.bus.subscribe(topics=["state", "kv"], maxlen=100)
        await run.sup.ensure_ready()
        order = drained(states)
        restored = [e for e in order if isinstance(e, KvActivity)]
        assert [(e.action, e.slots, e.bytes, e.errors) for e in restored] == [
            ("restore", 1, saved.bytes, ())
        ]
        # restored while starting, before the model was published ready
        kinds = ["kv" if isinstance(e, KvActivity) else e.new for e in order]
        assert kinds == [ProcessState.STARTING, "kv", ProcessState.READY]
        timings = await complete(spec, PROMPT + " and then some", slot=1)
        assert timings["cache_n"] >= prompt_tokens(PROMPT) - 1


def drained(sub: Subscription) -> list[object]:
    out = []
    while True:
        try:
            out.append(sub.receive_nowait())
        except trio.WouldBlock:
            return out


async def test_a_crash_saves_nothing_and_the_next_start_restores_the_last_save(
    tmp_path: Path,
) -> None:
    spec = kv_spec(tmp_path)
    assert spec.kv is not None
    async with supervised(spec) as run:
        kv = run.bus.subscribe(topics=["kv"], maxlen=100)
        await run.sup.ensure_ready()
        await complete(spec, "first conversation")
        await run.sup.stop(reason="unload")
        first = await next_kv(kv)
        assert first.slots == 1
        before = (spec.kv.dir / "slot-0.bin").read_bytes()

        await run.sup.ensure_ready()
        assert (await next_kv(kv)).action == "restore"
        await complete(spec, "a second conversation that is never saved")
        pid = run.sup.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await run_wait_failed(run)
        no_kv(kv)
        assert (spec.kv.dir / "slot-0.bin").read_bytes() == before


async def run_wait_failed(run: Run) -> None:
    with trio.fail_after(WAIT):
        while run.sup.state is not ProcessState.FAILED:
            await run.wait_state(ProcessState.FAILED)


async def test_a_changed_command_discards_the_old_commands_slots(tmp_path: Path) -> None:
    old = kv_spec(tmp_path)
    assert old.kv is not None
    async with supervised(old) as run:
        await run.sup.ensure_ready()
        await complete(old, PROMPT)
        await run.sup.stop(reason="reload")
    assert (old.kv.dir / "slot-0.bin").exists()

    new = kv_spec(tmp_path, "--tokens", "3")
    assert new.kv is not None and new.kv.model_dir == old.kv.model_dir
    assert new.kv.key != old.kv.key
    async with supervised(new) as run:
        kv = run.bus.subscribe(topics=["kv"], maxlen=100)
        await run.sup.ensure_ready()
        no_kv(kv)  # nothing of the old command was restored
        assert not old.kv.dir.exists()
        assert os.listdir(new.kv.model_dir) == [new.kv.key]
        assert (await complete(new, PROMPT))["cache_n"] == 0


async def test_a_slow_save_never_holds_the_stop_beyond_the_timeout(tmp_path: Path) -> None:
    spec = kv_spec(tmp_path, "--slot-delay", "30", timeout=0.5)
    async with supervised(spec) as run:
        kv = run.bus.subscribe(topics=["kv"], maxlen=100)
        await run.sup.ensure_ready()
        await complete(spec, PROMPT)
        started = trio.current_time()
        await run.sup.stop(reason="evicted")
        took = trio.current_time() - started
        saved = await next_kv(kv)
        assert saved.timed_out and saved.slots == 0
        assert "timed out after 0.5s" in saved.errors[-1]
        assert 0.5 <= saved.seconds < 2.0
        assert took < 0.5 + spec.unload_timeout  # the save's bound, then the usual grace


async def test_a_slow_restore_never_holds_the_start_beyond_the_timeout(tmp_path: Path) -> None:
    spec = kv_spec(tmp_path, timeout=5.0)
    assert spec.kv is not None
    async with supervised(spec) as run:
        await run.sup.ensure_ready()
        await complete(spec, PROMPT)
        await run.sup.stop(reason="evicted")
    slow = replace(spec, argv=(*spec.argv, "--slot-delay", "30"))
    slow = replace(slow, kv=replace(spec.kv, key=argv_key(slow.argv), timeout=0.5))
    assert slow.kv is not None
    slow.kv.dir.mkdir(parents=True)
    (spec.kv.dir / "slot-0.bin").rename(slow.kv.dir / "slot-0.bin")
    async with supervised(slow) as run:
        kv = run.bus.subscribe(topics=["kv"], maxlen=100)
        started = trio.current_time()
        await run.sup.ensure_ready()
        assert trio.current_time() - started < WAIT
        restored = await next_kv(kv)
        assert restored.timed_out and restored.slots == 0
        assert 0.5 <= restored.seconds < 2.0
        assert run.sup.state is ProcessState.READY


async def test_a_broken_save_file_is_logged_and_the_model_still_serves(tmp_path: Path) -> None:
    spec = kv_spec(tmp_path)
    assert spec.kv is not None
    spec.kv.dir.mkdir(parents=True)
    (spec.kv.dir / "slot-0.bin").write_bytes(b"\x00garbage")
    async with supervised(spec) as run:
        kv = run.bus.subscribe(topics=["kv"], maxlen=100)
        await run.sup.ensure_ready()
        restored = await next_kv(kv)
        assert restored.slots == 0
        assert restored.errors and "restore slot 0: HTTP 400" in restored.errors[0]
        with run.sup.proxy_log.subscribe(history=True, maxlen=1000) as lines:
            with trio.fail_after(WAIT):
                async for line in lines:
                    if "kv cache: restored 0 slot(s)" in line.text:
                        assert "invalid slot save file" in line.text
                        break
        assert (await complete(spec, PROMPT))["cache_n"] == 0


async def test_saved_bytes_stay_within_max_bytes_oldest_first(tmp_path: Path) -> None:
    spec = kv_spec(tmp_path, max_bytes=1)
    assert spec.kv is not None
    async with supervised(spec) as run:
        kv = run.bus.subscribe(topics=["kv"], maxlen=100)
        await run.sup.ensure_ready()
        await complete(spec, PROMPT)
        await run.sup.stop(reason="evicted")
        saved = await next_kv(kv)
        assert saved.slots == 1 and saved.bytes > 1
        assert os.listdir(spec.kv.dir) == []  # over the budget: deleted


async def test_a_server_without_a_save_path_fails_the_save_and_still_stops(tmp_path: Path) -> None:
    spec = kv_spec(tmp_path)
    spec = replace(spec, argv=spec.argv[:-2])  # no --slot-save-path
    async with supervised(spec) as run:
        kv = run.bus.subscribe(topics=["kv"], maxlen=100)
        await run.sup.ensure_ready()
        await complete(spec, PROMPT)
        await run.sup.stop(reason="evicted")
        saved = await next_kv(kv)
        assert saved.slots == 0 and "HTTP 501" in saved.errors[0]
        assert run.sup.state is ProcessState.STOPPED
