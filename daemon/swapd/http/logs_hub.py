"""The log streams the API serves: proxy (swapd's own), upstream (every model), mux.

Each model's supervisor keeps its own `LogRing`; swapd's own messages go to
`hub.proxy`. `LogHub.run` copies every line published on the bus (topic
"log") into the combined `upstream` ring, prefixing model output with
`[<model>] ` so the combined view says who printed what, and into the `mux`
ring what `logToStdout` names: swapd's own lines (`proxy`, the default), the
models' (`upstream`), `both`, or nothing (`none`), as llama-swap does. The mux
is what `GET /logs` serves and what swapd prints on its own output. It reads a
bounded, lossy bus subscription, so a flood of output never slows anyone; a
lag is recorded in the rings as a marker line.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from swapd.config.model import LogToStdout
from swapd.events import EventBus
from swapd.process.events import LogBatch, LogLine
from swapd.process.logs import LogRing

RING_BYTES = 256 * 1024


class LogHub:
    def __init__(
        self,
        bus: EventBus,
        model_ring: Callable[[str], LogRing | None] = lambda _model: None,
        ring_bytes: int = RING_BYTES,
        to_stdout: LogToStdout = "proxy",
    ) -> None:
        self.bus = bus
        self.model_ring = model_ring
        self.proxy = LogRing("proxy", ring_bytes, bus=bus)
        self.upstream = LogRing("upstream", ring_bytes)
        self.mux = LogRing("mux", ring_bytes)
        self.mux_proxy = to_stdout in ("proxy", "both")
        self.mux_upstream = to_stdout in ("upstream", "both")

    def info(self, text: str) -> None:
        """One line of swapd's own log (the "proxy" stream)."""
        self.proxy.write("info", text)

    def named(self, name: str) -> LogRing | None:
        """ "" (mux), "proxy" or "upstream"; None for anything else."""
        return {"": self.mux, "proxy": self.proxy, "upstream": self.upstream}.get(name)

    def copy(self, line: LogLine) -> None:
        if line.source == "proxy":
            if self.mux_proxy:
                self.mux.write(line.stream, line.text, line.time)
            return
        text = f"[{line.source}] {line.text}"
        self.upstream.write(line.stream, text, line.time)
        if self.mux_upstream:
            self.mux.write(line.stream, text, line.time)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Copy bus log lines into the combined rings until cancelled."""
        with self.bus.subscribe(topics=("log",), maxlen=4096) as sub:
            task_status.started()
            async for line in sub:
                lagged = sub.take_lagged()
                if lagged:
                    marker = f"— {lagged} log events dropped —"
                    self.upstream.write("dropped", marker)
                    if self.mux_proxy or self.mux_upstream:
                        self.mux.write("dropped", marker)
                if isinstance(line, LogLine):
                    self.copy(line)
                elif isinstance(line, LogBatch):
                    for one in line.lines():
                        self.copy(one)
