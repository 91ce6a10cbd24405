"""The composition root: config -> process pool -> router -> HTTP app, in one nursery.

`Daemon(loaded, listen).run()` builds every part from a loaded config and
runs them as tasks of its own nursery; `run` reports the bound URLs through
`task_status` (so tests can start a daemon on port 0 inside their nursery)
and returns once `request_stop()` was called and everything has stopped.

Shutdown order (docs/compat.md, Shutdown): long-lived streams (events, logs) are
closed first so the HTTP drain does not wait on them; new model requests are
refused (503) while those in flight finish, for up to 30 s; then the HTTP
server stops (idle keep-alive connections close at once, anything still
running is cancelled after 2 s); the router shuts down (waiters get their error); then
the process pool stops every child gracefully, each with its unloadTimeout.
A hard-exit timer guards the whole sequence.

History (`state_dir`): the `Recorder` is made before anything else and
outlives it. Its store (SQLite in the state directory, when `history.enabled`)
is opened in the daemon's nursery and closed last, after the processes have
stopped, so their exits are recorded and the last batch is written. A store
that cannot be opened never stops the daemon: it drops records, counted.

Reload (`Daemon.reloader`, a `ConfigReloader`): SIGHUP, `swapctl reload` and,
with `watch_config`, an edit of the file. The pool stages the new processes,
the router drains what changed and retires it once idle, and the HTTP
settings (aliases, filters, listing, apiKeys, peers) switch in one step.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio

from swapd.config import LoadedConfig
from swapd.config.kv_cache import KV_DIR_MACRO
from swapd.config.model import Config, ModelConfig, SleepCall, SleepConfig
from swapd.control.backend import DaemonBackend, DaemonParts
from swapd.control.reload import (
    WATCH_INTERVAL,
    ConfigReloader,
    daemon_apply,
    running_of,
    watch_config,
)
from swapd.control.server import serve_control
from swapd.events import EventBus
from swapd.history import CaptureBuffer, HistoryStore, open_history
from swapd.history import settings_from_config as history_settings
from swapd.history.paths import database_path, ensure_state_dir, resolve_state_dir
from swapd.history.recorder import Recorder
from swapd.history.runs import RunHistory
from swapd.http.app import create_app
from swapd.http.config_view import settings_from_config as api_settings
from swapd.http.logs_hub import LogHub
from swapd.http.server import Server, ServerConfig
from swapd.http.services import Services
from swapd.process.events import StateChanged
from swapd.process.kv_files import argv_key, model_dir_name
from swapd.process.logs import LogRing
from swapd.process.meter import DEFAULT_PERIOD, Meter, Nvml, PoolSource
from swapd.process.pool import ProcessPool
from swapd.process.spec import KvSpec, ProcessSpec, SleepAction, SleepSpec
from swapd.process.states import ProcessState
from swapd.router import Router, SwapFinished, router_from_config
from swapd.router.footprints import Learned
from swapd.router.wake_times import follow_wakes
from swapd.systemd import Notifier

DEFAULT_LISTEN = "127.0.0.1:8080"
HTTP_DRAIN_SECONDS = 30.0
HTTP_CLOSE_SECONDS = 2.0
HARD_EXIT_SECONDS = 35.0
HISTORY_FLUSH_SECONDS = 2.0

log = logging.getLogger("swapd")


def kv_dirs(model_id: str, m: ModelConfig, state_dir: Path | None) -> KvSpec:
    """Where `model_id` saves its slots: `ROOT/<model>/<hash of its argv>` (`${KV_DIR}`);
    ROOT is `kvCache.dir`, or `kv` in the state directory."""
    kv = m.kv_cache
    root = Path(kv.dir).expanduser() if kv.dir else (state_dir or resolve_state_dir()) / "kv"
    return KvSpec(
        model_dir=root / model_dir_name(model_id),
        key=argv_key(m.argv),
        max_bytes=kv.max_bytes,
        timeout=kv.timeout,
    )


def process_specs(loaded: LoadedConfig, state_dir: Path | None = None) -> list[ProcessSpec]:
    """One ProcessSpec per configured model; `${KV_DIR}` in a cmd is filled in here."""
    specs = []
    for model_id, m in loaded.models.items():
        kv = kv_dirs(model_id, m, state_dir)
        argv = [arg.replace(KV_DIR_MACRO, str(kv.dir)) for arg in m.argv]
        specs.append(_spec(model_id, m, argv, kv if m.kv_cache.persist else None))
    return specs


def _spec(model_id: str, m: ModelConfig, argv: list[str], kv: KvSpec | None) -> ProcessSpec:
    return ProcessSpec(
        model_id=model_id,
        argv=tuple(argv),
        proxy_url=m.proxy,
        stop_argv=tuple(m.stop_argv) if m.stop_argv else None,
        env=dict(m.env),
        check_endpoint=m.check_endpoint,
        health_check_timeout=float(m.health_check_timeout),
        ttl=float(m.ttl),
        unload_timeout=float(m.unload_timeout),
        log_ring_bytes=m.log_ring_bytes,
        kv=kv,
        sleep=sleep_spec(m.sleep),
        devices=tuple(m.devices),
    )


def sleep_spec(config: SleepConfig | None) -> SleepSpec | None:
    if config is None:
        return None

    def action(call: SleepCall) -> SleepAction:
        argv = tuple(call.argv) if call.argv else None
        return SleepAction(method=call.method, endpoint=call.endpoint, argv=argv)

    return SleepSpec(action(config.sleep), action(config.wake), float(config.after))


def kv_save_seconds(loaded: LoadedConfig) -> float:
    """The longest the slots of a model may take to save at shutdown (0 when none persist)."""
    persisting = (m.kv_cache.timeout for m in loaded.models.values() if m.kv_cache.persist)
    return max(persisting, default=0.0)


async def drain(services: Services) -> None:
    """Return once no model request is in flight (new ones are refused with 503 meanwhile)."""
    with services.bus.subscribe(topics=("inflight",)) as sub:
        while services.in_flight.snapshot():
            await sub.receive()


def server_config(config: Config) -> ServerConfig:
    """The HTTP server's bounds from the `http:` section.

    In-flight model requests are drained before the server is told to stop
    (`drain`); what is left then are idle keep-alive connections and admin
    requests, which must not hold the stop up for long. Streams are never
    cut by a timeout.
    """
    http = config.http
    return ServerConfig(
        keep_alive_timeout=http.keep_alive_timeout,
        head_timeout=http.head_timeout,
        max_connections=http.max_connections,
        graceful_timeout=HTTP_CLOSE_SECONDS,
    )


class Daemon:
    """Every part of swapd for one config, run by `run()` until `request_stop()`."""

    def __init__(
        self,
        loaded: LoadedConfig,
        listen: str = DEFAULT_LISTEN,
        control_socket: Path | None = None,
        *,
        watch_config: bool = False,
        watch_interval: float = WATCH_INTERVAL,
        state_dir: Path | None = None,
        meter_period: float = DEFAULT_PERIOD,
    ) -> None:
        """`control_socket`: where the control socket listens; None runs without one.
        `watch_config`: reload when the config file changes (polled every `watch_interval`).
        `state_dir`: where swapd keeps its state (saved KV slots; the history file, where
        requests, swaps, exits, reloads and model runs, the learned footprints and load
        times, are kept). None: KV slots go where the environment says, no history is kept
        and model runs stay in memory. `meter_period`: seconds between samples of the live
        meters."""
        self.loaded = loaded
        self.state_dir = state_dir
        self.recorder: Recorder | None = None
        self.listen = listen
        self.control_socket = control_socket
        self.watch_config = watch_config
        self.watch_interval = watch_interval
        self.reloader: ConfigReloader | None = None
        self.bus = EventBus()
        self.notifier = Notifier()
        self._stop = trio.Event()
        self._http_stop = trio.Event()
        self.services: Services | None = None
        self.router: Router | None = None
        self.meter: Meter | None = None
        self.runs: RunHistory | None = None
        self.meter_period = meter_period
        self.urls: list[str] = []

    def request_stop(self) -> None:
        self._stop.set()

    async def run(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        pool_box: dict[str, ProcessPool] = {}

        def model_ring(model_id: str) -> LogRing | None:
            pool = pool_box.get("pool")
            return pool[model_id].logs if pool is not None and model_id in pool else None

        # logToStdout is read once: a reload does not change it (as in llama-swap).
        to_stdout = self.loaded.config.log_to_stdout
        hub = LogHub(self.bus, model_ring, to_stdout=to_stdout)
        async with self._history() as store, trio.open_nursery() as keeper:
            recorder = Recorder(self.bus, store, CaptureBuffer(self.loaded.config.capture_buffer))
            self.recorder = recorder
            await keeper.start(recorder.follow)
            await self._serve(pool_box, hub, recorder, task_status)
            # Every process has stopped: record their exits, then the store closes.
            recorder.stop_following()
        self.notifier.close()

    @asynccontextmanager
    async def _history(self) -> AsyncIterator[HistoryStore | None]:
        """The history store of `state_dir` (None without one, or with history off)."""
        config = self.loaded.config.history
        if self.state_dir is None or not config.enabled:
            yield None
            return
        async with open_history(self.state_dir, history_settings(config)) as store:
            yield store

    async def _serve(
        self,
        pool_box: dict[str, ProcessPool],
        hub: LogHub,
        recorder: Recorder,
        task_status: trio.TaskStatus[list[str]],
    ) -> None:
        async with ProcessPool(
            process_specs(self.loaded, self.state_dir), self.bus, proxy_log=hub.proxy
        ) as pool:
            pool_box["pool"] = pool
            async with trio.open_nursery() as nursery:
                await nursery.start(hub.run)
                nursery.start_soon(self._mirror_log, hub.mux)
                # The live meters: one sampler task, its blocking reads off the loop. What
                # they learn (footprints, load times) is what the budgets plan with.
                learned = Learned()
                runs = RunHistory(learned.books, self._runs_path())
                self.runs = runs
                await nursery.start(runs.run)
                meter = Meter(PoolSource(pool), runs, period=self.meter_period, nvml=Nvml.open())
                learned.live = meter.live_peaks
                learned.live_asleep = meter.live_asleep_peaks
                self.meter = meter
                await nursery.start(meter.run, self.bus)
                await nursery.start(follow_wakes, self.bus, runs)
                # One numbering for requests: their events, decisions and records.
                router = router_from_config(
                    self.loaded, pool, self.bus, learned, request_ids=recorder.next_id
                )
                self.router = router
                await nursery.start(router.run)
                services = Services(
                    api_settings(self.loaded),
                    router,
                    pool,
                    self.bus,
                    hub,
                    meter=meter,
                    recorder=recorder,
                )
                self.services = services
                nursery.start_soon(self._follow_events, services)
                http_done = trio.Event()
                self.urls = await nursery.start(self._serve_http, services, http_done)
                parts = DaemonParts(
                    self.loaded,
                    router,
                    pool,
                    self.bus,
                    hub,
                    listen=self.urls,
                    meter=meter,
                    learned=learned,
                    recorder=recorder,
                )
                reloader = self._reloader(parts, router, pool, services)
                if self.control_socket is not None:
                    await nursery.start(
                        partial(
                            serve_control,
                            self.control_socket,
                            DaemonBackend(parts, reloader=reloader.reload),
                            group=self.loaded.config.control.group,
                        )
                    )
                if self.watch_config:
                    await nursery.start(
                        partial(
                            watch_config,
                            reloader.path,
                            partial(reloader.reload_logged, "watch"),
                            interval=self.watch_interval,
                        )
                    )
                hub.info(f"swapd listening on {', '.join(self.urls)}")
                self.notifier.ready()
                nursery.start_soon(self.notifier.run_watchdog)
                task_status.started(self.urls)
                if self.loaded.config.preload:
                    nursery.start_soon(router.preload, self.loaded.config.preload)

                await self._stop.wait()
                self.notifier.stopping()
                hub.info("swapd shutting down")
                services.close_streams()
                with trio.move_on_after(HTTP_DRAIN_SECONDS):
                    await drain(services)
                self._http_stop.set()
                with trio.move_on_after(HTTP_CLOSE_SECONDS + 1):
                    await http_done.wait()
                await router.shutdown()
                # What the runs in progress took is kept for the next start.
                meter.end_runs()
                with trio.move_on_after(HISTORY_FLUSH_SECONDS):
                    await runs.flushed()
                await services.client.aclose()
                nursery.cancel_scope.cancel()

    def _runs_path(self) -> Path | None:
        """The history file the model runs go to; None without a usable state directory."""
        if self.state_dir is None or not self.loaded.config.history.enabled:
            return None
        try:
            return database_path(ensure_state_dir(self.state_dir))
        except OSError as exc:
            log.warning("model runs are kept in memory only: state directory: %s", exc)
            return None

    def _reloader(
        self, parts: DaemonParts, router: Router, pool: ProcessPool, services: Services
    ) -> ConfigReloader:
        """The reloader of this daemon's config file; `self.loaded` follows each reload."""

        def also(loaded: LoadedConfig) -> None:
            services.replace_settings(api_settings(loaded))
            recorder = services.records
            recorder.captures.resize(loaded.config.capture_buffer)
            if recorder.store is not None:
                recorder.store.update_settings(
                    history_settings(loaded.config.history, recorder.store.settings)
                )
            self.loaded = loaded

        specs = partial(process_specs, state_dir=self.state_dir)
        apply = daemon_apply(parts, router, pool, specs, also=also)
        self.reloader = ConfigReloader(
            self.loaded.path, apply, self.bus, notifier=self.notifier, running=running_of(parts)
        )
        return self.reloader

    async def reload(self) -> None:
        """Reload the config file now (SIGHUP); problems are logged and published."""
        if self.reloader is not None:
            await self.reloader.reload_logged()

    async def _serve_http(
        self,
        services: Services,
        done: trio.Event,
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(services.watches.run)
                await Server(create_app(services), server_config(self.loaded.config)).serve(
                    self.listen, shutdown_trigger=self._http_stop.wait, task_status=task_status
                )
                nursery.cancel_scope.cancel()
        finally:
            done.set()

    async def _follow_events(self, services: Services) -> None:
        """Swap results into the metrics; the running models into systemd's STATUS=.

        A model that stopped takes its pooled upstream connections with it: a
        restarted server on the same port must not be spoken to over sockets
        of the old one.
        """
        with self.bus.subscribe(topics=("swap", "state"), maxlen=256) as sub:
            async for event in sub:
                if isinstance(event, SwapFinished):
                    services.metrics.observe_swap(event.target, event.ok, event.seconds)
                    continue
                stopped = (ProcessState.STOPPED, ProcessState.FAILED)
                if isinstance(event, StateChanged) and event.new in stopped:
                    proxy = services.settings.models.get(event.model)
                    if proxy is not None:
                        services.client.forget(proxy.proxy)
                if self.notifier.enabled:
                    models = services.settings.models
                    running = [m for m in sorted(models) if services.state_of(m) == "ready"]
                    self.notifier.status(running)

    @staticmethod
    async def _mirror_log(ring: LogRing) -> None:
        """What `logToStdout` names (the mux) goes to swapd's output: stderr, which is
        journald under systemd. swapd's own lines only, by default."""
        with ring.subscribe(maxlen=1024) as sub:
            async for line in sub:
                level = (
                    logging.WARNING if line.stream in ("warn", "warning", "error") else logging.INFO
                )
                log.log(level, "%s", line.text)


def _arm_hard_exit(seconds: float) -> None:
    """If a graceful stop hangs, exit anyway: systemd must never wait on a wedged swapd."""
    timer = threading.Timer(seconds, os._exit, args=(1,))
    timer.daemon = True
    timer.start()


async def serve_until_signalled(
    loaded: LoadedConfig,
    listen: str,
    control_socket: Path | None,
    *,
    watch: bool = False,
    state_dir: Path | None = None,
) -> None:
    """Run a Daemon until SIGTERM or SIGINT; SIGHUP reloads the config file.

    Reloads never overlap: a SIGHUP during a reload waits for it to finish.
    """
    daemon = Daemon(loaded, listen, control_socket, watch_config=watch, state_dir=state_dir)
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    with trio.open_signal_receiver(*signals) as received:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(daemon.run)
            log.info("swapd serving %s on %s", loaded.path, ", ".join(urls))
            async for signum in received:
                if signum == signal.SIGHUP:
                    log.info("received SIGHUP, reloading %s", loaded.path)
                    nursery.start_soon(daemon.reload)
                    continue
                log.info("received %s, stopping", signal.Signals(signum).name)
                _arm_hard_exit(HARD_EXIT_SECONDS + kv_save_seconds(daemon.loaded))
                daemon.request_stop()
                break
