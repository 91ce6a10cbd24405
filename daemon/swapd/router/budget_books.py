"""What swapd has learnt of each model: footprints measured per run, and load times.

Pure bookkeeping, no I/O: the resource meter (`swapd.process.meter`) feeds
it, the budget swappers read it when they plan. `BooksData` is the plain
form kept across restarts (the history file's model runs, `swapd.history.runs`).

- **Footprints**: per model and measure (`ram`, `vram`), the peak of each
  run, the last `RUNS_KEPT` runs; what counts is the highest of them.
- **Load times**: per model, the seconds its last `LOADS_KEPT` loads took; a
  `measured` cost is their median.
- **Asleep footprints**: per model that can sleep, the peak of each run
  while it was asleep, the last `RUNS_KEPT` runs that slept.
- **Wake times**: per model that can sleep, the seconds its last
  `LOADS_KEPT` wakes took (from asleep to ready); their median is what
  putting it to sleep costs.

All of them are kept across restarts.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

import msgspec

RUNS_KEPT = 5
LOADS_KEPT = 9
#: Measures the meter takes: resident memory of the process tree, and GPU memory.
MEASURES = ("ram", "vram")


class BooksData(msgspec.Struct, frozen=True, kw_only=True):
    """The books as plain data: oldest first in every list."""

    peaks: dict[str, dict[str, list[int]]] = {}
    """model -> measure -> the peak of each of its last runs."""
    loads: dict[str, list[float]] = {}
    """model -> the seconds each of its last loads took."""
    asleep: dict[str, dict[str, list[int]]] = {}
    """model -> measure -> the peak while asleep of each of its last runs that slept."""
    wakes: dict[str, list[float]] = {}
    """model -> the seconds each of its last wakes took."""


class FootprintBook:
    """Per model and measure, the peak of each of its last `RUNS_KEPT` runs."""

    def __init__(self) -> None:
        self._peaks: dict[str, dict[str, list[int]]] = {}

    def record_run(self, model: str, peaks: Mapping[str, int]) -> None:
        """One run of `model` ended; `peaks` holds the highest reading of each measure."""
        for measure, peak in peaks.items():
            if peak >= 0:
                kept = self._peaks.setdefault(model, {}).setdefault(measure, [])
                kept.append(int(peak))
                del kept[:-RUNS_KEPT]

    def measured(self, model: str) -> dict[str, int]:
        """measure -> the highest peak of the last runs (measures never taken are absent)."""
        return {m: max(p) for m, p in self._peaks.get(model, {}).items() if p}

    def data(self) -> dict[str, dict[str, list[int]]]:
        return {m: {k: list(v) for k, v in p.items()} for m, p in self._peaks.items()}


class CostBook:
    """Per model, the seconds each of its last `LOADS_KEPT` loads took."""

    def __init__(self) -> None:
        self._loads: dict[str, list[float]] = {}
        self._wakes: dict[str, list[float]] = {}

    def record_load(self, model: str, seconds: float) -> None:
        """`model` became ready `seconds` after it was spawned."""
        if seconds >= 0:
            loads = self._loads.setdefault(model, [])
            loads.append(float(seconds))
            del loads[:-LOADS_KEPT]

    def median_load(self, model: str) -> float | None:
        """The median of the last load times, or None when it never loaded."""
        loads = self._loads.get(model)
        return statistics.median(loads) if loads else None

    def record_wake(self, model: str, seconds: float) -> None:
        """`model` was ready `seconds` after a wake began."""
        if seconds >= 0:
            wakes = self._wakes.setdefault(model, [])
            wakes.append(float(seconds))
            del wakes[:-LOADS_KEPT]

    def median_wake(self, model: str) -> float | None:
        """The median of the last wake times, or None when it never woke."""
        wakes = self._wakes.get(model)
        return statistics.median(wakes) if wakes else None

    def data(self) -> dict[str, list[float]]:
        return {m: list(v) for m, v in self._loads.items()}

    def wake_data(self) -> dict[str, list[float]]:
        return {m: list(v) for m, v in self._wakes.items()}


class Books:
    """Both books, as the meter records into them and a store keeps them."""

    def __init__(self, data: BooksData | None = None) -> None:
        self.footprints = FootprintBook()
        self.asleep = FootprintBook()
        self.costs = CostBook()
        if data is not None:
            self.add(data)

    def add(self, data: BooksData) -> None:
        """Record what `data` holds, oldest first, after what the books hold already."""
        for book, peaks_of in ((self.footprints, data.peaks), (self.asleep, data.asleep)):
            for model, measures in peaks_of.items():
                for measure, peaks in measures.items():
                    for peak in peaks[-RUNS_KEPT:]:
                        book.record_run(model, {measure: peak})
        for model, loads in data.loads.items():
            for seconds in loads[-LOADS_KEPT:]:
                self.costs.record_load(model, seconds)
        for model, wakes in data.wakes.items():
            for seconds in wakes[-LOADS_KEPT:]:
                self.costs.record_wake(model, seconds)

    def record_run(
        self, model: str, peaks: Mapping[str, int], asleep: Mapping[str, int] | None = None
    ) -> None:
        """One run ended: its peaks, and (`asleep`) its peaks while it was asleep."""
        self.footprints.record_run(model, peaks)
        if asleep:
            self.asleep.record_run(model, asleep)

    def record_load(self, model: str, seconds: float) -> None:
        self.costs.record_load(model, seconds)

    def record_wake(self, model: str, seconds: float) -> None:
        self.costs.record_wake(model, seconds)

    def data(self) -> BooksData:
        return BooksData(
            peaks=self.footprints.data(),
            loads=self.costs.data(),
            asleep=self.asleep.data(),
            wakes=self.costs.wake_data(),
        )
