"""Config reload: validate the file first, apply it only if valid, say what changed.

Three triggers share one `ConfigReloader`: `swapctl reload` (the control
backend awaits `reload()` and relays its verdict), SIGHUP and
`swapd serve --watch-config` (both call `reload_logged()`, which never
raises). Reloads are serialised: a second trigger waits for the first.

An invalid file changes nothing: every problem is reported at once, with its
file:line:column, in the reply, as a `config` event on the bus (the TUI shows
it) and in the log. A valid file is handed to the daemon's `apply`, which
owns the running parts: it updates the process pool (models whose process
settings are unchanged keep running untouched; changed and removed ones are
stopped once idle) and the router, and reports which models it added,
removed and replaced. Under systemd a reload is bracketed by RELOADING=1
and READY=1, whatever its outcome (Type=notify-reload waits for both).

Unlike llama-swap, which builds a whole new server and stops every running
model on a reload (docs/compat.md, Reload), a reload here restarts only what
changed, and only once its requests in flight have finished: the router
drains the model, then retires it (`ProcessPool.stage` / `retire`), so a
new process never races its predecessor for the port either.

What changed is decided on effective settings, ports included, so the file
is loaded with the ports in use (`Running`): every model keeps its
`${PORT}`, and a new one gets a port no model and no live process holds
(`swapd.config.ports`). Adding a model therefore never renumbers, and so
never restarts, the others. The reply names, for each changed model, the
settings that changed, and carries the config's warnings.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import trio

from swapctl import protocol as p
from swapd.config import ConfigError, LoadedConfig, PortsInUse, load_config
from swapd.config.diff import changed_settings, start_only_changes
from swapd.control.backend import DaemonParts
from swapd.control.convert import problem
from swapd.control.interface import ControlError
from swapd.events import EventBus
from swapd.process.pool import ProcessPool
from swapd.process.spec import ProcessSpec
from swapd.process.states import ProcessState
from swapd.process.supervisor import ProcessSnapshot
from swapd.router.build import reload_from_config, router_settings
from swapd.router.run_loop import Router

log = logging.getLogger("swapd.reload")

WATCH_INTERVAL = 1.0


class Applied(Protocol):
    """What applying a config changed (`swapd.process.pool.PoolUpdate` has this shape):
    models `added`, `removed`, `replaced` (their process restarts), and every model
    whose effective settings `changed`, including those that keep their process
    (routing policy only)."""

    @property
    def added(self) -> Sequence[str]: ...

    @property
    def removed(self) -> Sequence[str]: ...

    @property
    def replaced(self) -> Sequence[str]: ...

    @property
    def changed(self) -> Sequence[str]: ...


Apply = Callable[[LoadedConfig], Awaitable[Applied]]


class Load(Protocol):
    """Reads and validates the config file (`swapd.config.load_config`)."""

    def __call__(self, path: Path, *, ports: PortsInUse | None = None) -> LoadedConfig: ...


@dataclass(frozen=True)
class Running:
    """What a reload starts from: the config in force and the ports live processes hold."""

    loaded: LoadedConfig
    held_ports: frozenset[int]

    def ports(self) -> PortsInUse:
        """What the next load must respect: every model's port, and the held ones."""
        config = self.loaded.config
        return PortsInUse(
            start_port=config.start_port,
            assigned={m: c.port for m, c in config.models.items() if c.port is not None},
            held=self.held_ports,
        )


LIVE_STATES = frozenset(
    {ProcessState.STARTING, ProcessState.READY, ProcessState.STOPPING, ProcessState.ASLEEP}
)


def held_ports(snapshots: Iterable[ProcessSnapshot]) -> frozenset[int]:
    """The ports of the processes alive now (serving, starting, draining or stopping)."""
    out = set()
    for snap in snapshots:
        if snap.state in LIVE_STATES:
            port = address(snap.proxy_url)[1]
            if port is not None:
                out.add(port)
    return frozenset(out)


def running_of(parts: DaemonParts) -> Callable[[], Running]:
    """Reads a running daemon's `Running` from its parts (call it in the trio thread)."""

    def read() -> Running:
        return Running(parts.loaded, held_ports(parts.pool.snapshots().values()))

    return read


class Notify(Protocol):
    """The systemd notifier (`swapd.systemd.Notifier`)."""

    def reloading(self) -> bool: ...

    def ready(self) -> bool: ...


