"""Where the control socket lives, decided the same way by swapd, swapctl and swaptui.

In order, the first that applies:

1. an explicit path (`--socket` for swapctl/swaptui, `--control-socket` for swapd);
2. `$SWAPD_SOCKET`, so one export points every tool at a non-default daemon;
3. `$RUNTIME_DIRECTORY/control.sock` when systemd runs swapd with
   `RuntimeDirectory=swapd` (it sets RUNTIME_DIRECTORY to `/run/swapd`);
4. `$XDG_RUNTIME_DIR/swapd/control.sock` for a user session;
5. `/run/swapd/control.sock` for root, which is also where the packaged
   service puts it, so `sudo swapctl status` finds the system daemon;
6. `/tmp/swapd-$UID/control.sock` otherwise.

Clients do not see the service's RUNTIME_DIRECTORY, so a non-root operator
talking to the system service passes `--socket /run/swapd/control.sock` or
exports SWAPD_SOCKET; root finds it by rule 5.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SOCKET_NAME = "control.sock"
SOCKET_ENV = "SWAPD_SOCKET"


def default_socket_path(env: Mapping[str, str] | None = None, uid: int | None = None) -> Path:
    """The socket path when none is given explicitly (pure given env and uid)."""
    env = os.environ if env is None else env
    uid = os.getuid() if uid is None else uid
    if env.get(SOCKET_ENV):
        return Path(env[SOCKET_ENV])
    runtime_directory = env.get("RUNTIME_DIRECTORY", "")
    if runtime_directory:
        # systemd may list several directories separated by ':'; ours is the first.
        return Path(runtime_directory.split(":")[0]) / SOCKET_NAME
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "swapd" / SOCKET_NAME
    if uid == 0:
        return Path("/run/swapd") / SOCKET_NAME
    return Path(f"/tmp/swapd-{uid}") / SOCKET_NAME


def resolve_socket_path(
    explicit: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None = None,
    uid: int | None = None,
) -> Path:
    """The explicit path if given, else the default."""
    if explicit:
        return Path(explicit)
    return default_socket_path(env, uid)
