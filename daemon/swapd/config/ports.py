"""Which `${PORT}` each model gets, on a fresh start and on a reload.

A fresh start gives `startPort`, `startPort+1`, ... to the models whose cmd
uses `${PORT}`, in sorted model-ID order, as llama-swap does, so a config
keeps its ports from one start to the next.

A reload starts from `PortsInUse`: a model keeps the port it has (so a model
whose settings did not change keeps its process), and a model that needs a
new port (added, or newly using `${PORT}`) gets the lowest one from
`startPort` that no model keeps and no live process listens on, so it never
lands on a port a running or draining server still holds. llama-swap
renumbers every model instead: adding one shifts the ports, and so the
commands, of every model sorted after it. When `startPort` itself changed,
nothing is kept: the ports are laid out afresh from it, still around the
held ones.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PortsInUse:
    """What a reload must respect: the running config's `startPort` and `${PORT}`
    assignment (model ID -> port), and the ports live processes listen on."""

    start_port: int
    assigned: Mapping[str, int]
    held: frozenset[int] = frozenset()


class PortAllocator:
    """Hands out ports to the models that use `${PORT}`, one `take` per model."""

    def __init__(
        self, start_port: int, models: Collection[str], in_use: PortsInUse | None = None
    ) -> None:
        """`models`: every model ID of the new config (a kept port is only kept by its model)."""
        self._kept: dict[str, int] = {}
        self._taken: set[int] = set()
        if in_use is not None:
            if in_use.start_port == start_port:
                self._kept = {m: p for m, p in in_use.assigned.items() if m in models}
            self._taken = set(self._kept.values()) | in_use.held
        self._next = start_port

    def take(self, model_id: str) -> int:
        """The port of `model_id`: the one it keeps, else the lowest free one from startPort."""
        kept = self._kept.get(model_id)
        if kept is not None:
            return kept
        while self._next in self._taken:
            self._next += 1
        port = self._next
        self._taken.add(port)
        self._next += 1
        return port
