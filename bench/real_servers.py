"""Starting and stopping the real llama.cpp server for the swap benchmark, bare or under a proxy.

Every side of the benchmark (bare, llama-swap, swapd) runs the demo's
launcher (`swapd-llama-server`, llama.cpp's own server) with the same
options, `COMMON_OPTIONS`, the same as `config/demo.yaml`. Everything here is
synchronous process plumbing; the measurements live in `bench.bench_swap`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from swapd.testing import ports

#: llama-server options shared by every side of the benchmark (bare, llama-swap, swapd),
#: the same as `config/demo.yaml`: a small context, two slots, one thread per model.
COMMON_OPTIONS: dict[str, str] = {"ctx-size": "2048", "parallel": "2", "threads": "1"}

STOP_GRACE = 10.0


def free_port() -> int:
    """A free loopback port outside the ephemeral range (see swapd.testing.ports)."""
    return ports.free_port()


def option_argv(options: Mapping[str, str]) -> list[str]:
    """`{"ctx-size": "2048"}` -> `["--ctx-size", "2048"]`."""
    argv: list[str] = []
    for key, value in options.items():
        argv += [f"--{key}", value]
    return argv


def bare_argv(
    binary: Path, gguf: Path, port: int, alias: str, options: Mapping[str, str] = COMMON_OPTIONS
) -> list[str]:
    """A single-model llama-server serving `gguf` under `alias` on `port`."""
    return [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        str(gguf),
        "--alias",
        alias,
        *option_argv(options),
    ]


def spawn_group(
    argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session (so its children can be stopped with it), output to `log`.

    A proxy's model servers inherit its process group: stopping the group
    stops them all, even if the proxy itself dies first.
    """
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            start_new_session=True,
        )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """SIGTERM the process group of `proc`, SIGKILL it after `grace` seconds, reap `proc`.

    Polls for the group's end: there is no way to wait on a process group, and
    this runs outside any measured interval.
    """
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()
        if not _group_alive(pgid):
            break
        time.sleep(0.01)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def bare_server(
    binary: Path, gguf: Path, workdir: Path, alias: str = "bare"
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """One single-model llama-server on a fresh port: `(process, base URL)`, stopped after."""
    port = free_port()
    proc = spawn_group(bare_argv(binary, gguf, port, alias), workdir / f"bare-{port}.log")
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc)
