"""The meter: pure aggregation of readings, runs and their peaks, NVML when absent."""

from __future__ import annotations

import os
import types
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.process.meter import (
    GpuDevice,
    GpuProcess,
    Meter,
    Nvml,
    ProcSample,
    RunPeaks,
    RunReport,
    TreeReading,
    _Pass,
    aggregate_tree,
    host_cpu_percent,
    sample_tree,
)
from swapd.process.states import ProcessState


def test_a_tree_sums_its_processes_and_only_its_gpu_memory() -> None:
    samples = [ProcSample(10, 5.0, 100), ProcSample(11, 1.0, 50)]
    gpu = [GpuProcess(10, 0, 1000), GpuProcess(11, 1, 24), GpuProcess(99, 0, 7)]
    reading, cpu = aggregate_tree(10, samples, gpu, {10: 4.0, 11: 0.5}, 2.0)
    assert reading == TreeReading(pid=10, cpu_percent=75.0, ram=150, vram=1024, processes=2)
    assert cpu == {10: 5.0, 11: 1.0}


def test_without_nvml_there_is_no_vram_and_the_first_pass_has_no_cpu_percent() -> None:
    reading, _ = aggregate_tree(1, [ProcSample(1, 9.0, 10)], None, {}, 3.0)
    assert reading.vram is None and reading.cpu_percent == 0.0 and reading.ram == 10


def test_a_process_new_since_the_last_pass_counts_what_it_spent() -> None:
    reading, _ = aggregate_tree(
        1, [ProcSample(1, 2.0, 1), ProcSample(2, 1.0, 1)], None, {1: 1.0}, 1.0
    )
    assert reading.cpu_percent == 200.0


@given(
    st.lists(st.tuples(st.integers(1, 50), st.floats(0, 1e4), st.integers(0, 2**40)), max_size=8),
    st.dictionaries(st.integers(1, 50), st.floats(0, 1e4)),
    st.floats(0, 100),
)
def test_readings_are_never_negative(
    rows: list[tuple[int, float, int]], previous: dict[int, float], elapsed: float
) -> None:
    samples = [ProcSample(p, c, r) for p, c, r in rows]
    reading, _ = aggregate_tree(1, samples, [], previous, elapsed)
    assert reading.cpu_percent >= 0 and reading.ram == sum(r for _, _, r in rows)
    assert reading.vram == 0


def test_host_cpu_percent() -> None:
    assert host_cpu_percent(None, (1.0, 2.0)) == 0.0
    assert host_cpu_percent((1.0, 2.0), (2.0, 6.0)) == 25.0
    assert host_cpu_percent((1.0, 2.0), (1.0, 2.0)) == 0.0


def test_run_peaks_keep_the_highest_of_each_measure() -> None:
    run = RunPeaks(1)
    assert run.peaks() == {}
    run.add(TreeReading(pid=1, cpu_percent=0, ram=5, vram=None))
    assert run.peaks() == {"ram": 5}
    run.add(TreeReading(pid=1, cpu_percent=0, ram=3, vram=9))
    run.add(TreeReading(pid=1, cpu_percent=0, ram=4, vram=2))
    assert run.peaks() == {"ram": 5, "vram": 9}


def test_sampling_this_process_sees_its_memory() -> None:
    samples = sample_tree(os.getpid())
    assert samples and samples[0].pid == os.getpid() and samples[0].rss > 0
    assert sample_tree(2**22 + 12345) == []


def test_nvml_absent_or_broken_means_no_gpu_figures() -> None:
    assert Nvml.open(lambda: None) is None

    def broken() -> types.ModuleType:
        module = types.ModuleType("pynvml")

        def init() -> None:
            raise RuntimeError("NVML Shared Library Not Found")

        module.nvmlInit = init  # type: ignore[attr-defined]
        return module

    assert Nvml.open(broken) is None


def fake_nvml() -> types.ModuleType:
    m = types.ModuleType("pynvml")
    info = types.SimpleNamespace
    m.nvmlInit = lambda: None  # type: ignore[attr-defined]
    m.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    m.nvmlDeviceGetCount = lambda: 2  # type: ignore[attr-defined]
    m.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    procs = {0: [info(pid=10, usedGpuMemory=100), info(pid=11, usedGpuMemory=None)], 1: []}
    m.nvmlDeviceGetComputeRunningProcesses = lambda h: procs[h]  # type: ignore[attr-defined]
    m.nvmlDeviceGetGraphicsRunningProcesses = lambda h: [info(pid=10, usedGpuMemory=100)]  # type: ignore[attr-defined]
    m.nvmlDeviceGetMemoryInfo = lambda h: info(used=100 * (h + 1), total=1000)  # type: ignore[attr-defined]
    m.nvmlDeviceGetName = lambda h: b"Fake GPU"  # type: ignore[attr-defined]
    return m


