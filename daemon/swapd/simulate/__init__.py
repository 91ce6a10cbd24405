"""Replay traffic through a config: the daemon's scheduler and swapper on a virtual clock.

- `trace`: the trace format (JSON Lines, one request a line), read and written.
- `engine`: `simulate(loaded, trace, load_times)`, the discrete-event run.
- `report`: per config and per model figures, the difference of two configs,
  the table and the `--json` shape.
- `history_source`: traces and measured load times from swapd's history file.
- `compare`: load times, the history's inputs, configs run side by side
  (`swapd simulate` and the daemon's `simulate` control request).
- `cli`: `swapd simulate`.
"""

from __future__ import annotations

from swapd.simulate.engine import Load, RequestResult, SimResult, Simulation, simulate
from swapd.simulate.report import ConfigReport, LoadTime, Report, Summary
from swapd.simulate.trace import TraceError, TraceRequest, read_trace, write_trace

__all__ = [
    "ConfigReport",
    "Load",
    "LoadTime",
    "Report",
    "RequestResult",
    "SimResult",
    "Simulation",
    "Summary",
    "TraceError",
    "TraceRequest",
    "read_trace",
    "simulate",
    "write_trace",
]
