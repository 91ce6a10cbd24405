"""Harness for the HTTP tests: the app or a whole daemon, served in-process on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from swapd.config import load_config
from swapd.events import EventBus
from swapd.http.app import create_app
from swapd.http.logs_hub import LogHub
from swapd.http.services import Services
from swapd.http.settings import ApiSettings

HTTP_TIMEOUT = httpx2.Timeout(20.0)


class NoLocalModels:
    """Router and pool for app-only tests whose settings have peers but no local models."""

    def lease(self, model_id: str, progress: Any = None) -> Any:
        raise AssertionError(f"no local model should be leased here, got {model_id!r}")

    async def unload(self, models: Any = None) -> None:
        return None

    def snapshot(self) -> None:
        return None

    def states(self) -> Mapping[str, str]:
        return {}

    def __getitem__(self, model_id: str) -> Any:
        raise KeyError(model_id)


@asynccontextmanager
async def serve_app(services: Services) -> AsyncIterator[str]:
    """The app for `services` on an ephemeral port; yields its base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(services.logs.run)
        urls = await nursery.start(
            lambda task_status: serve(
                create_app(services), config, shutdown_trigger=stop.wait, task_status=task_status
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
    """A whole swapd (pool, router, app) for `config_text`, on an ephemeral port."""
    from swapd.daemon import Daemon

    path = tmp_path / "config.yaml"
    path.write_text(config_text)
    d = Daemon(load_config(path), "127.0.0.1:0")
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(d.run)
        try:
            yield urls[0], d
        finally:
            d.request_stop()


@asynccontextmanager
async def pool_swapd(tmp_path: Path, config_text: str) -> AsyncIterator[tuple[str, Any]]:
    """As `daemon`, with the real process pool but `PoolRouter` in place of the router."""
    from swapd.daemon import process_specs
    from swapd.http.config_view import settings_from_config
    from swapd.process.pool import ProcessPool
    from tests.integration.http.router_double import PoolRouter

    path = tmp_path / "config.yaml"
    path.write_text(config_text)
    loaded = load_config(path)
    bus = EventBus()
    limits = {m: c.concurrency_limit for m, c in loaded.models.items()}
    async with ProcessPool(process_specs(loaded), bus) as pool:
        hub = LogHub(bus, lambda m: pool[m].logs if m in pool else None)
        router = PoolRouter(pool, limits)
        services = Services(settings_from_config(loaded), router, pool, bus, hub)
        async with serve_app(services) as base:
            yield base, _Handle(bus, services, router)


class _Handle:
    def __init__(self, bus: EventBus, services: Services, router: Any) -> None:
        self.bus = bus
        self.services = services
        self.router = router


@asynccontextmanager
async def client(base: str, **kwargs: Any) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT, **kwargs) as c:
        yield c
