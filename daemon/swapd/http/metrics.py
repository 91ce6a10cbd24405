"""Prometheus metrics for `/metrics` (prometheus_client, one registry per app).

Counters and histograms are updated as requests finish and as swap events
arrive from the bus; gauges (queue length, per-model state and in-flight)
are read from the router and the pool at scrape time, so they cannot drift.
Token counts are read from the `usage` figures found near the start or the
end of a response (where OpenAI, llama-server and Anthropic put them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from swapd.process.meter import HostSample, TreeReading
from swapd.process.states import ProcessState

# `*_created` series only add noise to a daemon's scrape.
disable_created_metrics()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_INPUT = re.compile(rb'"(?:prompt_tokens|input_tokens|tokens_evaluated)"\s*:\s*(\d+)')
_OUTPUT = re.compile(rb'"(?:completion_tokens|output_tokens|tokens_predicted)"\s*:\s*(\d+)')


def parse_usage(data: bytes) -> tuple[int, int]:
    """(input, output) tokens: the last figures of each kind found in `data`, else 0."""
    inputs = _INPUT.findall(data)
    outputs = _OUTPUT.findall(data)
    return (int(inputs[-1]) if inputs else 0, int(outputs[-1]) if outputs else 0)


@dataclass
class GaugeSource:
    """Where scrape-time gauges come from; set by the app once the services exist."""

    queue_length: Callable[[], int] = lambda: 0
    in_flight: Callable[[], Mapping[str, int]] = dict
    states: Callable[[], Mapping[str, str]] = dict
    # live meters
    meters: Callable[[], Mapping[str, TreeReading]] = dict
    host: Callable[[], HostSample | None] = lambda: None


class _LiveGauges(Collector):
    def __init__(self, source: GaugeSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily("swapd_queue_length", "Requests waiting in the router queue")
        queue.add_metric([], self.source.queue_length())
        yield queue
        in_flight = GaugeMetricFamily(
            "swapd_in_flight_requests", "Requests being served per model", labels=["model"]
        )
        for model, count in sorted(self.source.in_flight().items()):
            in_flight.add_metric([model], count)
        yield in_flight
        state = GaugeMetricFamily(
            "swapd_model_state",
            "1 for the current process state of each model",
            labels=["model", "state"],
        )
        for model, current in sorted(self.source.states().items()):
            for candidate in ProcessState:
                state.add_metric(
                    [model, candidate.value], 1.0 if candidate.value == current else 0.0
                )
        yield state
        yield from _meter_gauges(self.source)


def _meter_gauges(source: GaugeSource) -> Iterator[Metric]:
    """Each running model's process tree and the host, as the meter last sampled them."""
    readings = sorted(source.meters().items())
    cpu = GaugeMetricFamily(
        "swapd_model_cpu_percent", "CPU % of each model's process tree", labels=["model"]
    )
    ram = GaugeMetricFamily(
        "swapd_model_resident_bytes",
        "Resident memory of each model's process tree",
        labels=["model"],
    )
    vram = GaugeMetricFamily(
        "swapd_model_gpu_bytes", "GPU memory of each model's processes (NVML)", labels=["model"]
    )
    for model, r in readings:
        cpu.add_metric([model], r.cpu_percent)
        ram.add_metric([model], r.ram)
        if r.vram is not None:
            vram.add_metric([model], r.vram)
    yield cpu
    yield ram
    yield vram
    host = source.host()
    if host is None:
        return
    host_cpu = GaugeMetricFamily("swapd_host_cpu_percent", "CPU % of the host")
    host_cpu.add_metric([], host.cpu_percent)
    yield host_cpu
    mem = GaugeMetricFamily("swapd_host_memory_bytes", "Host memory", labels=["kind"])
    mem.add_metric(["used"], host.mem_used)
    mem.add_metric(["total"], host.mem_total)
    yield mem
    if host.gpus is not None:
        gpu = GaugeMetricFamily(
            "swapd_host_gpu_memory_bytes", "Memory of each GPU", labels=["gpu", "kind"]
        )
        for g in host.gpus:
            gpu.add_metric([str(g.index), "used"], g.used)
            gpu.add_metric([str(g.index), "total"], g.total)
        yield gpu


@dataclass
class Metrics:
    """The app's metric families and registry."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    source: GaugeSource = field(default_factory=GaugeSource)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "swapd_requests", "Model requests answered", ["model", "path", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "swapd_request_duration_seconds",
            "Time from arrival to the end of the response",
            ["model"],
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.tokens = Counter(
            "swapd_tokens",
            "Tokens reported by upstream usage figures",
            ["model", "kind"],
            registry=r,
        )
        self.swaps = Counter("swapd_swaps", "Finished swaps", ["model", "result"], registry=r)
        self.load_seconds = Histogram(
            "swapd_model_load_duration_seconds",
            "Time a successful swap took",
            ["model"],
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
        )
        r.register(_LiveGauges(self.source))
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._token_children: dict[tuple[str, str], Any] = {}

    def observe_request(
        self, model: str, path: str, status: int, seconds: float, usage: tuple[int, int]
    ) -> None:
        # Labelled children are looked up once per label set: `labels()`
        # validates and locks on every call, a cost paid by every request.
        key = (model, path, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(model, path, str(status)),
                self.request_seconds.labels(model),
            )
        children[0].inc()
        children[1].observe(seconds)
        for kind, count in (("input", usage[0]), ("output", usage[1])):
            if count:  # a token series appears only once it counted something
                child = self._token_children.get((model, kind))
                if child is None:
                    child = self._token_children[(model, kind)] = self.tokens.labels(model, kind)
                child.inc(count)

    def observe_swap(self, model: str, ok: bool, seconds: float) -> None:
        self.swaps.labels(model, "ok" if ok else "failed").inc()
        if ok:
            self.load_seconds.labels(model).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
