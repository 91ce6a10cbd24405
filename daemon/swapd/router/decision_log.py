"""A bounded log of the scheduler's decisions, newest last.

The control socket (`swapctl decisions`) and the TUI read it; once full the
oldest entries are dropped, and `dropped` says how many were lost.
"""

from __future__ import annotations

from collections import deque

from swapd.router.events import Decision

DEFAULT_DECISION_LOG_SIZE = 2000


class DecisionLog:
    def __init__(self, maxlen: int = DEFAULT_DECISION_LOG_SIZE) -> None:
        if maxlen < 1:
            raise ValueError("the decision log must hold at least one entry")
        self._entries: deque[Decision] = deque(maxlen=maxlen)
        self.dropped = 0

    def append(self, decision: Decision) -> None:
        if len(self._entries) == self._entries.maxlen:
            self.dropped += 1
        self._entries.append(decision)

    def recent(self, limit: int | None = None) -> list[Decision]:
        """The newest `limit` decisions (all when None or more than there are), oldest first."""
        return _newest(list(self._entries), limit)

    def evicted_for(self, request_id: int) -> tuple[str, ...]:
        """What the swap that served `request_id` evicted: its own swap, or the one it
        joined; () when it needed none (or its decisions are no longer in the log)."""
        swap_id: int | None = None
        for d in reversed(self._entries):
            if d.request_id == request_id and d.action == "swap":
                return d.evict
            if d.request_id == request_id and d.action == "join":
                swap_id = d.swap_id
            elif swap_id is not None and d.action == "swap" and d.swap_id == swap_id:
                return d.evict
        return ()

    def __len__(self) -> int:
        return len(self._entries)


def _newest(items: list[Decision], limit: int | None) -> list[Decision]:
    if limit is None or limit < 0:
        return items
    return items[max(0, len(items) - limit) :]
