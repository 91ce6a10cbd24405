"""The budget router in a whole swapd with fake upstreams: the README's worked example,
footprints learned from measurements (and kept across restarts), the live meters."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
import trio

from swapctl import protocol as p
from swapctl import render
from swapctl.client import connect
from swapd.config import load_config
from swapd.daemon import Daemon
from tests.integration.http.conftest import client, start_port

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "examples" / "budget.yaml"
FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"
MiB = 1 << 20


@asynccontextmanager
async def budget_daemon(
    tmp_path: Path, text: str, *, state_dir: Path | None = None
) -> AsyncIterator[tuple[str, Daemon]]:
    path = tmp_path / "config.yaml"
    path.write_text(f"startPort: {start_port()}\nhealthCheckTimeout: 15\n" + text)
    d = Daemon(
        load_config(path),
        "127.0.0.1:0",
        control_socket=tmp_path / "control.sock",
        state_dir=state_dir,
        meter_period=0.2,
    )
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(d.run)
        try:
            yield urls[0], d
        finally:
            d.request_stop()


async def ask(c: httpx2.AsyncClient, model: str) -> httpx2.Response:
    return await c.post("/v1/chat/completions", json={"model": model, "max_tokens": 1})


async def running(c: httpx2.AsyncClient) -> list[str]:
    body = (await c.get("/running")).json()
    return sorted(e["model"] for e in body["running"] if e["state"] == "ready")


@pytest.mark.trio
async def test_the_readme_worked_example(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("python3", sys.executable)
    async with budget_daemon(tmp_path, text) as (base, d), client(base) as c:
        steps = [
            ("a", ["a"]),
            ("b", ["a", "b"]),
            ("c", ["b", "c"]),  # a is the least recently used
            ("d", ["d"]),  # needs 8 GiB: b and c go
            ("a", ["a"]),  # d goes
        ]
        for model, after in steps:
            r = await ask(c, model)
            assert r.status_code == 200, r.text
            assert await running(c) == after, model
        assert d.router is not None
        swaps = [x for x in d.router.decisions() if x.action == "swap"]
        assert [(x.model, x.evict) for x in swaps] == [
            ("a", ()),
            ("b", ()),
            ("c", ("a",)),
            ("d", ("b", "c")),
            ("a", ("d",)),
        ]
        assert "needs ram 8GiB, free ram 2GiB; evicts b (frees ram 4GiB), c (frees ram 4GiB)" in (
            swaps[3].reason
        )


@pytest.mark.trio
async def test_a_model_learned_too_big_fails_at_once_naming_the_resource(tmp_path: Path) -> None:
    # A declaration above the capacity is a config error; a measurement can still
    # show that a model never fits.
    text = f"""
resources:
  capacity: {{ram: 100MiB}}
models:
  huge:
    cmd: {FAKE} --hold-mib 150
routing:
  router:
    use: budget
"""
    async with budget_daemon(tmp_path, text) as (base, d), client(base) as c:
        assert d.meter is not None
        assert (await ask(c, "huge")).status_code == 200  # nothing known yet: blind
        with trio.fail_after(10):
            await d.meter.next_pass()
        assert (await c.post("/api/models/unload")).status_code == 200
        r = await ask(c, "huge")
        assert r.status_code == 500
        body = r.json()["error"]
        assert "huge cannot run: it needs " in body["message"]
        assert "of ram, capacity is 100MiB" in body["message"]
        assert await running(c) == []


HOLD = 150  # MiB each model holds; with the interpreter, ~170 to 210 MiB measured


def learning_config() -> str:
    models = "".join(f"  {m}:\n    cmd: {FAKE} --hold-mib {HOLD}\n" for m in ("x", "y", "z"))
    # Two fit (2 x 1.1 x at most 210 MiB), three do not (3 x 1.1 x at least 165 MiB).
    return f"""
resources:
  capacity: {{ram: 470MiB}}
models:
{models}
routing:
  router:
    use: budget
    settings:
      budget:
        costs: uniform
