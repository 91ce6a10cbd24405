"""Where swapd keeps its state: the directory, and the history database in it.

The first of these that is set wins: `--state-dir`; `$STATE_DIRECTORY`
(systemd's `StateDirectory=`, `/var/lib/swapd`; a unit with several state
directories gets them all, separated by `:`, and the first is swapd's);
`$XDG_STATE_HOME/swapd` (an absolute path, as the XDG base directory spec
requires; a relative one is ignored); `~/.local/state/swapd`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DATABASE_NAME = "history.sqlite3"
STATE_DIR_MODE = 0o700


def resolve_state_dir(
    override: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Path:
    """The state directory (not created; see `ensure_state_dir`)."""
    env = os.environ if env is None else env
    if override is not None and str(override):
        return Path(override).expanduser()
    systemd = env.get("STATE_DIRECTORY", "")
    first = next((p for p in systemd.split(":") if p), "")
    if first:
        return Path(first)
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "swapd"
    return (home if home is not None else Path.home()) / ".local" / "state" / "swapd"


def ensure_state_dir(path: Path) -> Path:
    """Create `path` (and missing parents) if needed; a directory swapd creates is 0700.

    An existing directory keeps its mode: systemd or the operator chose it.
    Raises OSError when it cannot be created.
    """
    if not path.is_dir():
        # mkdir's mode is filtered by the umask; set it exactly afterwards.
        path.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, STATE_DIR_MODE)
    return path


def database_path(state_dir: Path) -> Path:
    return state_dir / DATABASE_NAME
