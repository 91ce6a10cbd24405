"""The history store's bounds and pace."""

from __future__ import annotations

import msgspec

from swapd.config.model import HistoryConfig

DAY = 86_400.0


class HistorySettings(msgspec.Struct, frozen=True, kw_only=True):
    """Retention comes from the config (`history:`); the rest are the writer's pace and bounds."""

    retention_days: float = 7.0
    """Rows older than this are deleted; 0 keeps them whatever their age."""
    max_requests: int = 1_000_000
    """At most this many request rows (the oldest go first); 0 = no limit."""
    max_events: int = 100_000
    """At most this many rows of each of swaps, exits and reloads."""
    batch_size: int = 2000
    """A batch is written once this many records wait..."""
    flush_interval: float = 1.0
    """...or this many seconds after the first of them arrived. Each batch is one
    transaction, whose commit costs about as much as writing a hundred rows; a read
    writes what waits first, so nobody sees the delay."""
    max_pending: int = 20_000
    """Records waiting to be written; beyond this, new ones are dropped and counted."""
    prune_interval: float = 600.0
    """Seconds between retention passes (one also runs at open)."""
    reopen_interval: float = 60.0
    """Seconds between attempts to open a database that could not be opened."""
    close_timeout: float = 5.0
    """At exit, how long the last records may take to be written."""


def settings_from_config(
    config: HistoryConfig, base: HistorySettings | None = None
) -> HistorySettings:
    """`base` (defaults) with the config's retention."""
    return msgspec.structs.replace(
        base or HistorySettings(),
        retention_days=config.retention_days,
        max_requests=config.max_requests,
    )
