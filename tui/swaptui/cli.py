"""`swaptui`: the live dashboard of a swapd daemon.

swaptui [--socket PATH]                      the local daemon (same default as swapctl)
swaptui --ssh HOST [--remote-socket PATH]    a remote daemon, through `ssh HOST swapctl bridge`
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from swapctl.paths import SOCKET_ENV
from swaptui import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swaptui",
        description="Live dashboard of a swapd daemon: models, logs, swaps, the swap matrix.",
    )
    parser.add_argument("--version", action="version", version=f"swaptui {__version__}")
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help=f"the daemon's control socket (default: ${SOCKET_ENV}, then the runtime directory)",
    )
    parser.add_argument(
        "--ssh",
        metavar="HOST",
        help="watch the daemon on HOST through `ssh HOST swapctl bridge` (no port forwarding)",
    )
    parser.add_argument(
        "--remote-socket",
        metavar="PATH",
        help="with --ssh: the control socket on HOST (default: swapctl's default there)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ssh and args.socket:
        parser.error("--socket names a local socket; with --ssh use --remote-socket")
    if args.remote_socket and not args.ssh:
        parser.error("--remote-socket needs --ssh HOST")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported here so `swaptui --help` stays fast, and says what is missing without the extra.
    try:
        from swaptui.app import SwapTUI
        from swaptui.connection import DaemonSource, make_target
    except ModuleNotFoundError as exc:
        if exc.name not in ("textual", "rich"):
            raise
        print(
            f"swaptui: {exc.name} is not installed; install swapd with its tui extra "
            "(pip install 'swapd[tui]')",
            file=sys.stderr,
        )
        return 2

    target = make_target(args.socket, args.ssh, args.remote_socket)
    SwapTUI(DaemonSource(target)).run()
    return 0
