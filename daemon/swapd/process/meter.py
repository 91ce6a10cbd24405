"""Live meters: CPU and memory of each model's process tree, GPU memory, the host.

Three layers, so that what is decided can be tested without processes:

- **Readings** (`ProcSample`, `GpuProcess`, `HostSample`): what one pass of
  sampling saw, plain data.
- **Aggregation** (`aggregate_tree`, `RunPeaks`): pure functions of readings.
  A tree's CPU % is the CPU seconds its processes spent since the previous
  pass over the seconds that passed (a process new since then counts what it
  spent in all); its `ram` is the resident memory of every process of the
  tree summed; its `vram` the GPU memory NVML reports for those processes,
  summed over devices. A model run's peaks are the highest of each; its
  asleep peaks the highest of the readings taken while it was asleep (asleep
  when the pass began and when it was folded, so a reading of the model
  awake is never counted as asleep).
- **Sampling** (`sample_tree`, `sample_host`, `Nvml`): psutil and NVML calls,
  blocking, run off the event loop by the `Meter` task, one pass at a time.

NVML comes from the optional `gpu` extra (`nvidia-ml-py`). Without the
package, a driver or a GPU there are no GPU figures (`None`), never an error.

`Meter.run` is the one sampler task: it samples every `period` seconds and at
once when a model becomes ready or starts stopping (its last reading before
it goes), keeps the latest readings for the control socket, `/running` and
`/metrics`, and reports each finished run's peaks and each load's seconds to
a `RunSink` (the learned footprints and costs).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Protocol

import msgspec
import psutil
import trio

from swapd.events import EventBus
from swapd.process.events import StateChanged
from swapd.process.pool import ProcessPool
from swapd.process.states import ProcessState

log = logging.getLogger("swapd.meter")

DEFAULT_PERIOD = 3.0
#: Processes of one tree sampled at most (a fork bomb must not make a pass unbounded).
MAX_TREE = 256

# --------------------------------------------------------------------------- readings


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One process as a pass saw it: CPU seconds spent so far and resident bytes."""

    pid: int
    cpu_seconds: float
    rss: int


class GpuProcess(msgspec.Struct, frozen=True):
    """GPU memory one process holds on one device (NVML's `usedGpuMemory`)."""

    pid: int
    device: int
    used: int


class GpuDevice(msgspec.Struct, frozen=True):
    """One GPU: its memory in use and in total, bytes."""

    index: int
    name: str
    used: int
    total: int


class HostSample(msgspec.Struct, frozen=True):
    """The machine: CPU % since the previous pass, memory, and each GPU (None: no NVML)."""

    cpu_percent: float
    mem_used: int
    mem_total: int
    gpus: tuple[GpuDevice, ...] | None = None


class TreeReading(msgspec.Struct, frozen=True):
    """One model's process tree: CPU %, resident bytes, GPU bytes (None: not measured)."""

    pid: int
    cpu_percent: float
    ram: int
    vram: int | None = None
    processes: int = 1


# ------------------------------------------------------------------------ aggregation


def aggregate_tree(
    pid: int,
    samples: Sequence[ProcSample],
    gpu: Sequence[GpuProcess] | None,
    previous: Mapping[int, float],
    elapsed: float,
) -> tuple[TreeReading, dict[int, float]]:
    """The reading of the tree rooted at `pid`, and the CPU seconds per pid to keep
    for the next pass. `previous`: that map from the previous pass; `elapsed`: the
    seconds since it (0 or less: CPU % is 0)."""
    spent = 0.0
    now_cpu: dict[int, float] = {}
    for s in samples:
        now_cpu[s.pid] = s.cpu_seconds
        spent += max(0.0, s.cpu_seconds - previous.get(s.pid, 0.0))
    percent = 100.0 * spent / elapsed if elapsed > 0 and previous else 0.0
    vram: int | None = None
    if gpu is not None:
        pids = set(now_cpu)
        vram = sum(g.used for g in gpu if g.pid in pids)
    reading = TreeReading(
        pid=pid,
        cpu_percent=round(percent, 1),
        ram=sum(s.rss for s in samples),
        vram=vram,
        processes=len(samples),
    )
    return reading, now_cpu