def test_nvml_reads_processes_once_per_device_and_devices() -> None:
    nvml = Nvml.open(fake_nvml)
    assert nvml is not None
    assert nvml.processes() == [GpuProcess(10, 0, 100), GpuProcess(10, 1, 100)]
    assert nvml.devices() == [
        GpuDevice(0, "Fake GPU", 100, 1000),
        GpuDevice(1, "Fake GPU", 200, 1000),
    ]


class Source:
    def __init__(self) -> None:
        self.targets: dict[str, tuple[int, float | None]] = {}
        self.state: dict[str, ProcessState] = {}

    def states(self) -> Mapping[str, ProcessState]:
        return self.state

    def meter_targets(self) -> Mapping[str, tuple[int, float | None]]:
        return self.targets


class Sink:
    def __init__(self) -> None:
        self.runs: list[tuple[str, dict[str, int]]] = []
        self.loads: list[tuple[str, float]] = []
        self.reports: list[RunReport] = []

    def run_ended(self, report: RunReport) -> None:
        self.reports.append(report)
        self.runs.append((report.model, dict(report.peaks)))

    def loaded(self, model: str, seconds: float) -> None:
        self.loads.append((model, seconds))


def one_pass(
    at: float, trees: dict[str, list[ProcSample]], gpu: list[GpuProcess] | None = None
) -> _Pass:
    return _Pass(
        trees=trees,
        gpu=gpu,
        devices=None,
        host_times=(at, 2 * at),
        memory=(1, 2),
        at=at,
        wall=1000 + at,
    )


def test_a_run_reports_its_peaks_when_its_process_goes_and_its_load_once() -> None:
    source, sink = Source(), Sink()
    meter = Meter(source, sink)
    targets = {"a": (10, 2.5)}
    ready = {"a": ProcessState.READY}
    meter.apply(
        one_pass(1.0, {"a": [ProcSample(10, 0, 300)]}), targets, {"a": ProcessState.STARTING}
    )
    assert sink.loads == [] and meter.live_peaks("a") == {"ram": 300}
    meter.apply(one_pass(2.0, {"a": [ProcSample(10, 1, 500)]}, []), targets, ready)
    meter.apply(one_pass(3.0, {"a": [ProcSample(10, 1, 400)]}), targets, ready)
    assert sink.loads == [("a", 2.5)]
    reading = meter.reading("a")
    assert reading is not None and reading.ram == 400
    assert meter.live_peaks("a") == {"ram": 500, "vram": 0}
    # The same model in a new process: the first run ends.
    meter.apply(one_pass(4.0, {"a": [ProcSample(11, 0, 100)]}), {"a": (11, 1.0)}, ready)
    assert sink.runs == [("a", {"ram": 500, "vram": 0})]
    assert sink.reports[0] == RunReport("a", 1001.0, 2.5, {"ram": 500, "vram": 0})
    assert sink.loads == [("a", 2.5), ("a", 1.0)]
    meter.apply(one_pass(5.0, {}), {}, {})
    assert sink.runs[-1] == ("a", {"ram": 100}) and meter.reading("a") is None
    host = meter.host()
    assert host is not None and host.cpu_percent == 50.0 and host.gpus is None


def test_asleep_peaks_count_only_readings_taken_asleep_from_start_to_end_of_the_pass() -> None:
    meter = Meter(Source(), Sink())
    targets = {"a": (10, 1.0)}
    ready, asleep = {"a": ProcessState.READY}, {"a": ProcessState.ASLEEP}
    meter.apply(one_pass(1.0, {"a": [ProcSample(10, 0, 900)]}), targets, ready)
    meter.apply(one_pass(2.0, {"a": [ProcSample(10, 0, 800)]}), targets, asleep, ready)
    assert meter.live_asleep_peaks("a") == {}, "it fell asleep during the pass: an awake reading"
    meter.apply(one_pass(3.0, {"a": [ProcSample(10, 0, 200)]}, []), targets, asleep, asleep)
    meter.apply(one_pass(4.0, {"a": [ProcSample(10, 0, 300)]}), targets, asleep)
    assert meter.live_asleep_peaks("a") == {"ram": 300, "vram": 0}
    assert meter.live_peaks("a") == {"ram": 900, "vram": 0}
    meter.apply(one_pass(5.0, {}), {}, {})
    assert meter.live_asleep_peaks("a") == {}, "the run ended"


@pytest.mark.trio
async def test_the_task_samples_a_real_process_tree() -> None:
    import trio

    source, sink = Source(), Sink()
    source.targets = {"me": (os.getpid(), None)}
    meter = Meter(source, sink, period=60)
    async with trio.open_nursery() as nursery:
        await nursery.start(meter.run)
        with trio.fail_after(10):
            await meter.next_pass()
        reading = meter.reading("me")
        assert reading is not None and reading.ram > 0
        nursery.cancel_scope.cancel()
