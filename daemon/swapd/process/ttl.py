"""The idle clock behind TTL unloads: pure bookkeeping, no timers, no I/O.

A model is idle when no request is in flight; it is unloaded once it has
been idle for `ttl` seconds. The clock starts when the model becomes ready
and restarts when the last request in flight ends.

Deliberate deviation from llama-swap (docs/compat.md, TTL): there the idle
clock keeps the previous run's "last use" (or the epoch) when a model starts,
so a model that nobody uses right after its load is unloaded about a second
after becoming ready. Here becoming ready counts as use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IdleClock:
    ttl: float  # seconds; 0 or less: never unload for idleness
    in_flight: int = 0
    idle_since: float | None = None  # None while the model is not ready
    sleep_after: float = 0.0  # seconds idle before it sleeps; 0 or less: never

    def on_ready(self, now: float) -> None:
        self.idle_since = now

    def on_not_ready(self) -> None:
        self.idle_since = None

    def hold(self) -> None:
        self.in_flight += 1

    def release(self, now: float) -> None:
        if self.in_flight <= 0:
            raise RuntimeError("release() without a matching hold()")
        self.in_flight -= 1
        if self.in_flight == 0 and self.idle_since is not None:
            self.idle_since = now

    def deadline(self) -> float | None:
        """When the model will be unloaded if nothing changes; None when it will not."""
        if self.ttl <= 0 or self.idle_since is None or self.in_flight > 0:
            return None
        return self.idle_since + self.ttl

    def next_check(self, now: float) -> float | None:
        """When the owner should next look at the clock; None when it never needs to.

        Never later than the real deadline, whatever holds and releases happen
        meanwhile (they only move it later): while requests are in flight it is
        `now + ttl`, because the deadline can then be no earlier. So the end of
        a request needs no wake-up of the owner; a look that comes early finds
        nothing expired and asks again.
        """
        if self.ttl <= 0 or self.idle_since is None:
            return None
        if self.in_flight > 0:
            return now + self.ttl
        return self.idle_since + self.ttl

    def sleep_deadline(self) -> float | None:
        """When the model will be put to sleep if nothing changes; None when it will not.

        Never once the TTL stops it no later (sleeping just before a stop saves nothing).
        """
        if self.sleep_after <= 0 or self.idle_since is None or self.in_flight > 0:
            return None
        if 0 < self.ttl <= self.sleep_after:
            return None
        return self.idle_since + self.sleep_after

    def next_sleep_check(self, now: float) -> float | None:
        """As `next_check`, for the sleep deadline."""
        if self.sleep_after <= 0 or self.idle_since is None:
            return None
        if 0 < self.ttl <= self.sleep_after:
            return None
        if self.in_flight > 0:
            return now + self.sleep_after
        return self.idle_since + self.sleep_after

    def sleep_due(self, now: float) -> bool:
        deadline = self.sleep_deadline()
        return deadline is not None and now >= deadline

    def expired(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def left(self, now: float) -> float | None:
        """Seconds until the unload, for display; None when no unload is pending."""
        deadline = self.deadline()
        return None if deadline is None else max(0.0, deadline - now)