"""


def control_view(sock: Path) -> tuple[list[p.ModelInfo], p.Status]:
    with connect(sock) as c:
        return c.models(), c.status()


@pytest.mark.trio
async def test_footprints_are_learned_after_one_run_each_then_exactly_what_fits_runs(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    async with (
        budget_daemon(tmp_path, learning_config(), state_dir=state) as (base, d),
        client(base) as c,
    ):
        assert d.meter is not None
        # Nothing is known: each counts 0 (the plan is blind), so all three start.
        for m in ("x", "y", "z"):
            assert (await ask(c, m)).status_code == 200
            with trio.fail_after(10):
                await d.meter.next_pass()
        assert await running(c) == ["x", "y", "z"]
        assert d.router is not None
        first = [x for x in d.router.decisions() if x.action == "swap"]
        assert "the plan is blind to ram for" in first[0].reason
        # Each was measured while it ran: the readings show in /running and /metrics.
        entries = (await c.get("/running")).json()["running"]
        assert all(e["ram"] > HOLD * MiB for e in entries), entries
        metrics = (await c.get("/metrics")).text
        assert 'swapd_model_resident_bytes{model="x"}' in metrics
        assert "swapd_host_memory_bytes" in metrics
        # From now on exactly the models that fit run: two of them.
        assert (await c.post("/api/models/unload")).status_code == 200
        for m in ("x", "y"):
            assert (await ask(c, m)).status_code == 200
        assert await running(c) == ["x", "y"]
        assert (await ask(c, "z")).status_code == 200
        assert await running(c) == ["y", "z"]  # x, the least recently used, went
        swap = [x for x in d.router.decisions() if x.action == "swap"][-1]
        assert swap.evict == ("x",) and "blind" not in swap.reason
        # The control socket: meters and footprints per model, the host, the capacity in use.
        with trio.fail_after(10):
            await d.meter.next_pass()
        models, status = await trio.to_thread.run_sync(control_view, tmp_path / "control.sock")
        z = next(m for m in models if m.id == "z")
        assert z.meters is not None and z.meters.ram > HOLD * MiB
        assert z.footprint is not None and z.footprint.declared == {}
        measured = z.footprint.measured["ram"]
        assert z.footprint.planned == {"ram": -(-measured * 11 // 10)}
        assert status.host is not None and status.host.mem_total > 0
        (ram,) = status.capacity
        assert ram.resource == "ram" and ram.capacity == 470 * MiB
        assert 2 * HOLD * MiB < ram.used <= ram.capacity
        text = render.models(models, status.capacity)
        assert "capacity in use: ram " in text and "of 470.0M" in text
        assert d.runs is not None
        with trio.fail_after(10):
            await d.runs.flushed()

    # A restart remembers: before anything runs, the footprints are known.
    async with (
        budget_daemon(tmp_path, learning_config(), state_dir=state) as (base, d),
        client(base) as c,
    ):
        for m in ("x", "y", "z"):
            assert (await ask(c, m)).status_code == 200
        assert await running(c) == ["y", "z"]


@pytest.mark.trio
async def test_a_model_with_devices_goes_where_there_is_room_and_is_told_which(
    tmp_path: Path,
) -> None:
    models = "".join(
        f"""  {m}:
    cmd: {FAKE} --model {m}-on-${{DEVICE}}
    env: ["CUDA_VISIBLE_DEVICES=${{DEVICE_INDEX}}"]
    devices: [gpu0, gpu1]
    resources: {{gpu: 18GiB}}
"""
        for m in ("p", "q", "r")
    )
    text = f"""
resources:
  capacity: {{gpu0: 24GiB, gpu1: 24GiB}}
models:
{models}
routing:
  router:
    use: budget
    settings:
      budget:
        costs: uniform
"""
    async with budget_daemon(tmp_path, text) as (base, d), client(base) as c:
        for m in ("p", "q"):
            assert (await ask(c, m)).status_code == 200
        assert await running(c) == ["p", "q"]
        assert d.services is not None
        snaps = d.services.pool.snapshots()
        assert snaps["p"].argv[-1] == "p-on-gpu0" and snaps["q"].argv[-1] == "q-on-gpu1"
        # r fits on neither while both run: the least recently used goes, r takes its GPU.
        assert (await ask(c, "r")).status_code == 200
        assert await running(c) == ["q", "r"]
        assert d.services.pool.snapshots()["r"].argv[-1] == "r-on-gpu0"
