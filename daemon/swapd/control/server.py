"""The control server: accept connections on the Unix socket, check who they are, serve them.

Started by the daemon inside its nursery:

    server = await nursery.start(serve_control, path, backend, group)

`started` hands back the `ControlServer` (path, counters) once the socket
listens, so clients can connect as soon as `nursery.start` returns. When the
task is cancelled every connection is closed and the socket file removed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import trio

from swapctl import codec
from swapctl import protocol as p
from swapd.control.connection import ControlConnection, ControlLimits, ServerCounters
from swapd.control.interface import ControlBackend
from swapd.control.listener import (
    ControlSocketError,
    open_control_listener,
    remove_socket_file,
    socket_mode,
)
from swapd.control.peercred import PeerCredentials, is_peer_allowed, peer_credentials

__all__ = ["ControlLimits", "ControlServer", "ControlSocketError", "serve_control"]

log = logging.getLogger("swapd.control")


@dataclass(slots=True)
class ControlServer:
    path: Path
    backend: ControlBackend
    limits: ControlLimits
    daemon_uid: int
    group_gid: int | None
    counters: ServerCounters = field(default_factory=ServerCounters)

    def allows(self, peer: PeerCredentials) -> bool:
        return is_peer_allowed(
            peer.uid, peer.groups, daemon_uid=self.daemon_uid, group_gid=self.group_gid
        )

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one connection; nothing it does can take the server down."""
        self.counters.add(connections=1)
        try:
            try:
                peer = peer_credentials(stream.socket)  # type: ignore[arg-type]
            except OSError as exc:
                log.warning("control: cannot read peer credentials: %s", exc)
                await trio.aclose_forcefully(stream)
                return
            if not self.allows(peer):
                await self._refuse(stream, peer)
                return
            await ControlConnection(stream, self.backend, self.limits, self.counters).run()
        except Exception:
            log.exception("control connection failed")
        finally:
            self.counters.add(connections=-1)

    async def _refuse(self, stream: trio.SocketStream, peer: PeerCredentials) -> None:
        log.warning(
            "control: refused uid %d (pid %d): not allowed on %s", peer.uid, peer.pid, self.path
        )
        error = p.Error(
            code="permission_denied",
            message=f"uid {peer.uid} may not use {self.path}: it needs uid {self.daemon_uid}, "
            "root" + (", or membership of the control group" if self.group_gid is not None else ""),
        )
        with trio.move_on_after(self.limits.close_timeout):
            try:
                await stream.send_all(codec.encode(error))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await trio.aclose_forcefully(stream)


async def serve_control(
    path: str | os.PathLike[str],
    backend: ControlBackend,
    group: str | int | None = None,
    limits: ControlLimits | None = None,
    *,
    task_status: trio.TaskStatus[ControlServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `path` until cancelled. Raises ControlSocketError if it cannot.

    `group` (a name or gid, from the config's `control.group`) makes the socket
    0660 and owned by that group, and lets its members in; otherwise it is
    0600 and only the daemon's uid and root may connect.
    """
    socket_path = Path(path)
    gid = socket_mode(group).gid
    listener, inode = await open_control_listener(socket_path, group)
    server = ControlServer(socket_path, backend, limits or ControlLimits(), os.geteuid(), gid)
    try:
        async with listener, trio.open_nursery() as nursery:
            task_status.started(server)
            log.info("control socket listening on %s", socket_path)
            await trio.serve_listeners(server.handle, [listener], handler_nursery=nursery)
    finally:
        remove_socket_file(socket_path, inode)
