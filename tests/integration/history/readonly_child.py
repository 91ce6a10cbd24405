"""Run by test_store in a process that cannot write the state directory.

`python -m tests.integration.history.readonly_child STATE_DIR RECORDS` opens
the history there, records RECORDS requests, waits for the writer, asks
for the activity, and prints one JSON line: the store's status, whether the
question was answered (and how many records came back), and the
history's log messages.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import msgspec
import trio

from swapd.history import (
    ActivityQuery,
    HistoryUnavailable,
    RequestRecord,
    open_history,
)


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.getMessage()}")


async def scenario(state_dir: Path, count: int) -> dict[str, object]:
    keep = _Keep()
    logger = logging.getLogger("swapd.history")
    logger.addHandler(keep)
    logger.propagate = False
    answered: int | None = None
    async with open_history(state_dir) as store:
        for i in range(count):
            store.record(
                RequestRecord(
                    id=1000 + i,
                    start=1.8e9 + i,
                    client=None,
                    requested="m",
                    model="m",
                    route="/v1/chat/completions",
                    stream=False,
                    outcome="done",
                    status=200,
                )
            )
        with trio.fail_after(30):
            await store.flushed()
        try:
            answered = len(await store.activity(ActivityQuery()))
        except HistoryUnavailable:
            answered = None
        status = msgspec.to_builtins(store.status())
    return {"status": status, "answered": answered, "logs": keep.messages}


def main() -> None:
    state_dir, count = Path(sys.argv[1]), int(sys.argv[2])
    print(json.dumps(trio.run(scenario, state_dir, count)))


if __name__ == "__main__":
    main()