@dataclass(frozen=True)
class DaemonApplied:
    """What `daemon_apply` did: processes `replaced` (restarted once drained) and
    every model whose settings `changed` (replaced, or routing policy only)."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    replaced: tuple[str, ...]
    changed: tuple[str, ...]


def drain_bound(spec: ProcessSpec) -> float:
    """How long a reloaded model may take to finish its requests in flight before
    its old process is stopped anyway: its healthCheckTimeout plus its
    unloadTimeout, the same budget a swap grants a model it evicts and stops.
    A reload must never wedge on a client that keeps a stream open."""
    return spec.health_check_timeout + spec.unload_timeout


def address(url: str) -> tuple[str, int | None]:
    """Host and port of a proxy URL, the default port filled in."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return (parts.hostname or "", parts.port or default)


def port_handovers(
    draining: Mapping[str, ProcessSpec], specs: Iterable[ProcessSpec]
) -> dict[str, tuple[str, ...]]:
    """For each new spec, the draining models (by their old spec) that listen where it
    will: it must not start before they are gone, or its health check could reach
    the old server (docs/compat.md, Reload)."""
    holders: dict[tuple[str, int | None], list[str]] = {}
    for model, spec in draining.items():
        holders.setdefault(address(spec.proxy_url), []).append(model)
    out: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        others = [m for m in holders.get(address(spec.proxy_url), ()) if m != spec.model_id]
        if others:
            out[spec.model_id] = tuple(sorted(others))
    return out


def daemon_apply(
    parts: DaemonParts,
    router: Router,
    pool: ProcessPool,
    specs_for: Callable[[LoadedConfig], Iterable[ProcessSpec]],
    *,
    also: Callable[[LoadedConfig], None] | None = None,
) -> Apply:
    """The usual `apply` for a running daemon.

    The pool stages the new specs (new models get a supervisor, nothing running
    is touched), then the router adopts the new config with the replaced and
    removed models as draining (waiters and queued requests for removed models
    fail, requests in flight finish, the queue drains under the new rules; the
    router retires each drained model through the pool), then `parts.loaded`
    and whatever `also` updates (e.g. the HTTP settings) see the new config.
    Everything that can fail on a valid config (the router's settings, the
    swapper) is computed by `reload_from_config` before the router takes it.
    """

    async def apply(loaded: LoadedConfig) -> Applied:
        old_policies = router.settings.models
        policies = router_settings(loaded).models
        specs = list(specs_for(loaded))
        update = await pool.stage(specs)
        drain = {m: drain_bound(pool[m].spec) for m in (*update.replaced, *update.removed)}
        pending = pool.staged()
        old = {m: pool[m].spec for m in pending if m in pool}
        handovers = port_handovers(old, specs)
        await reload_from_config(router, loaded, drain=drain, after=handovers)
        parts.loaded = loaded
        if also is not None:
            also(loaded)
        retuned = {m for m, pol in policies.items() if m in old_policies and old_policies[m] != pol}
        changed = tuple(m for m in policies if m in update.replaced or m in retuned)
        return DaemonApplied(update.added, update.removed, update.replaced, changed)

    return apply


def summarize(
    path: str,
    models: Collection[str],
    applied: Applied,
    old: LoadedConfig | None = None,
    new: LoadedConfig | None = None,
) -> p.ReloadResult:
    """The reply to a successful reload: every model of the new config in exactly one list
    (added / changed / unchanged), plus the removed ones; with the configs before and
    after, what changed in each changed model, and the new config's warnings."""
    added = list(applied.added)
    changed = [m for m in applied.changed if m in models]
    touched = set(added) | set(changed)
    changes: dict[str, list[str]] = {}
    if old is not None and new is not None:
        for m in changed:
            if m in old.models and m in new.models:
                changes[m] = changed_settings(old.models[m], new.models[m])
    warnings = [problem(w) for w in new.warnings] if new is not None else []
    if old is not None and new is not None:
        warnings += [
            p.Problem(
                message=f"{key} changed: it is read at start, so it applies once swapd restarts"
            )
            for key in start_only_changes(old.config, new.config)
        ]
    return p.ReloadResult(
        path=path,
        added=added,
        removed=list(applied.removed),
        changed=changed,
        unchanged=[m for m in models if m not in touched],
        changes=changes,
        warnings=warnings,
    )