def host_cpu_percent(previous: tuple[float, float] | None, now: tuple[float, float]) -> float:
    """CPU % of the host between two (busy seconds, total seconds) readings."""
    if previous is None:
        return 0.0
    total = now[1] - previous[1]
    if total <= 0:
        return 0.0
    return round(max(0.0, min(100.0, 100.0 * (now[0] - previous[0]) / total)), 1)


@dataclass(slots=True)
class RunPeaks:
    """The highest readings of one run of a model (one process, from spawn to exit),
    when it was first seen (wall clock) and how long its load took."""

    pid: int
    started: float = 0.0
    ram: int = 0
    vram: int | None = None
    load_seconds: float | None = None
    asleep: dict[str, int] = field(default_factory=dict)
    """measure -> the highest reading taken while the model was asleep."""

    def add(self, reading: TreeReading) -> None:
        self.ram = max(self.ram, reading.ram)
        if reading.vram is not None:
            self.vram = max(self.vram or 0, reading.vram)

    def add_asleep(self, reading: TreeReading) -> None:
        if reading.ram > 0:
            self.asleep["ram"] = max(self.asleep.get("ram", 0), reading.ram)
        if reading.vram is not None:
            self.asleep["vram"] = max(self.asleep.get("vram", 0), reading.vram)

    def peaks(self) -> dict[str, int]:
        """measure -> peak, for the measures this run took (`vram` only with NVML)."""
        out = {"ram": self.ram} if self.ram > 0 else {}
        if self.vram is not None:
            out["vram"] = self.vram
        return out


# --------------------------------------------------------------------------- sampling


def sample_tree(pid: int, limit: int = MAX_TREE) -> list[ProcSample]:
    """The process `pid` and its descendants (at most `limit`); [] when it is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)[: limit - 1]]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []
    out: list[ProcSample] = []
    for p in procs:
        try:
            with p.oneshot():
                times = p.cpu_times()
                out.append(ProcSample(p.pid, times.user + times.system, p.memory_info().rss))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def host_times() -> tuple[float, float]:
    """(busy CPU seconds, total CPU seconds) of the host so far."""
    t = psutil.cpu_times()
    total = float(sum(t))
    idle = t.idle + getattr(t, "iowait", 0.0)  # iowait exists on Linux only
    return total - idle, total


def host_memory() -> tuple[int, int]:
    """(used, total) bytes of the host's memory; used is total minus available."""
    vm = psutil.virtual_memory()
    return int(vm.total - vm.available), int(vm.total)


def _import_nvml() -> ModuleType | None:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


class Nvml:
    """NVML when it works: GPU memory per process and per device. `open()` returns
    None where the package, the driver or a GPU is missing."""

    def __init__(self, nvml: ModuleType, handles: list[object]) -> None:
        self._nvml = nvml
        self._handles = handles

    @classmethod
    def open(cls, importer: Callable[[], ModuleType | None] = _import_nvml) -> Nvml | None:
        nvml = importer()
        if nvml is None:
            return None
        try:
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:  # NVMLError and its many subclasses: no driver, no GPU
            log.info("no GPU figures: NVML is not usable (%s)", exc)
            return None
        if not handles:
            return None
        return cls(nvml, handles)

    def processes(self) -> list[GpuProcess]:
        """GPU memory of every process on every device (a failing device is skipped)."""
        out: list[GpuProcess] = []
        nvml = self._nvml
        for index, handle in enumerate(self._handles):
            seen: set[int] = set()
            for query in (
                nvml.nvmlDeviceGetComputeRunningProcesses,
                nvml.nvmlDeviceGetGraphicsRunningProcesses,
            ):
                try:
                    infos = query(handle)
                except Exception:
                    continue
                for info in infos:
                    used = info.usedGpuMemory
                    if info.pid in seen or not isinstance(used, int):
                        continue  # None where the driver does not tell (no permission)
                    seen.add(info.pid)
                    out.append(GpuProcess(int(info.pid), index, used))
        return out

    def devices(self) -> list[GpuDevice]:
        out: list[GpuDevice] = []
        nvml = self._nvml
        for index, handle in enumerate(self._handles):
            try:
                mem = nvml.nvmlDeviceGetMemoryInfo(handle)
                name = nvml.nvmlDeviceGetName(handle)
            except Exception:
                continue
            text = name.decode() if isinstance(name, bytes) else str(name)
            out.append(GpuDevice(index, text, int(mem.used), int(mem.total)))
        return out

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass


# ------------------------------------------------------------------------- the task


class ProcessSource(Protocol):
    """Where the meter finds each model's process (the process pool)."""

    def states(self) -> Mapping[str, ProcessState]: ...

    def meter_targets(self) -> Mapping[str, tuple[int, float | None]]:
        """model -> (pid, seconds its last load took) for each model with a live child."""
        ...


class RunReport(msgspec.Struct, frozen=True):
    """One finished run of a model: its peaks per measure (`ram`, `vram` with NVML), and
    its peaks while it was asleep (empty when it never slept or was never read asleep)."""

    model: str
    started: float
    load_seconds: float | None
    peaks: dict[str, int]
    asleep: dict[str, int] = {}


class RunSink(Protocol):
    """Who learns from the meter: each load's seconds as it becomes ready, each run
    once it has ended."""

    def loaded(self, model: str, seconds: float) -> None: ...

    def run_ended(self, report: RunReport) -> None: ...


class MeterView(Protocol):
    """What readers of the meter see (control socket, HTTP, router)."""

    def reading(self, model: str) -> TreeReading | None: ...

    def host(self) -> HostSample | None: ...

    def live_peaks(self, model: str) -> Mapping[str, int]: ...


@dataclass
class _Pass:
    """What one sampling pass (in a worker thread) returns."""

    trees: dict[str, list[ProcSample]]
    gpu: list[GpuProcess] | None
    devices: list[GpuDevice] | None
    host_times: tuple[float, float]
    memory: tuple[int, int]
    at: float
    wall: float


def _sample_all(pids: Mapping[str, int], nvml: Nvml | None) -> _Pass:
    return _Pass(
        trees={m: sample_tree(pid) for m, pid in pids.items()},
        gpu=nvml.processes() if nvml is not None else None,
        devices=nvml.devices() if nvml is not None else None,
        host_times=host_times(),
        memory=host_memory(),
        at=time.monotonic(),
        wall=time.time(),
    )


