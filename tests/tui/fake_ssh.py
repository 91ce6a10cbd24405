"""Stands in for `ssh [-T -o ...] HOST swapctl [--socket PATH] bridge` in tests.

It checks the command line swaptui builds, then relays stdin/stdout to the
Unix socket named by `--socket`, as `swapctl bridge` does on the far side.
The host `unreachable` fails the way ssh does: a line on stderr, exit 255,
once the client's hello has arrived (as with real ssh, which takes a moment).
"""

from __future__ import annotations

import os
import socket
import sys
import threading


def main(argv: list[str]) -> int:
    options, rest = [], list(argv)
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        options.append(flag)
        if flag == "-o":
            options.append(rest.pop(0))
    host, *remote = rest
    if host == "unreachable":
        # Real ssh takes a moment to fail (DNS, TCP): the client's hello is already in
        # the pipe by then. Reading it first makes that ordering deterministic here.
        sys.stdin.buffer.readline()
        print(f"ssh: connect to host {host} port 22: Connection refused", file=sys.stderr)
        return 255
    if "-T" not in options or remote[0] != "swapctl" or remote[-1] != "bridge":
        print(f"fake ssh: unexpected command {argv}", file=sys.stderr)
        return 2
    path = remote[remote.index("--socket") + 1]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)

    def upstream() -> None:
        while data := os.read(0, 65536):
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True).start()
    while data := conn.recv(65536):
        os.write(1, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
