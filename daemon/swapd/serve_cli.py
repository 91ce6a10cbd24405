"""`swapd serve --config FILE [--listen HOST:PORT] [--watch-config] [--state-dir DIR]`: run
the daemon.

SIGHUP (`systemctl reload swapd`) reloads the config file; `--watch-config`
also reloads it when it changes on disk. The history is kept in the state
directory: `--state-dir`, else `$STATE_DIRECTORY` (systemd), else
`$XDG_STATE_HOME/swapd`, else `~/.local/state/swapd`.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from functools import partial

import trio

from swapctl.paths import resolve_socket_path
from swapd.config import ConfigError, load_config
from swapd.config.cli import warning_text
from swapd.control.listener import ControlSocketError
from swapd.daemon import DEFAULT_LISTEN, serve_until_signalled
from swapd.history import resolve_state_dir
from swapd.http.server import ListenError, parse_listen
from swapd.logsetup import setup_logging

log = logging.getLogger("swapd")


def _run(args: argparse.Namespace) -> int:
    setup_logging()
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for warning in loaded.warnings:
        log.warning("%s", warning_text(warning))
    control = resolve_socket_path(args.control_socket)
    state_dir = resolve_state_dir(args.state_dir)
    serve = partial(serve_until_signalled, watch=args.watch_config, state_dir=state_dir)
    tune_garbage_collector()
    tune_thread_switching()
    try:
        trio.run(serve, loaded, args.listen, control)
    except Exception as exc:
        cause = _startup_error(exc)
        if cause is None:
            raise
        print(f"swapd: cannot start: {cause}", file=sys.stderr)
        return 1
    return 0


#: Allocations (net) between two collections of the youngest generation; Python's is 700.
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Fewer garbage collections while serving.

    What was loaded before serving (modules, config) lives as long as the
    daemon: frozen, no collection walks it again. A request allocates a few
    hundred objects, nearly all freed by reference counting as it ends, so
    Python's threshold of 700 ran a collection every few requests (with 32
    streams starting together, one every request or two, each walking every
    young object of all 32): about a tenth of the CPU of a stream's setup.
    At 10,000 a collection takes a few milliseconds, once in about a
    thousand requests, and less CPU in all.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


#: Seconds a thread waiting for the GIL waits before asking its holder to let go.
SWITCH_INTERVAL = 0.0005


def tune_thread_switching() -> None:
    """The event loop gets the GIL back from a worker thread within half a millisecond.

    Worker threads (the history writer, the meter, large forms) hold the GIL
    while they run Python code; the loop thread, wanting it, waits Python's
    switch interval (5 ms) before it asks for it. That wait landed on whatever
    request was being relayed: a few milliseconds added to one request in a
    few hundred, the small requests' 99th percentile.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)


def _startup_error(exc: BaseException) -> BaseException | None:
    """The bind or socket error that stopped the daemon from starting, if that is what it was."""
    if isinstance(exc, OSError | ControlSocketError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _startup_error(inner)
            if found is not None:
                return found
    return None


def _listen(value: str) -> str:
    """argparse type of --listen: refused at once, with the reason, when it is not HOST:PORT."""
    try:
        parse_listen(value)
    except ListenError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("serve", help="run the daemon", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the YAML config file")
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        type=_listen,
        metavar="HOST:PORT",
        help=f"where the HTTP API listens (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--control-socket",
        metavar="PATH",
        help="the control socket (default: $SWAPD_SOCKET, then the runtime directory rules)",
    )
    parser.add_argument(
        "--watch-config",
        action="store_true",
        help="reload the config when the file changes (SIGHUP always reloads it)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where the history is kept (default: $STATE_DIRECTORY, then "
        "$XDG_STATE_HOME/swapd, then ~/.local/state/swapd)",
    )
    parser.set_defaults(func=_run)
