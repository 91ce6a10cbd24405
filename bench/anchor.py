"""llama-swap, the Go proxy swapd re-implements, as a baseline measured in the same run.

The binary is not part of this repository: point `SWAPD_BENCH_LLAMA_SWAP` at
one, or leave it in `shared/anchors/llama-swap` beside the checkout or beside
a folder holding it (the team's reference folder). A benchmark calls
`llama_swap_binary()` and, when it is None, prints `ABSENT_NOTE` and
measures the other sides only.

llama-swap reads the same YAML as swapd, so each benchmark hands both the
same config file. It logs `<MODEL> Health check passed` once per load, which
is how its loads are counted.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.real_servers import free_port, spawn_group, stop_group

ENV = "SWAPD_BENCH_LLAMA_SWAP"
ANCHOR = Path("shared") / "anchors" / "llama-swap"
DEFAULT = Path(__file__).resolve().parents[2] / ANCHOR
ABSENT_NOTE = (
    f"llama-swap not measured: no binary at ${ENV} or {DEFAULT} (set {ENV} to a llama-swap build)"
)


def _beside_checkout() -> Path:
    """`shared/anchors/llama-swap` in the first folder above the checkout that has one."""
    for folder in Path(__file__).resolve().parents[2:5]:
        if (folder / ANCHOR).is_file():
            return folder / ANCHOR
    return DEFAULT


LOAD_LINE = re.compile(r"<([^>\s]+)> Health check passed")


def llama_swap_binary() -> Path | None:
    """The llama-swap executable to measure against, or None when there is none."""
    named = os.environ.get(ENV)
    path = Path(named) if named else _beside_checkout()
    return path if path.is_file() and os.access(path, os.X_OK) else None


def loads_in_log(text: str) -> list[str]:
    """The models llama-swap loaded, in order, from its log text."""
    return LOAD_LINE.findall(text)


@dataclass
class LlamaSwap:
    """A running llama-swap; `loads()` counts the models it has loaded so far."""

    port: int
    log: Path
    pid: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def loads(self) -> Counter[str]:
        return Counter(loads_in_log(self.log_text()))


@contextlib.contextmanager
def llama_swap(
    binary: Path, config: Path, workdir: Path, env: Mapping[str, str] | None = None
) -> Iterator[LlamaSwap]:
    """Run llama-swap on `config` on a fresh loopback port; stop it and its models after.

    The caller waits for it to answer before measuring.
    """
    port = free_port()
    log = workdir / f"llama-swap-{port}.log"
    argv = [str(binary), "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    proc = spawn_group(argv, log, env)
    try:
        yield LlamaSwap(port, log, proc.pid)
    finally:
        stop_group(proc)
