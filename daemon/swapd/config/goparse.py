"""Go's parsing rules where the config relies on them: durations and URLs."""

from __future__ import annotations

import re

_DURATION_RE = re.compile(r"[-+]?(\d+(\.\d+)?(ns|us|µs|μs|ms|s|m|h))+")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float | None:
    """Seconds of a Go duration string (`1m30s`, `90m`, `0s`), None if invalid.

    A bare number other than `0` is invalid, as in Go.
    """
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _DURATION_RE.fullmatch(text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    return sign * sum(float(n) * _UNITS[u] for n, u in _PART_RE.findall(text))


def url_problem(url: str) -> str | None:
    """Why Go's `net/url.Parse` would reject `url`, or None.

    Go is lenient (relative URLs and strings without a scheme parse); it
    rejects a leading `:`, ASCII control characters, bad `%` escapes, a
    non-numeric port and invalid characters (such as a space) in the host.
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "net/url: invalid control character in URL"
    if url.startswith(":"):
        return "missing protocol scheme"
    for m in re.finditer(r"%(.{0,2})", url):
        if not re.fullmatch(r"[0-9a-fA-F]{2}", m.group(1)):
            return f'invalid URL escape "{m.group(0)}"'
    head = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*)", url)
    if head is None:
        return None
    authority = head.group(1).rpartition("@")[2]
    if authority.startswith("["):
        host, _, rest = authority.partition("]")
        port = rest[1:] if rest.startswith(":") else None
    else:
        host, sep, port_text = (
            authority.rpartition(":") if ":" in authority else (authority, "", "")
        )
        port = port_text if sep else None
        if not sep:
            host = authority
        bad = next((c for c in host if c in ' <>"{}|\\^`'), None)
        if bad is not None:
            return f'invalid character "{bad}" in host name'
    if port and not (port.isascii() and port.isdigit()):
        return f'invalid port ":{port}" after host'
    return None
