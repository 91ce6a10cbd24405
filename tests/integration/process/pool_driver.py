"""A stand-in for swapd in the no-orphans tests: a ProcessPool of fake upstreams.

Run as `python -m tests.integration.process.pool_driver N [fake options...]`
from the repository root. It starts N models, prints `READY <pid> <pid>...`
(then a `GRANDCHILD <pid>` line per grandchild when the fakes fork one), and
runs until SIGTERM or SIGINT, which it handles like swapd: leave the pool,
stopping every child gracefully, then print `DONE`.
"""

from __future__ import annotations

import signal
import sys

import trio

from swapd.events import EventBus
from swapd.process.pool import ProcessPool
from tests.integration.process.harness import fake_spec


async def main(count: int, options: list[str]) -> None:
    specs = [fake_spec(*options, model=f"m{i}", unload_timeout=2.0) for i in range(count)]
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with ProcessPool(specs, EventBus()) as pool:
            async with trio.open_nursery() as nursery:
                for model in pool:
                    nursery.start_soon(pool[model].ensure_ready)
            print("READY", *(pool[model].pid for model in pool), flush=True)
            for model in pool:
                for line in pool[model].logs:
                    if line.text.startswith("grandchild pid"):
                        print("GRANDCHILD", line.text.split()[-1], flush=True)
            async for _ in signals:
                break
    print("DONE", flush=True)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]), sys.argv[2:])
