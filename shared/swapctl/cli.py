"""swapctl: drive swapd over its control socket.

Every subcommand takes `--json` (the protocol payload, one JSON document, or
one JSON object per line for `-f` streams) and prints readable tables
without it. Exit codes: 0 ok, 1 the daemon said no (the reason follows on
stderr, or as a JSON `error` object on stdout with `--json`), 2 usage or
connection error, including a daemon that goes away while `-f` follows it
(one line on stderr, or JSON on stdout), 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import msgspec

from swapctl import __version__, render, trace
from swapctl import protocol as p
from swapctl.client import Client, ConnectionFailed, DaemonError, describe_connect_error
from swapctl.paths import resolve_socket_path

_json = msgspec.json.Encoder()


class Output:
    """Where results go: readable text, or JSON."""

    def __init__(self, as_json: bool, stream: TextIO) -> None:
        self.json = as_json
        self.stream = stream

    def emit(self, value: Any, text: Callable[[Any], str]) -> None:
        if self.json:
            self.stream.write(_json.encode(value).decode() + "\n")
        else:
            self.stream.write(text(value))
        self.stream.flush()


QUERY_TIMEOUT = 30.0


def _client(args: argparse.Namespace, *, slow: bool = False) -> Client:
    """Connected; queries time out after 30 s, slow actions wait unless --timeout is given."""
    timeout = args.timeout if args.timeout is not None else (None if slow else QUERY_TIMEOUT)
    client = Client(args.socket, timeout=QUERY_TIMEOUT if timeout is None else timeout)
    client.connect()
    client.set_timeout(timeout)
    return client


# --- subcommands ----------------------------------------------------------------


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as c:
        status = c.status()
    out.emit(
        status, lambda s: render.status(s) + ("\n" + render.legend(s.legend) if args.legend else "")
    )
    return 0


def cmd_models(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as c:
        rows = c.models()
        capacity = c.status().capacity if not out.json else []
    out.emit(rows, lambda r: render.models(r, capacity))
    return 0


def cmd_load(args: argparse.Namespace, out: Output) -> int:
    with _client(args, slow=True) as c:
        out.emit(c.load(args.model), render.load)
    return 0


def cmd_unload(args: argparse.Namespace, out: Output) -> int:
    if args.all and args.models:
        raise UsageError("give either MODEL names or --all, not both")
    if not args.all and not args.models:
        raise UsageError(
            "name the models to unload (swapctl unload MODEL [MODEL ...]), "
            "or give --all to unload every model"
        )
    with _client(args, slow=True) as c:
        reply = c.unload_reply(None if args.all else args.models, now=args.now)
    out.emit({"models": reply.models, "cut": reply.cut}, render.unload)
    return 0


def cmd_reload(args: argparse.Namespace, out: Output) -> int:
    with _client(args, slow=True) as c:
        out.emit(c.reload(), render.reload)
    return 0


RETRY_INTERVALS = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Waits between reconnection attempts of `-f --retry`; the last one repeats."""


class DaemonGone(ConnectionFailed):
    """The daemon closed the connection while `-f` followed it."""


def _follow(
    c: Client,
    out: Output,
    topics: Sequence[str],
    models: Sequence[str],
    follow: bool,
    text: Callable[[Any], str],
    *,
    history: bool = True,
) -> int:
    """Print a subscription's history, then (with follow) its live events.

    Following ends only when the daemon closes the connection: that raises
    DaemonGone, so it is never mistaken for a normal end.
    """
    reply = c.request(
        p.SubscribeRequest(topics=list(topics), models=list(models), history=history),
        p.Subscribed,
    )
    remaining = reply.history
    if not follow and remaining == 0:
        return 0
    for item in c.events():
        out.emit(item, text)
        if not follow:
            remaining -= item.missed if isinstance(item, p.Lagged) else 1
            if remaining <= 0:
                return 0
    if follow:
        raise DaemonGone("swapd closed the connection (it stopped or restarted)")
    return 0


def _follow_retrying(
    args: argparse.Namespace,
    out: Output,
    topics: Sequence[str],
    models: Sequence[str],
    text: Callable[[Any], str],
) -> int:
    """`-f`, and with `--retry`, reconnect whenever the daemon goes away, until interrupted.

    A reconnection does not repeat the history already printed; what happened
    while disconnected is not shown, and stderr says when that was. Attempts
    back off from 0.2 s to every 5 s.
    """
    followed = False
    attempt = 0
    while True:
        try:
            with _client(args) as c:
                again = followed
                if again:
                    print("swapctl: reconnected", file=sys.stderr, flush=True)
                attempt, followed = 0, True
                return _follow(c, out, topics, models, True, text, history=not again)
        except ConnectionFailed as exc:
            if not args.retry:
                raise
            print(f"swapctl: {exc}; reconnecting", file=sys.stderr, flush=True)
        time.sleep(RETRY_INTERVALS[min(attempt, len(RETRY_INTERVALS) - 1)])
        attempt += 1


