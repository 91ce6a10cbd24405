"""Request setups a few at a time, so answers already back are relayed between them.

trio runs every task that is ready in one round and polls the sockets only
between rounds. When 32 streaming requests arrive together, each handler
runs from its body to the upstream send in that one round, so the first
upstream answer waits until all 32 are set up (about 8 ms on one core), and
the median request's first token with it. With at most `SLOTS` handlers
between "body read" and "request handed to the upstream client", the others
wait their turn in arrival order; every turn is a new round, which polls the
sockets first, so first tokens already back go out meanwhile.

A handler gives its slot back as soon as it would wait for anything else (a
lease that queues or loads, a large form parsed in a thread, the upstream),
so a slow model or client never holds up the others: the gate orders CPU
work on the event loop, nothing more. Taking a free slot does not yield to
the scheduler, so a request that arrives alone pays nothing for it.
"""

from __future__ import annotations

import trio

#: Handlers setting up a request at once.
SLOTS = 2


class SetupSlot:
    """One handler's place among the setups; `release` is idempotent."""

    __slots__ = ("_semaphore",)

    def __init__(self, semaphore: trio.Semaphore | None) -> None:
        self._semaphore = semaphore

    def release(self) -> None:
        semaphore = self._semaphore
        if semaphore is not None:
            self._semaphore = None
            semaphore.release()


#: A slot that holds nothing (a handler that never took one).
NO_SLOT = SetupSlot(None)


class SetupGate:
    """At most `slots` request setups at once, served in arrival order."""

    def __init__(self, slots: int = SLOTS) -> None:
        self._semaphore = trio.Semaphore(slots)

    async def enter(self) -> SetupSlot:
        """A slot, at once when one is free (no scheduling point), else in turn."""
        semaphore = self._semaphore
        try:
            semaphore.acquire_nowait()
        except trio.WouldBlock:
            await semaphore.acquire()
        return SetupSlot(semaphore)

    @property
    def waiting(self) -> int:
        """Handlers waiting for a slot."""
        return self._semaphore.statistics().tasks_waiting
