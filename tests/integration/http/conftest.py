"""Harness for the HTTP tests: the app or a whole daemon, served in-process on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import trio

from swapd.config import load_config
from swapd.daemon import Daemon
from swapd.events import EventBus
from swapd.http.app import create_app
from swapd.http.logs_hub import LogHub
from swapd.http.server import Server
from swapd.http.services import Services
from swapd.http.settings import ApiSettings
from swapd.router.run_loop import RouterSnapshot
from swapd.testing.ports import free_port_run

HTTP_TIMEOUT = httpx2.Timeout(20.0)


def start_port(count: int = 8) -> int:
    """A `startPort` for a test config: `count` consecutive ports that are free right now.

    The default 5800 would collide with other tests running at the same time.
    """
    return free_port_run(count)


class NoLocalModels:
    """Router and pool for app-only tests whose settings have peers but no local models."""

    def lease(
        self,
        model: str,
        progress: Any = None,
        on_cut: Any = None,
        request_id: Any = None,
    ) -> Any:
        raise AssertionError(f"no local model should be leased here, got {model!r}")

    async def unload(self, models: Any = None) -> None:
        return None

    def snapshot(self) -> RouterSnapshot:
        return RouterSnapshot.empty()

    def states(self) -> Mapping[str, str]:
        return {}

    def __getitem__(self, model_id: str) -> Any:
        raise KeyError(model_id)


@asynccontextmanager
async def serve_app(services: Services) -> AsyncIterator[str]:
    """The app for `services` on an ephemeral port; yields its base URL."""
    stop = trio.Event()
    server = Server(create_app(services))
    async with trio.open_nursery() as nursery:
        await nursery.start(services.logs.run)
        urls = await nursery.start(
            lambda task_status: server.serve(
                "127.0.0.1:0", shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        try:
            yield urls[0]
        finally:
            services.close_streams()
            stop.set()
            await services.client.aclose()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def app_only(settings: ApiSettings) -> AsyncIterator[tuple[str, Services]]:
    bus = EventBus()
    stand_in = NoLocalModels()
    services = Services(settings, stand_in, stand_in, bus, LogHub(bus))
    async with serve_app(services) as base:
        yield base, services


@asynccontextmanager
async def daemon(tmp_path: Path, config_text: str) -> AsyncIterator[tuple[str, Any]]:
    """A whole swapd (pool, router, control socket, app) for `config_text`, on an ephemeral port."""
    path = tmp_path / "config.yaml"
    path.write_text(config_text)
    d = Daemon(load_config(path), "127.0.0.1:0", control_socket=tmp_path / "control.sock")
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(d.run)
        try:
            yield urls[0], d
        finally:
            d.request_stop()


@asynccontextmanager
async def client(base: str, **kwargs: Any) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT, **kwargs) as c:
        yield c
