"""What happened, kept: request, swap, exit and reload records in SQLite, and recent captures.

- `records`: the typed records (`RequestRecord`, `SwapRecord`, `ExitRecord`,
  `ReloadRecord`, and the `KvRecord` figures swaps and exits carry).
- `usage`: token counts and speed read from a response as it is relayed
  (`UsageParser`), in bounded memory.
- `store`: `open_history(state_dir, settings)` gives a `HistoryStore`:
  `record()` from the event loop (never blocks, never raises), batched
  writes off the loop, retention, and the questions (`activity`, `history`,
  `stats`, `load_times`, `request`).
- `paths`: the state directory (`--state-dir`, `$STATE_DIRECTORY`,
  `$XDG_STATE_HOME/swapd`, `~/.local/state/swapd`).
- `capture`: the `captureBuffer` of recent request and response bodies.
"""

from __future__ import annotations

from swapd.history.capture import (
    BodyCollector,
    Capture,
    CaptureBuffer,
    capture_headers,
    capture_parts,
)
from swapd.history.database import HistoryUnavailable
from swapd.history.paths import database_path, ensure_state_dir, resolve_state_dir
from swapd.history.queries import ActivityQuery, HistoryQuery
from swapd.history.records import (
    AnyRecord,
    ExitRecord,
    HistoryRecord,
    KvRecord,
    Outcome,
    ReloadRecord,
    RequestRecord,
    SwapRecord,
    SwapResult,
    exit_fields,
)
from swapd.history.settings import HistorySettings, settings_from_config
from swapd.history.stats import ModelStats, Stats
from swapd.history.store import HistoryStatus, HistoryStore, open_history
from swapd.history.usage import Usage, UsageParser, generation_rate, parse_usage

__all__ = [
    "ActivityQuery",
    "AnyRecord",
    "BodyCollector",
    "Capture",
    "CaptureBuffer",
    "ExitRecord",
    "HistoryQuery",
    "HistoryRecord",
    "HistorySettings",
    "HistoryStatus",
    "HistoryStore",
    "HistoryUnavailable",
    "KvRecord",
    "ModelStats",
    "Outcome",
    "ReloadRecord",
    "RequestRecord",
    "Stats",
    "SwapRecord",
    "SwapResult",
    "Usage",
    "UsageParser",
    "capture_headers",
    "capture_parts",
    "database_path",
    "ensure_state_dir",
    "exit_fields",
    "generation_rate",
    "open_history",
    "parse_usage",
    "resolve_state_dir",
    "settings_from_config",
]