class ConfigReloader:
    def __init__(
        self,
        path: str | os.PathLike[str],
        apply: Apply,
        bus: EventBus,
        load: Load = load_config,
        notifier: Notify | None = None,
        running: Callable[[], Running] | None = None,
    ) -> None:
        """`running`: what the daemon runs now (`running_of`); with it, models keep their
        ports and the reply says what changed in each model. Without it, ports are laid
        out afresh, as on a fresh start."""
        self.path = Path(path)
        self._apply = apply
        self._bus = bus
        self._load = load
        self._notifier = notifier
        self._running = running
        self._lock = trio.Lock()
        self.reloads = 0
        """Successful reloads so far."""

    async def reload(self, source: str = "control") -> p.ReloadResult:
        """Reload now; ControlError("config_invalid") when the file has problems,
        ControlError("internal") when applying a valid one failed. `source` (what
        asked: `control`, `signal`, `watch`) goes into the published event."""
        async with self._lock:
            if self._notifier is not None:
                self._notifier.reloading()
            try:
                return await self._reload(source)
            finally:
                if self._notifier is not None:
                    self._notifier.ready()

    async def _reload(self, source: str) -> p.ReloadResult:
        running = self._running() if self._running is not None else None
        ports = running.ports() if running is not None else None
        try:
            loaded = await trio.to_thread.run_sync(partial(self._load, self.path, ports=ports))
        except ConfigError as exc:
            problems = [problem(c) for c in exc.problems]
            self._publish(
                p.ConfigReloaded(
                    time=time.time(),
                    ok=False,
                    path=str(self.path),
                    problems=problems,
                    source=source,
                )
            )
            for c in exc.problems:
                log.error("reload rejected: %s", c)
            count = len(problems)
            raise ControlError(
                "config_invalid",
                f"{self.path}: {count} problem{'s' if count != 1 else ''}; "
                "the running config is unchanged",
                problems=problems,
            ) from None
        try:
            applied = await self._apply(loaded)
        except Exception as exc:
            log.exception("applying the config from %s failed", self.path)
            failure = [p.Problem(message=f"applying the config failed: {exc}")]
            self._publish(
                p.ConfigReloaded(
                    time=time.time(),
                    ok=False,
                    path=str(self.path),
                    problems=failure,
                    source=source,
                )
            )
            raise ControlError("internal", failure[0].message, problems=failure) from exc
        old = running.loaded if running is not None else None
        result = summarize(str(self.path), list(loaded.models), applied, old, loaded)
        self.reloads += 1
        self._publish(
            p.ConfigReloaded(
                time=time.time(),
                ok=True,
                path=result.path,
                added=result.added,
                removed=result.removed,
                changed=result.changed,
                changes=result.changes,
                warnings=result.warnings,
                source=source,
            )
        )
        log.info(
            "config reloaded from %s: added %s, removed %s, changed %s",
            self.path,
            ", ".join(result.added) or "none",
            ", ".join(result.removed) or "none",
            ", ".join(result.changed_labels()) or "none",
        )
        for warning in loaded.warnings:
            log.warning("config warning: %s", warning)
        if old is not None:
            for key in start_only_changes(old.config, loaded.config):
                log.warning("config: %s changed; it applies once swapd restarts", key)
        return result

    async def reload_logged(self, source: str = "signal") -> None:
        """Reload for SIGHUP or the file watcher: problems are logged, never raised."""
        try:
            await self.reload(source)
        except ControlError:
            pass  # already logged and published by reload()
        except Exception:
            log.exception("config reload failed")

    def _publish(self, event: p.ConfigReloaded) -> None:
        self._bus.publish(event)


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is edited or replaced: inode, size, mtime (None if missing)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


async def watch_config(
    path: str | os.PathLike[str],
    on_change: Callable[[], Awaitable[None]],
    *,
    interval: float = WATCH_INTERVAL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Call `on_change` after the file changed and then held still for one interval.

    Polling (no inotify dependency) once a second costs one stat(). Waiting for
    two equal readings skips half-written files; editors that replace the file
    (new inode) and a missing file while it is being replaced are both handled.
    """
    target = Path(path)
    seen = file_signature(target)
    task_status.started()
    pending: tuple[int, int, int] | None = None
    while True:
        await trio.sleep(interval)
        now = file_signature(target)
        if now is None or now == seen:
            pending = None
            continue
        if now != pending:
            pending = now  # changed: wait one more interval for it to settle
            continue
        seen, pending = now, None
        await on_change()
