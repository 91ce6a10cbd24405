"""How swapd's own log lines look: plain under journald, timestamped elsewhere.

journald stamps every line itself and sets `JOURNAL_STREAM` for the services
whose stderr it collects, so a second timestamp would only be noise there.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

PLAIN_FORMAT = "%(levelname)s %(name)s: %(message)s"
TIMESTAMPED_FORMAT = "%(asctime)s.%(msecs)03d " + PLAIN_FORMAT
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def journald_is_sink(env: Mapping[str, str], stderr_fd: int) -> bool:
    """True when stderr is the journal stream systemd announced (device:inode match)."""
    stream = env.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        device, inode = (int(part) for part in stream.split(":", 1))
        st = os.fstat(stderr_fd)
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def log_format(journald: bool) -> str:
    return PLAIN_FORMAT if journald else TIMESTAMPED_FORMAT


def setup_logging(level: int = logging.INFO, env: Mapping[str, str] | None = None) -> bool:
    """Configure the root logger on stderr; returns whether journald is the sink."""
    env = os.environ if env is None else env
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    journald = fd >= 0 and journald_is_sink(env, fd)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(log_format(journald), DATE_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return journald
