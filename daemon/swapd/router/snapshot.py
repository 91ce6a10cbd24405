"""What the router reports about itself: one snapshot type every reader uses.

The HTTP app (`/running`, metrics), the control socket (`status`, `models`)
and the TUI through it all read a `RouterSnapshot`; nothing reads the
scheduler's own fields.
"""

from __future__ import annotations

import msgspec


class QueuedEntry(msgspec.Struct, frozen=True):
    request_id: int
    model: str
    position: int
    waited: float


class SwapEntry(msgspec.Struct, frozen=True):
    swap_id: int
    target: str
    evict: tuple[str, ...]
    set: str | None
    cost: int
    waiters: int
    aborting: bool
    seconds: float
    sleep: tuple[str, ...] = ()


class RouterSnapshot(msgspec.Struct, frozen=True):
    """A report of the router's state (advisory).

    Per model: `in_flight` requests being served, `waiting` requests waiting for
    its load (a swap in progress), `queued` requests in the queue (behind
    another swap, or a model busy serving).
    """

    queue: tuple[QueuedEntry, ...]
    swaps: tuple[SwapEntry, ...]
    in_flight: dict[str, int]
    reserved: dict[str, int]
    queued: dict[str, int]
    closed: bool
    waiting: dict[str, int] = {}

    @classmethod
    def empty(cls) -> RouterSnapshot:
        """Nothing queued, waiting or in flight (a router stand-in's report)."""
        return cls(queue=(), swaps=(), in_flight={}, reserved={}, queued={}, closed=False)