@dataclass
class Meter:
    """The sampler task and its latest readings (see the module docstring)."""

    source: ProcessSource
    sink: RunSink | None = None
    period: float = DEFAULT_PERIOD
    nvml: Nvml | None = None
    readings: dict[str, TreeReading] = field(default_factory=dict)
    runs: dict[str, RunPeaks] = field(default_factory=dict)
    passes: int = 0
    _host: HostSample | None = None
    _cpu: dict[str, dict[int, float]] = field(default_factory=dict)
    _host_times: tuple[float, float] | None = None
    _last_at: float | None = None
    _wake: trio.Event = field(default_factory=trio.Event)
    _passed: trio.Event = field(default_factory=trio.Event)

    # -- reading

    def reading(self, model: str) -> TreeReading | None:
        return self.readings.get(model)

    def host(self) -> HostSample | None:
        return self._host

    def live_peaks(self, model: str) -> Mapping[str, int]:
        """The peaks of the model's current run so far ({} when it is not running)."""
        run = self.runs.get(model)
        return run.peaks() if run is not None else {}

    def live_asleep_peaks(self, model: str) -> Mapping[str, int]:
        """The peaks of the model's current run while it was asleep ({} when none)."""
        run = self.runs.get(model)
        return dict(run.asleep) if run is not None else {}

    # -- the task

    def wake(self) -> None:
        """Sample now rather than at the end of the period."""
        self._wake.set()

    async def next_pass(self) -> None:
        """Wait for a pass that starts after this call (tests, and `sample_now`)."""
        passes = self.passes
        while self.passes < passes + 2:
            passed = self._passed
            self.wake()
            await passed.wait()

    async def run(
        self,
        bus: EventBus | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            if bus is not None:
                nursery.start_soon(self._follow, bus)
            task_status.started()
            try:
                while True:
                    await self.sample_once()
                    with trio.move_on_after(self.period):
                        await self._wake.wait()
                    self._wake = trio.Event()
            finally:
                if self.nvml is not None:
                    self.nvml.close()

    async def _follow(self, bus: EventBus) -> None:
        wake_on = (ProcessState.READY, ProcessState.STOPPING, ProcessState.STOPPED)
        with bus.subscribe(topics=("state",), maxlen=256) as sub:
            async for event in sub:
                if isinstance(event, StateChanged) and event.new in wake_on:
                    self.wake()

    async def sample_once(self) -> None:
        targets = dict(self.source.meter_targets())
        before = dict(self.source.states())
        pids = {m: pid for m, (pid, _) in targets.items()}
        sampled = await trio.to_thread.run_sync(_sample_all, pids, self.nvml)
        self.apply(sampled, targets, self.source.states(), before)

    def apply(
        self,
        sampled: _Pass,
        targets: Mapping[str, tuple[int, float | None]],
        states: Mapping[str, ProcessState],
        before: Mapping[str, ProcessState] | None = None,
    ) -> None:
        """Fold one pass into the readings, the runs and the sink (no I/O). `before`:
        the states when the pass began (`states` when not given)."""
        before = states if before is None else before
        elapsed = sampled.at - self._last_at if self._last_at is not None else 0.0
        self._last_at = sampled.at
        readings: dict[str, TreeReading] = {}
        for model, samples in sampled.trees.items():
            pid = targets[model][0]
            run = self.runs.get(model)
            if run is not None and run.pid != pid:
                self._end_run(model)
                run = None
            if not samples:
                continue
            previous = self._cpu.get(model, {}) if run is not None else {}
            reading, self._cpu[model] = aggregate_tree(pid, samples, sampled.gpu, previous, elapsed)
            readings[model] = reading
            if run is None:
                run = self.runs[model] = RunPeaks(pid, started=sampled.wall)
            run.add(reading)
            asleep = ProcessState.ASLEEP
            if states.get(model) is asleep and before.get(model) is asleep:
                run.add_asleep(reading)
            load = targets[model][1]
            ready = states.get(model) == ProcessState.READY
            if run.load_seconds is None and ready and load is not None:
                run.load_seconds = load
                if self.sink is not None:
                    self.sink.loaded(model, load)
        for model in [m for m in self.runs if m not in targets]:
            self._end_run(model)
        self.readings = readings
        self._host = HostSample(
            cpu_percent=host_cpu_percent(self._host_times, sampled.host_times),
            mem_used=sampled.memory[0],
            mem_total=sampled.memory[1],
            gpus=tuple(sampled.devices) if sampled.devices is not None else None,
        )
        self._host_times = sampled.host_times
        self.passes += 1
        passed, self._passed = self._passed, trio.Event()
        passed.set()

    def end_runs(self) -> None:
        """End every run in progress (swapd stops): their peaks so far are reported."""
        for model in list(self.runs):
            self._end_run(model)

    def _end_run(self, model: str) -> None:
        run = self.runs.pop(model)
        self._cpu.pop(model, None)
        peaks = run.peaks()
        if peaks and self.sink is not None:
            self.sink.run_ended(
                RunReport(model, run.started, run.load_seconds, peaks, dict(run.asleep))
            )


class PoolSource:
    """A `ProcessSource` over the process pool."""

    def __init__(self, pool: ProcessPool) -> None:
        self._pool = pool

    def states(self) -> Mapping[str, ProcessState]:
        return self._pool.states()

    def meter_targets(self) -> Mapping[str, tuple[int, float | None]]:
        return {
            m: (snap.pid, snap.last_load_seconds)
            for m, snap in self._pool.snapshots().items()
            if snap.pid is not None
        }