def _log_text(item: p.Event | p.Lagged) -> str:
    if isinstance(item, p.Lagged):
        return f"\n-- {item.missed} log chunks missed --\n"
    assert isinstance(item.data, p.LogLines)
    return item.data.text


def cmd_logs(args: argparse.Namespace, out: Output) -> int:
    source = args.model or "proxy"
    with _client(args) as c:
        if not args.follow:
            log = c.logs(source, args.bytes)
            out.emit(log, lambda log: log.text)
            return 0
        # Check the source exists (a clear not_found) before following it.
        c.logs(source, 0)
    return _follow_retrying(args, out, ["log"], [source], _log_text)


def cmd_events(args: argparse.Namespace, out: Output) -> int:
    topics = args.topic or []
    unknown = sorted(set(topics) - set(p.TOPICS))
    if unknown:
        raise UsageError(f"unknown topic {', '.join(unknown)}; topics: {', '.join(p.TOPICS)}")
    if args.follow:
        return _follow_retrying(args, out, topics, args.model or [], render.event)
    with _client(args) as c:
        return _follow(c, out, topics, args.model or [], False, render.event)


def cmd_explain(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as c:
        out.emit(c.explain(args.model), render.explanation)
    return 0


def cmd_matrix(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as c:
        out.emit(c.matrix(args.model, args.limit), render.matrix)
    return 0


def cmd_decisions(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as c:
        out.emit(c.decisions(args.limit), render.decisions)
    return 0


# --- history: activity, history, stats, capture -----------------------------------

EXPORT_PAGE = 1000
"""Records asked for at a time by `activity --export` (a reply stays far below a line)."""


def _when(value: str | None, now: float) -> float | None:
    if value is None:
        return None
    try:
        return trace.parse_when(value, now)
    except trace.BadTime as exc:
        raise UsageError(str(exc)) from None


def cmd_activity(args: argparse.Namespace, out: Output) -> int:
    now = time.time()
    since, until = _when(args.since, now), _when(args.until, now)
    if args.export is not None:
        if args.follow:
            raise UsageError("--export writes what is kept; it cannot follow (-f)")
        return _export(args, since, until)
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with _client(args) as c:
        if args.follow:
            return _follow_activity(c, args, out, since)
        records = c.activity(
            model=args.model, outcome=args.outcome, since=since, until=until, limit=args.limit
        )
    out.emit(records, render.activity)
    return 0


def _follow_activity(c: Client, args: argparse.Namespace, out: Output, since: float | None) -> int:
    """The latest records (oldest first), then each request as it finishes."""
    models = [args.model] if args.model else []
    # Subscribed (with the bus's recent events) before asking for the backlog: a request
    # that finishes in between is in one or the other, and shown once.
    c.request(p.SubscribeRequest(topics=["request"], models=models, history=True), p.Subscribed)
    backlog = c.activity(model=args.model, outcome=args.outcome, since=since, limit=args.limit)
    seen = {r.id for r in backlog}
    if not out.json:
        out.stream.write("  ".join(render.ACTIVITY_HEADERS) + "\n")
    for record in reversed(backlog):
        out.emit(record, render.activity_line)
    for item in c.events():
        if not isinstance(item, p.Event) or not isinstance(item.data, p.RequestEvent):
            continue
        finished = item.data.record
        if finished is None or finished.id in seen:
            continue
        if args.outcome is not None and finished.outcome != args.outcome:
            continue
        if since is not None and finished.start < since:
            continue
        seen.add(finished.id)
        out.emit(finished, render.activity_line)
    raise DaemonGone("swapd closed the connection (it stopped or restarted)")


def _export(args: argparse.Namespace, since: float | None, until: float | None) -> int:
    """Every kept request of the window, oldest first, as a trace (see `swapctl.trace`)."""
    records: dict[int, p.RequestRecord] = {}
    with _client(args) as c:
        while True:
            page = c.activity(
                model=args.model, outcome=args.outcome, since=since, until=until,
                limit=EXPORT_PAGE,
            )  # fmt: skip
            new = [r for r in page if r.id not in records]
            for r in new:
                records[r.id] = r
            if len(page) < EXPORT_PAGE or not new:
                break
            # The next page ends where this one did (records of the same instant are
            # asked for again and skipped by id).
            until = min(r.start for r in page) + 1e-6
    ordered = sorted(records.values(), key=lambda r: (r.start, r.id))
    lines = list(trace.encode_trace(ordered))
    if args.export == "-":
        sys.stdout.buffer.writelines(lines)
        sys.stdout.buffer.flush()
    else:
        with open(args.export, "wb") as f:
            f.writelines(lines)
        print(f"{len(lines)} requests written to {args.export}", file=sys.stderr)
    return 0


def cmd_history(args: argparse.Namespace, out: Output) -> int:
    now = time.time()
    with _client(args) as c:
        records = c.history(
            kinds=args.kind or (), model=args.model, since=_when(args.since, now),
            until=_when(args.until, now), limit=args.limit,
        )  # fmt: skip
    out.emit(records, render.history)
    return 0


def cmd_stats(args: argparse.Namespace, out: Output) -> int:
    now = time.time()
    with _client(args) as c:
        stats = c.stats(_when(args.since, now), _when(args.until, now))
    out.emit(stats, render.stats)
    return 0


def cmd_capture(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as c:
        out.emit(c.capture(args.id), render.capture)
    return 0


def _load_time(text: str) -> tuple[str, float]:
    """`MODEL=SECONDS` -> (MODEL, SECONDS)."""
    name, sep, value = text.rpartition("=")
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not sep or not name or not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"expected MODEL=SECONDS with SECONDS >= 0, got {text!r}")
    return name, seconds


def cmd_simulate(args: argparse.Namespace, out: Output) -> int:
    since = _when(args.since, time.time())
    # The daemon reads the file: a relative path means one in swapctl's directory.
    config = None if args.config is None else os.path.abspath(args.config)
    with _client(args, slow=True) as c:
        result = c.simulate(config, since=since, load_times=dict(args.load_time))
    out.emit(result, render.simulation)
    return 0


def cmd_bridge(args: argparse.Namespace, out: Output) -> int:
    """Relay stdin to the socket and the socket to stdout, byte for byte."""
    path = resolve_socket_path(args.socket)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except OSError as exc:
        raise ConnectionFailed(describe_connect_error(path, exc)) from None
    return relay(sock, sys.stdin.fileno(), sys.stdout.fileno())


def relay(sock: socket.socket, in_fd: int, out_fd: int) -> int:
    """Copy in_fd -> sock (then half-close) and sock -> out_fd until the socket ends."""

    def upstream() -> None:
        try:
            while data := os.read(in_fd, 65536):
                sock.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    threading.Thread(target=upstream, name="bridge-stdin", daemon=True).start()
    try:
        while data := sock.recv(65536):
            view = memoryview(data)
            while view:
                view = view[os.write(out_fd, view) :]
    except OSError:
        pass  # stdout closed (the far side hung up) or the socket broke: either way, done
    finally:
        sock.close()
    return 0


# --- parser -----------------------------------------------------------------------


class UsageError(Exception):
    pass


def _add_retry(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--retry",
        action="store_true",
        help="with -f: reconnect when swapd goes away, instead of exiting with 2",
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's absent --json must not undo `swapctl --json COMMAND`.
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON, not tables"
    )
    parser = argparse.ArgumentParser(
        prog="swapctl",
        description=(__doc__ or "").splitlines()[0],
        epilog="Socket: --socket, else $SWAPD_SOCKET, else $XDG_RUNTIME_DIR/swapd/control.sock, "
        "else /run/swapd/control.sock (root) or /tmp/swapd-$UID/control.sock.",
    )
    parser.add_argument("--version", action="version", version=f"swapctl {__version__}")
    parser.add_argument("--socket", metavar="PATH", help="the control socket of swapd")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds to wait for a reply (default: 30 for queries, no limit for "
        "load, unload, reload and simulate)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace, Output], int], help: str
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help, description=help)
        sp.set_defaults(func=func, subparser=sp)
        return sp

    sp = add("status", cmd_status, "the daemon at a glance")
    sp.add_argument("--legend", action="store_true", help="also print the process state legend")
    add("models", cmd_models, "every model: state, pid, port, in-flight, queued, TTL, last load")
    sp = add("load", cmd_load, "load a model (the router decides what to evict) and wait for it")
    sp.add_argument("model")
    sp = add(
        "unload",
        cmd_unload,
        "stop models once their requests in flight are done (at most their unloadTimeout)",
    )
    sp.add_argument("models", nargs="*", metavar="MODEL")
    sp.add_argument("--all", action="store_true", help="stop every model")
    sp.add_argument(
        "--now", action="store_true", help="stop at once, cutting requests in flight short"
    )
    add("reload", cmd_reload, "reload the config file (the old one stays if the new is invalid)")
    sp = add("logs", cmd_logs, "the log of a model, or the proxy log")
    sp.add_argument("model", nargs="?", help="a model ID (default: the proxy log)")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    _add_retry(sp)
    sp.add_argument(
        "--bytes", type=int, default=64 * 1024, metavar="N", help="at most N bytes of history"
    )
    sp = add("events", cmd_events, "recent events; with -f, follow them live")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    _add_retry(sp)
    sp.add_argument(
        "--topic", action="append", choices=p.TOPICS, help="only this topic (repeatable)"
    )
    sp.add_argument("--model", action="append", help="only events about this model (repeatable)")
    sp = add("explain", cmd_explain, "what a request for MODEL would do now, and why")
    sp.add_argument("model")
    sp = add("matrix", cmd_matrix, "swap sets or groups, what runs, and what MODEL would evict")
    sp.add_argument("model", nargs="?")
    sp.add_argument("--limit", type=int, default=50, metavar="N", help="combinations shown per set")
    sp = add("decisions", cmd_decisions, "the router's recent decisions")
    sp.add_argument("--limit", type=int, default=50, metavar="N")
    _add_history_commands(add)
    add("bridge", cmd_bridge, "relay stdin/stdout to the socket (for `ssh HOST swapctl bridge`)")
    return parser


def _add_history_commands(
    add: Callable[[str, Callable[[argparse.Namespace, Output], int], str], argparse.ArgumentParser],
) -> None:
    when = "a duration ago (30s, 10m, 1h, 2d) or a date (2026-12-07T10:00)"
    sp = add("activity", cmd_activity, "finished requests, newest first; with -f, live")
    sp.add_argument("-f", "--follow", action="store_true", help="keep printing new requests")
    sp.add_argument("--model", help="only requests served by this model")
    sp.add_argument("--outcome", choices=p.OUTCOMES, help="only requests that ended so")
    sp.add_argument("--since", metavar="WHEN", help=f"only requests since: {when}")
    sp.add_argument("--until", metavar="WHEN", help="only requests before this")
    sp.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    sp.add_argument(
        "--export",
        metavar="FILE",
        help="write every kept request of the window, oldest first, as a JSON Lines trace "
        '({"t", "model", "service", "stream"}; - for stdout)',
    )
    sp = add("history", cmd_history, "swaps, process exits and reloads, newest first")
    sp.add_argument(
        "--kind", action="append", choices=p.HISTORY_KINDS, help="only this kind (repeatable)"
    )
    sp.add_argument("--model", help="only records about this model")
    sp.add_argument("--since", metavar="WHEN", help=f"only records since: {when}")
    sp.add_argument("--until", metavar="WHEN")
    sp.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    sp = add("stats", cmd_stats, "per model: requests, errors, latency, tokens/s, loads")
    sp.add_argument("--since", metavar="WHEN", default="1h", help=f"from: {when} (default 1h)")
    sp.add_argument("--until", metavar="WHEN", help="to (default: now)")
    sp = add(
        "simulate",
        cmd_simulate,
        "replay the daemon's history through a config file and the config it runs",
    )
    sp.add_argument(
        "--config",
        metavar="FILE",
        help="the config to try, read by the daemon (default: its config file as on disk now)",
    )
    sp.add_argument(
        "--since", metavar="WHEN", default="24h", help=f"requests since: {when} (default 24h)"
    )
    sp.add_argument(
        "--load-time",
        type=_load_time,
        action="append",
        default=[],
        metavar="M=S",
        help="a model's load time in seconds (else measured in the history, else 1 s); repeatable",
    )
    sp = add("capture", cmd_capture, "a request and its response, kept with captureBuffer")
    sp.add_argument("id", type=int, help="the request's id (swapctl activity)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(args.json, sys.stdout)
    try:
        return int(args.func(args, out))
    except UsageError as exc:
        if out.json:
            _json_error("usage", str(exc))
        else:
            args.subparser.print_usage(sys.stderr)
            print(f"swapctl {args.command}: {exc}", file=sys.stderr)
        return 2
    except DaemonError as exc:
        if out.json:
            print(_json.encode(exc.error).decode(), flush=True)
        else:
            sys.stderr.write(render.error(exc.error))
        return 1
    except ConnectionFailed as exc:
        if out.json:
            _json_error("daemon_gone" if isinstance(exc, DaemonGone) else "connection", str(exc))
        else:
            print(f"swapctl: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `swapctl events -f | head`: the reader left; exit quietly.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


def _json_error(code: str, message: str) -> None:
    """An error of swapctl itself, shaped like the daemon's `error` frames, on stdout."""
    print(_json.encode(p.Error(code=code, message=message)).decode(), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
