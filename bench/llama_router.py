"""Running the real llama-server for the swap benchmark: bare, and in llama.cpp's router mode.

llama.cpp's router mode (`llama-server --models-preset FILE --models-max N`)
is swapd's nearest competitor: one front process that spawns a llama-server
child per model on demand and evicts the least recently used one when
`--models-max` is reached. Its preset file is an INI file, found by
experiment with the packaged build (llama.cpp commit 7e4c0a9):

    version = 1
    [*]                  ; options every model inherits
    ctx-size = 2048
    [A]                  ; one section per model ID
    model = /path/to/model.gguf

Keys are llama-server's long option names without the dashes. The router
logs `load: spawning server instance with name=A ...` each time it starts a
model's child, which is how loads are counted.

Everything here is synchronous helpers plus pure functions (preset text, log
parsing); the measurements themselves live in `bench.bench_swap`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swapd.testing import ports

#: llama-server options shared by every side of the benchmark (bare, router, swapd),
#: the same as `config/demo.yaml`: a small context, two slots, one thread per model.
COMMON_OPTIONS: dict[str, str] = {"ctx-size": "2048", "parallel": "2", "threads": "1"}

LOAD_LINE = re.compile(r"\bload: spawning server instance with name=(\S+)")
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


def preset_ini(models: Mapping[str, Path], common: Mapping[str, str] = COMMON_OPTIONS) -> str:
    """The router's preset file: `common` in the `[*]` section, one section per model."""
    lines = ["version = 1", "", "[*]"]
    lines += [f"{key} = {value}" for key, value in common.items()]
    for model_id, gguf in models.items():
        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", model_id):
            raise ValueError(f"model ID {model_id!r} cannot be an INI section name")
        lines += ["", f"[{model_id}]", f"model = {gguf}"]
    return "\n".join(lines) + "\n"


def loads_in_log(text: str) -> list[str]:
    """The model IDs the router started a child for, in order, from its log text."""
    return LOAD_LINE.findall(text)


def router_argv(binary: Path, preset: Path, port: int, models_max: int) -> list[str]:
    return [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--models-preset",
        str(preset),
        "--models-max",
        str(models_max),
    ]


def spawn_group(
    argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session (so its children can be stopped with it), output to `log`.

    The router's children inherit its process group: stopping the group stops
    them all, even if the router itself dies first.
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


@dataclass
class LlamaRouter:
    """A running llama.cpp router; `loads()` counts the children it has started so far."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    models: tuple[str, ...] = field(default=())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def loads(self) -> Counter[str]:
        return Counter(loads_in_log(self.log_text()))


@contextlib.contextmanager
def llama_router(
    binary: Path,
    models: Mapping[str, Path],
    workdir: Path,
    *,
    models_max: int = 1,
    common: Mapping[str, str] = COMMON_OPTIONS,
) -> Iterator[LlamaRouter]:
    """Run the router on a fresh port with a preset for `models`; stop it and its children after.

    The caller waits for it to answer (`GET /models`) before measuring.
    """
    preset = workdir / "router-preset.ini"
    preset.write_text(preset_ini(models, common))
    port = free_port()
    log = workdir / f"router-{port}.log"
    proc = spawn_group(router_argv(binary, preset, port, models_max), log)
    try:
        yield LlamaRouter(proc, port, log, tuple(models))
    finally:
        stop_group(proc)


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
