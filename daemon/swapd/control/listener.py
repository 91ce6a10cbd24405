"""The control socket file: replace a stale one, refuse a live one, set its mode.

trio has no Unix-socket listener helper: we bind a trio socket
ourselves and wrap it in `trio.SocketListener`.
"""

from __future__ import annotations

import errno
import grp
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import trio

BACKLOG = 64


class ControlSocketError(Exception):
    """The control socket cannot be set up; the message says what to do."""


@dataclass(frozen=True, slots=True)
class SocketMode:
    mode: int
    gid: int | None


def socket_mode(group: str | int | None) -> SocketMode:
    """0600, or 0660 owned by `group` (a name or gid) so its members can connect."""
    if group is None or group == "":
        return SocketMode(0o600, None)
    if isinstance(group, int):
        return SocketMode(0o660, group)
    try:
        return SocketMode(0o660, grp.getgrnam(group).gr_gid)
    except KeyError:
        if group.isdigit():
            return SocketMode(0o660, int(group))
        raise ControlSocketError(f"control.group {group!r}: no such group") from None


def check_parent(parent: Path, uid: int) -> None:
    """Refuse a directory someone else owns (e.g. a /tmp/swapd-UID made by another user):
    whoever owns it could swap our socket for theirs and listen to our clients."""
    owner = os.stat(parent).st_uid
    if owner not in (uid, 0):
        raise ControlSocketError(
            f"{parent} belongs to uid {owner}, not to this user or root; refusing to listen there"
        )


async def clear_stale_socket(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse when a daemon still answers.

    A regular file (or anything that is not a socket) is never removed: that
    is an operator's mistake in `--control-socket`, not our leftover.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ControlSocketError(f"{path} exists and is not a socket; refusing to replace it")
    probe = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    with probe:
        try:
            await probe.connect(os.fspath(path))
        except FileNotFoundError:
            return
        except ConnectionRefusedError:
            os.unlink(path)  # a killed daemon's leftover
            return
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                os.unlink(path)
                return
            raise ControlSocketError(f"{path}: cannot probe the existing socket: {exc}") from exc
    raise ControlSocketError(f"{path}: another swapd is already listening there")


async def open_control_listener(
    path: Path, group: str | int | None
) -> tuple[trio.SocketListener, int]:
    """Bind and listen on `path`; returns the listener and the socket file's inode.

    The parent directory is created private (0700, or 0750 with a control
    group) so nobody can connect during the moment between bind and chmod;
    an existing parent (systemd's RuntimeDirectory) is left as configured.
    """
    mode = socket_mode(group)
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=0o750 if mode.gid is not None else 0o700)
        if mode.gid is not None:
            os.chown(parent, -1, mode.gid)
    check_parent(parent, os.geteuid())
    await clear_stale_socket(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(path))
        os.chmod(path, mode.mode)
        if mode.gid is not None:
            os.chown(path, -1, mode.gid)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ControlSocketError(f"{path}: cannot listen: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock), os.stat(path).st_ino


def remove_socket_file(path: Path, inode: int) -> None:
    """Unlink the socket file if it is still the one we created."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass
