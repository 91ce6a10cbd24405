"""Who is on the other end of a control connection, and whether they may be.

`is_peer_allowed` is the whole policy, as a pure function: the daemon's own
uid, root, or a member of the configured control group. The kernel vouches
for the peer's uid, gid and pid (SO_PEERCRED); its supplementary groups come
from /proc/<pid>/status, falling back to the group database.
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
from collections.abc import Collection
from dataclasses import dataclass

_UCRED = struct.Struct("3i")


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int
    groups: frozenset[int]
    """Every group the peer process is in, its primary gid included."""


def is_peer_allowed(
    peer_uid: int, peer_groups: Collection[int], *, daemon_uid: int, group_gid: int | None
) -> bool:
    """Same uid as the daemon, root, or (when a control group is set) a member of it."""
    if peer_uid == daemon_uid or peer_uid == 0:
        return True
    return group_gid is not None and group_gid in peer_groups


def parse_proc_groups(status_text: str) -> frozenset[int] | None:
    """The `Groups:` line of /proc/<pid>/status, or None when absent."""
    for line in status_text.splitlines():
        if line.startswith("Groups:"):
            return frozenset(int(g) for g in line.split()[1:])
    return None


def process_groups(pid: int, uid: int, gid: int) -> frozenset[int]:
    """The peer's groups: from /proc when the process is still there, else its user's."""
    groups: frozenset[int] | None = None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            groups = parse_proc_groups(f.read())
    except OSError:
        groups = None
    if groups is None:
        try:
            groups = frozenset(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
        except (KeyError, OSError):
            groups = frozenset()
    return groups | {gid}


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """The kernel's record of the connecting process (Linux SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid, process_groups(pid, uid, gid))
