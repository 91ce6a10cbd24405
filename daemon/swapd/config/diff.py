"""What changed in a model between two configs, named by the keys a user writes.

A reload reports, for each model it restarts or retunes, which settings
changed (`cmd`, `env`, `port`, `checkEndpoint`, ...). A new `${PORT}` also
rewrites every value it was substituted into (the cmd, the default proxy),
so values are compared with each model's own port masked: a model that only
moved to another port reports `port` alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from swapd.config.model import Config, ModelConfig

# Effective fields that say nothing on their own or under another name.
_NAMES = {"argv": "cmd", "stop_argv": "cmdStop", "id": ""}
_PORT_MASK = "${PORT}"


def key_name(field: str) -> str:
    """The config key of an effective field: `check_endpoint` -> `checkEndpoint`."""
    if field in _NAMES:
        return _NAMES[field]
    head, *rest = field.split("_")
    return head + "".join(part.capitalize() for part in rest)


def changed_settings(old: ModelConfig, new: ModelConfig) -> list[str]:
    """The keys whose effective value differs, in the order of `ModelConfig`'s fields."""
    before, after = msgspec.structs.asdict(old), msgspec.structs.asdict(new)
    out: dict[str, None] = {}
    for field, value in before.items():
        name = key_name(field)
        if not name:
            continue
        other = after[field]
        if field != "port":
            value, other = _masked(value, old.port), _masked(other, new.port)
        if value != other:
            out[name] = None
    return list(out)


def _masked(value: Any, port: int | None) -> Any:
    """`value` with `port` replaced by `${PORT}`: in text where it is a whole number,
    and where it is an int of its own (a macro typed into metadata)."""
    if port is None:
        return value
    pattern = re.compile(rf"(?<![0-9]){port}(?![0-9])")

    def mask(v: Any) -> Any:
        if isinstance(v, str):
            return pattern.sub(_PORT_MASK, v)
        if isinstance(v, int) and not isinstance(v, bool) and v == port:
            return _PORT_MASK
        if isinstance(v, (list, tuple)):
            return [mask(x) for x in v]
        if isinstance(v, dict):
            return {k: mask(x) for k, x in v.items()}
        if isinstance(v, msgspec.Struct):
            return mask(msgspec.structs.asdict(v))
        return v

    return mask(value)


#: Settings swapd reads once, at start: (the key a user writes, how to read it).
START_ONLY: tuple[tuple[str, Callable[[Config], object]], ...] = (
    ("logToStdout", lambda c: c.log_to_stdout),
    ("history.enabled", lambda c: c.history.enabled),
    ("http.maxConnections", lambda c: c.http.max_connections),
    ("http.headTimeout", lambda c: c.http.head_timeout),
    ("http.keepAliveTimeout", lambda c: c.http.keep_alive_timeout),
    ("control.group", lambda c: c.control.group),
)


def start_only_changes(old: Config, new: Config) -> list[str]:
    """The settings read only at start whose value a reload changed: a reload applies
    everything else, and these wait for a restart (the reply says so)."""
    return [key for key, read in START_ONLY if read(old) != read(new)]
