"""The control socket: the daemon's side of the swapctl protocol.

`serve_control(path, backend, group=...)` binds the Unix socket and serves
every connection; `ControlBackend` is the small interface it needs from the
daemon (implemented from the router, pool, bus and config by
`swapd.control.backend.DaemonBackend`).
"""

from swapd.control.interface import ControlBackend, ControlError, EventSource
from swapd.control.server import ControlLimits, ControlSocketError, serve_control

__all__ = [
    "ControlBackend",
    "ControlError",
    "ControlLimits",
    "ControlSocketError",
    "EventSource",
    "serve_control",
]
