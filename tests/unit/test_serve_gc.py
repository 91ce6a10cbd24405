"""`swapd serve` tunes the garbage collector before serving: startup objects frozen,
the youngest generation collected less often."""

from __future__ import annotations

import gc

from swapd.serve_cli import GC_YOUNG_THRESHOLD, tune_garbage_collector


def test_startup_objects_are_frozen_and_young_collections_are_rarer() -> None:
    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert GC_YOUNG_THRESHOLD > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
